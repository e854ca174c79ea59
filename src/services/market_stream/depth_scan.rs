//! A single-pass scanner for the depth frames Binance actually sends — the hot path of the
//! stream and of the benchmark. It accepts only the plain shape (known keys, integer ids,
//! `[["price","qty"],..]` levels, strings without escapes, any whitespace and key order) and
//! answers `None` for anything else, in which case the caller decodes the frame with the
//! general serde decoder. So it is never the only judge of a frame: it is a shortcut that
//! must agree with the general decoder wherever it answers, which the tests check.

use crate::domain::money::{Price, Qty};
use crate::services::market_stream::wire::{DepthDiff, plain_decimal_bytes};

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skip whitespace, then consume `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string without escapes or control characters; its bytes (keys and values we compare
    /// or skip, so no UTF-8 check is needed).
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        let raw = &self.bytes[start..self.pos];
        self.pos += 1;
        Some(raw)
    }

    /// A non-negative integer that fits a u64 (no sign, fraction or exponent).
    fn unsigned(&mut self) -> Option<u64> {
        self.skip_ws();
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(&b @ b'0'..=b'9') = self.bytes.get(self.pos) {
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        let next = self.bytes.get(self.pos).copied();
        if digits == 0 || matches!(next, Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(value)
    }

    /// `[["p","q"],..]` appended to `out`.
    fn levels(&mut self, out: &mut Vec<(Price, Qty)>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        loop {
            if !self.eat(b'[') {
                return None;
            }
            let price = plain_decimal_bytes(self.string()?)?;
            if !self.eat(b',') {
                return None;
            }
            let qty = plain_decimal_bytes(self.string()?)?;
            if !self.eat(b']') {
                return None;
            }
            out.push((Price::new(price), Qty::new(qty)));
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// A depth object (`depthUpdate` or REST snapshot) into `out`.
    fn depth(&mut self, out: &mut DepthDiff) -> Option<()> {
        out.bids.clear();
        out.asks.clear();
        out.event_time = 0;
        let (mut first, mut last) = (None, None);
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return None;
        }
        loop {
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            match key {
                b"e" | b"s" => {
                    self.string()?;
                }
                b"E" => out.event_time = i64::try_from(self.unsigned()?).ok()?,
                b"U" => first = Some(self.unsigned()?),
                b"u" | b"lastUpdateId" => last = Some(self.unsigned()?),
                b"b" | b"bids" => self.levels(&mut out.bids)?,
                b"a" | b"asks" => self.levels(&mut out.asks)?,
                _ => return None,
            }
            if self.eat(b'}') {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
        }
        let last = last?;
        out.final_update_id = last;
        out.first_update_id = first.unwrap_or(last);
        Some(())
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos == self.bytes.len()
    }
}

/// A bare depth object; `None` if the text is not in the plain shape.
pub(crate) fn scan_depth(text: &str, out: &mut DepthDiff) -> Option<()> {
    let mut s = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
    };
    s.depth(out)?;
    s.at_end().then_some(())
}

/// `{"stream":"<name>","data":{depth}}` with a depth stream name; the stream name.
pub(crate) fn scan_combined_depth<'a>(text: &'a str, out: &mut DepthDiff) -> Option<&'a str> {
    let mut s = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
    };
    if !s.eat(b'{') || s.string()? != b"stream" || !s.eat(b':') {
        return None;
    }
    // Between ASCII quotes of a &str, so valid UTF-8; checked anyway, it is one short name.
    let stream = std::str::from_utf8(s.string()?).ok()?;
    if !stream.split_once('@')?.1.starts_with("depth") {
        return None;
    }
    if !s.eat(b',') || s.string()? != b"data" || !s.eat(b':') {
        return None;
    }
    s.depth(out)?;
    (s.eat(b'}') && s.at_end()).then_some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::market_stream::wire::{
        StreamMessage, decode_depth_general, decode_message,
    };
    use rust_decimal_macros::dec;

    /// The general decoder's answer for a bare depth object.
    fn general(text: &str) -> Option<DepthDiff> {
        let mut out = DepthDiff::default();
        decode_depth_general(text, &mut out).ok().map(|()| out)
    }

    #[test]
    fn the_scanner_agrees_with_the_general_decoder_wherever_it_answers() {
        let cases = [
            r#"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"],["0.0027","0"]]}"#,
            r#" { "u" : 5 , "b" : [ [ "1.5" , "2" ] ] , "a" : [ ] , "U" : 3 } "#,
            r#"{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#,
            r#"{"u":7,"b":[],"a":[]}"#,
            // Shapes the scanner declines and leaves to the general decoder:
            r#"{"u":7,"b":[],"a":[],"pu":6}"#,
            r#"{"u":7,"b":[["1e2","1"]],"a":[]}"#,
            r#"{"u":7,"b":[["1\u0030","1"]],"a":[]}"#,
            r#"{"u":7.0,"b":[],"a":[]}"#,
            r#"{"u":7,"b":[["1","1","x"]],"a":[]}"#,
            r#"{"U":1,"b":[],"a":[]}"#,
            r#"{"u":7,"b":[],"a":[]} x"#,
            r#"{"u":99999999999999999999,"b":[],"a":[]}"#,
        ];
        let mut answered = 0;
        for text in cases {
            let mut fast = DepthDiff::default();
            if scan_depth(text, &mut fast).is_some() {
                answered += 1;
                assert_eq!(Some(fast), general(text), "{text}");
            }
        }
        assert_eq!(answered, 4);
    }

    #[test]
    fn combined_depth_frames_take_the_scanner_and_others_fall_through() {
        let mut out = DepthDiff::default();
        let frame = r#"{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[]}}"#;
        assert_eq!(
            scan_combined_depth(frame, &mut out),
            Some("bnbbtc@depth@100ms")
        );
        assert_eq!(
            out.bids,
            vec![(Price::new(dec!(0.0024)), Qty::new(dec!(10)))]
        );
        let ticker = r#"{"stream":"bnbusdt@bookTicker","data":{"u":1,"s":"BNBUSDT","b":"1","B":"1","a":"2","A":"1"}}"#;
        assert_eq!(scan_combined_depth(ticker, &mut out), None);
        assert!(matches!(
            decode_message(ticker, &mut out).unwrap(),
            StreamMessage::BookTicker(_)
        ));
        // `data` before `stream` is legal JSON the scanner leaves to the general decoder.
        let reordered = r#"{"data":{"u":5,"b":[],"a":[]},"stream":"x@depth"}"#;
        assert_eq!(scan_combined_depth(reordered, &mut out), None);
    }
}
