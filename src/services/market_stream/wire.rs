//! Binance market-stream wire formats, decoded straight into domain values. The depth path is
//! the hot one (hundreds of events a second per symbol, replayed by the benchmark at millions):
//! frames in Binance's plain shape go through a single-pass scanner (`depth_scan`), the rest
//! through serde with borrowed `&str` fields; either way the levels land in a reused buffer, so
//! a steady stream allocates nothing.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::domain::market::{Candle, Interval};
use crate::domain::money::{Price, Qty};
use crate::services::market_stream::depth_scan::{scan_combined_depth, scan_depth};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed market-stream message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad {field} {value:?} in market-stream message")]
    BadValue { field: &'static str, value: String },
}

/// One `depthUpdate` (or REST snapshot) worth of levels. Reused between messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepthDiff {
    pub event_time: i64,
    /// `U`: first update id in the event.
    pub first_update_id: u64,
    /// `u`: final update id in the event.
    pub final_update_id: u64,
    pub bids: Vec<(Price, Qty)>,
    pub asks: Vec<(Price, Qty)>,
}

/// `<symbol>@bookTicker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookTicker {
    pub update_id: u64,
    pub symbol: String,
    pub bid: Price,
    pub bid_qty: Qty,
    pub ask: Price,
    pub ask_qty: Qty,
}

/// `<symbol>@aggTrade`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggTrade {
    pub symbol: String,
    pub trade_id: u64,
    pub price: Price,
    pub qty: Qty,
    pub trade_time: i64,
    pub buyer_is_maker: bool,
}

/// `<symbol>@kline_<interval>`; `closed` is Binance's `x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlineUpdate {
    pub symbol: String,
    pub interval: Interval,
    pub candle: Candle,
    pub closed: bool,
}

/// What a frame of a combined stream held. `Depth` means the caller's `DepthDiff` scratch buffer
/// was filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    Depth {
        stream_symbol: String,
    },
    BookTicker(BookTicker),
    AggTrade(AggTrade),
    Kline(KlineUpdate),
    /// The server is about to close the connection: reconnect now.
    ServerShutdown {
        event_time: i64,
    },
    /// Subscription replies and streams we did not ask for.
    Ignored,
}

/// Decode a combined-stream frame `{"stream":..,"data":..}` (or a bare event such as
/// `serverShutdown`). Depth levels land in `scratch`.
pub fn decode_message(text: &str, scratch: &mut DepthDiff) -> Result<StreamMessage, WireError> {
    if let Some(stream) = scan_combined_depth(text, scratch) {
        return Ok(StreamMessage::Depth {
            stream_symbol: stream_symbol(stream),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let message = FrameSeed { scratch }.deserialize(&mut de)?;
    de.end()?;
    Ok(message)
}

/// Decode a bare `depthUpdate` payload into `scratch` (the benchmark's and the raw stream's path).
pub fn decode_depth_update(text: &str, scratch: &mut DepthDiff) -> Result<(), WireError> {
    if scan_depth(text, scratch).is_some() {
        return Ok(());
    }
    decode_depth_general(text, scratch)
}

/// The serde decoder for any depth object, for what the scanner declines.
pub(crate) fn decode_depth_general(text: &str, scratch: &mut DepthDiff) -> Result<(), WireError> {
    let mut de = serde_json::Deserializer::from_str(text);
    DepthSeed { out: scratch }.deserialize(&mut de)?;
    de.end()?;
    Ok(())
}

/// REST `GET /api/v3/depth` body.
pub fn decode_depth_snapshot(text: &str) -> Result<DepthDiff, WireError> {
    let mut out = DepthDiff::default();
    decode_depth_update(text, &mut out)?;
    out.first_update_id = out.final_update_id;
    Ok(out)
}

/// `bnbbtc@depth@100ms` -> `BNBBTC`.
fn stream_symbol(stream: &str) -> String {
    stream.split('@').next().unwrap_or("").to_ascii_uppercase()
}

/// REST `GET /api/v3/klines` body: arrays `[openTime, o, h, l, c, v, closeTime, ...]`.
pub fn decode_klines(text: &str) -> Result<Vec<Candle>, WireError> {
    // Rows are read loosely: Binance appends columns over time and we only need the first six.
    let rows: Vec<Vec<serde_json::Value>> = serde_json::from_str(text)?;
    let mut candles = Vec::with_capacity(rows.len());
    for row in rows {
        let field = |i: usize, name: &'static str| -> Result<String, WireError> {
            row.get(i)
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(|| WireError::BadValue {
                    field: name,
                    value: format!("{row:?}"),
                })
        };
        let open_time = row
            .first()
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| WireError::BadValue {
                field: "kline open time",
                value: format!("{row:?}"),
            })?;
        candles.push(Candle {
            open_time,
            open: price(&field(1, "open")?)?,
            high: price(&field(2, "high")?)?,
            low: price(&field(3, "low")?)?,
            close: price(&field(4, "close")?)?,
            volume: qty(&field(5, "volume")?)?,
        });
    }
    Ok(candles)
}

fn decimal(field: &'static str, s: &str) -> Result<Decimal, WireError> {
    if let Some(value) = plain_decimal(s) {
        return Ok(value);
    }
    Decimal::from_str_exact(s)
        .or_else(|_| Decimal::from_str(s))
        .map_err(|_| WireError::BadValue {
            field,
            value: s.to_owned(),
        })
}

/// The shape Binance sends every price and quantity in, `digits[.digits]` with at most 19
/// digits, read straight into a mantissa and a scale; `None` for anything else (signs,
/// exponents, longer numbers), which the general parser then handles. This is several times
/// faster than the general parser and is the hot path of the depth stream.
pub fn plain_decimal(s: &str) -> Option<Decimal> {
    plain_decimal_bytes(s.as_bytes())
}

pub(crate) fn plain_decimal_bytes(bytes: &[u8]) -> Option<Decimal> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut scale = 0u32;
    let mut dot = false;
    for &b in bytes {
        match b {
            b'0'..=b'9' => {
                // 19 digits always fit a u64; a 20th could overflow.
                if digits == 19 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                if dot {
                    scale += 1;
                }
            }
            b'.' if !dot && digits > 0 => dot = true,
            _ => return None,
        }
    }
    // A trailing dot (`5.`) is left to the general parser.
    if digits == 0 || (dot && scale == 0) {
        return None;
    }
    Some(Decimal::from_i128_with_scale(i128::from(mantissa), scale))
}

fn price(s: &str) -> Result<Price, WireError> {
    decimal("price", s).map(Price::new)
}

fn qty(s: &str) -> Result<Qty, WireError> {
    decimal("quantity", s).map(Qty::new)
}

/// Seed for one frame: reads `stream` first, then decodes `data` according to it.
struct FrameSeed<'s> {
    scratch: &'s mut DepthDiff,
}

impl<'de> DeserializeSeed<'de> for FrameSeed<'_> {
    type Value = StreamMessage;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StreamMessage, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FrameSeed<'_> {
    type Value = StreamMessage;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a combined-stream frame")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<StreamMessage, M::Error> {
        let mut stream: Option<&'de str> = None;
        let mut message = StreamMessage::Ignored;
        let mut bare_event: Option<&'de str> = None;
        let mut bare_time = 0i64;
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "stream" => stream = Some(map.next_value()?),
                "data" => {
                    let name = stream.ok_or_else(|| {
                        de::Error::custom("`data` arrived before `stream` in a combined frame")
                    })?;
                    message = map.next_value_seed(DataSeed {
                        stream: name,
                        scratch: &mut *self.scratch,
                    })?;
                }
                "e" => bare_event = Some(map.next_value()?),
                "E" => bare_time = map.next_value()?,
                "event" => {
                    // WebSocket-API style wrapper: {"event":{"e":"serverShutdown",..}}
                    let inner: BareEvent<'de> = map.next_value()?;
                    bare_event = Some(inner.e);
                    bare_time = inner.time;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if bare_event == Some("serverShutdown") {
            return Ok(StreamMessage::ServerShutdown {
                event_time: bare_time,
            });
        }
        Ok(message)
    }
}

#[derive(Deserialize)]
struct BareEvent<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E", default)]
    time: i64,
}

struct DataSeed<'n, 's> {
    stream: &'n str,
    scratch: &'s mut DepthDiff,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = StreamMessage;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StreamMessage, D::Error> {
        let kind = self.stream.split_once('@').map(|(_, k)| k).unwrap_or("");
        if kind.starts_with("depth") {
            DepthSeed { out: self.scratch }.deserialize(d)?;
            Ok(StreamMessage::Depth {
                stream_symbol: stream_symbol(self.stream),
            })
        } else if kind == "bookTicker" {
            let w = BookTickerWire::deserialize(d)?;
            Ok(StreamMessage::BookTicker(BookTicker {
                update_id: w.u,
                symbol: w.s.to_owned(),
                bid: price(w.b).map_err(de::Error::custom)?,
                bid_qty: qty(w.bq).map_err(de::Error::custom)?,
                ask: price(w.a).map_err(de::Error::custom)?,
                ask_qty: qty(w.aq).map_err(de::Error::custom)?,
            }))
        } else if kind == "aggTrade" {
            let w = AggTradeWire::deserialize(d)?;
            Ok(StreamMessage::AggTrade(AggTrade {
                symbol: w.s.to_owned(),
                trade_id: w.a,
                price: price(w.p).map_err(de::Error::custom)?,
                qty: qty(w.q).map_err(de::Error::custom)?,
                trade_time: w.t,
                buyer_is_maker: w.m,
            }))
        } else if kind.starts_with("kline_") {
            let w = KlineWire::deserialize(d)?;
            let k = w.k;
            let interval = Interval::from_str(k.i).map_err(de::Error::custom)?;
            Ok(StreamMessage::Kline(KlineUpdate {
                symbol: w.s.to_owned(),
                interval,
                candle: Candle {
                    open_time: k.t,
                    open: price(k.o).map_err(de::Error::custom)?,
                    high: price(k.h).map_err(de::Error::custom)?,
                    low: price(k.l).map_err(de::Error::custom)?,
                    close: price(k.c).map_err(de::Error::custom)?,
                    volume: qty(k.v).map_err(de::Error::custom)?,
                },
                closed: k.x,
            }))
        } else {
            let w = MaybeEvent::deserialize(d)?;
            if w.e == Some("serverShutdown") {
                Ok(StreamMessage::ServerShutdown { event_time: w.time })
            } else {
                Ok(StreamMessage::Ignored)
            }
        }
    }
}

#[derive(Deserialize)]
struct MaybeEvent<'a> {
    #[serde(borrow, default)]
    e: Option<&'a str>,
    #[serde(rename = "E", default)]
    time: i64,
}

#[derive(Deserialize)]
struct BookTickerWire<'a> {
    u: u64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(borrow)]
    b: &'a str,
    #[serde(rename = "B", borrow)]
    bq: &'a str,
    #[serde(borrow)]
    a: &'a str,
    #[serde(rename = "A", borrow)]
    aq: &'a str,
}

#[derive(Deserialize)]
struct AggTradeWire<'a> {
    #[serde(borrow)]
    s: &'a str,
    a: u64,
    #[serde(borrow)]
    p: &'a str,
    #[serde(borrow)]
    q: &'a str,
    #[serde(rename = "T")]
    t: i64,
    m: bool,
}

#[derive(Deserialize)]
struct KlineWire<'a> {
    #[serde(borrow)]
    s: &'a str,
    #[serde(borrow)]
    k: KlineBody<'a>,
}

#[derive(Deserialize)]
struct KlineBody<'a> {
    t: i64,
    #[serde(borrow)]
    i: &'a str,
    #[serde(borrow)]
    o: &'a str,
    #[serde(borrow)]
    c: &'a str,
    #[serde(borrow)]
    h: &'a str,
    #[serde(borrow)]
    l: &'a str,
    #[serde(borrow)]
    v: &'a str,
    x: bool,
}

/// Fills a `DepthDiff` from either a `depthUpdate` event (`U`,`u`,`b`,`a`) or a REST snapshot
/// (`lastUpdateId`,`bids`,`asks`).
struct DepthSeed<'s> {
    out: &'s mut DepthDiff,
}

impl<'de> DeserializeSeed<'de> for DepthSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DepthSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a depth update or snapshot object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let out = self.out;
        out.bids.clear();
        out.asks.clear();
        out.event_time = 0;
        let (mut first, mut last) = (None, None);
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "U" => first = Some(map.next_value::<u64>()?),
                "u" | "lastUpdateId" => last = Some(map.next_value::<u64>()?),
                "E" => out.event_time = map.next_value()?,
                "b" | "bids" => map.next_value_seed(LevelsSeed { out: &mut out.bids })?,
                "a" | "asks" => map.next_value_seed(LevelsSeed { out: &mut out.asks })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let last = last.ok_or_else(|| de::Error::missing_field("u"))?;
        out.final_update_id = last;
        out.first_update_id = first.unwrap_or(last);
        Ok(())
    }
}

/// `[["price","qty"], ...]` appended to a reused vector.
struct LevelsSeed<'s> {
    out: &'s mut Vec<(Price, Qty)>,
}

impl<'de> DeserializeSeed<'de> for LevelsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for LevelsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of [price, quantity] string pairs")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some((p, q)) = seq.next_element::<(&'de str, &'de str)>()? {
            let level = (
                price(p).map_err(de::Error::custom)?,
                qty(q).map_err(de::Error::custom)?,
            );
            self.out.push(level);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn plain_decimals_parse_exactly_and_anything_else_is_left_to_the_general_parser() {
        assert_eq!(plain_decimal("30000.01000000"), Some(dec!(30000.01)));
        assert_eq!(plain_decimal("30000.01000000").unwrap().scale(), 8);
        assert_eq!(plain_decimal("0.00000001"), Some(dec!(0.00000001)));
        assert_eq!(plain_decimal("42"), Some(dec!(42)));
        assert_eq!(
            plain_decimal("9999999999999999999"),
            Some(dec!(9999999999999999999))
        );
        for other in [
            "",
            ".5",
            "5.",
            "-1",
            "1e5",
            "1.2.3",
            " 1",
            "99999999999999999999",
        ] {
            assert_eq!(plain_decimal(other), None, "{other:?}");
        }
        // The general parser still takes what the fast path declines.
        assert_eq!(price("-1.5").unwrap(), Price::new(dec!(-1.5)));
        assert_eq!(
            qty("123456789012345678901.5").unwrap(),
            Qty::new(dec!(123456789012345678901.5))
        );
    }

    #[test]
    fn depth_update_from_a_combined_frame_fills_the_scratch_buffer() {
        let text = r#"{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"],["0.0027","0"]]}}"#;
        let mut scratch = DepthDiff::default();
        let msg = decode_message(text, &mut scratch).unwrap();
        assert_eq!(
            msg,
            StreamMessage::Depth {
                stream_symbol: "BNBBTC".into()
            }
        );
        assert_eq!(scratch.first_update_id, 157);
        assert_eq!(scratch.final_update_id, 160);
        assert_eq!(scratch.event_time, 1672515782136);
        assert_eq!(
            scratch.bids,
            vec![(Price::new(dec!(0.0024)), Qty::new(dec!(10)))]
        );
        assert_eq!(scratch.asks.len(), 2);
        assert!(scratch.asks[1].1.is_zero());
    }

    #[test]
    fn book_ticker_agg_trade_and_kline_frames_decode_to_domain_values() {
        let mut scratch = DepthDiff::default();
        let bt = r#"{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
        match decode_message(bt, &mut scratch).unwrap() {
            StreamMessage::BookTicker(t) => {
                assert_eq!(t.bid, Price::new(dec!(25.3519)));
                assert_eq!(t.ask_qty, Qty::new(dec!(40.66)));
            }
            other => panic!("{other:?}"),
        }
        let at = r#"{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}}"#;
        match decode_message(at, &mut scratch).unwrap() {
            StreamMessage::AggTrade(t) => {
                assert_eq!(t.trade_id, 12345);
                assert_eq!(t.price, Price::new(dec!(0.001)));
                assert!(t.buyer_is_maker);
            }
            other => panic!("{other:?}"),
        }
        let kl = r#"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}}"#;
        match decode_message(kl, &mut scratch).unwrap() {
            StreamMessage::Kline(k) => {
                assert_eq!(k.interval, Interval::M1);
                assert_eq!(k.candle.open_time, 1672515780000);
                assert_eq!(k.candle.high, Price::new(dec!(0.0025)));
                assert!(!k.closed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_shutdown_is_recognised_bare_and_wrapped() {
        let mut scratch = DepthDiff::default();
        let bare = r#"{"e":"serverShutdown","E":1770123456789}"#;
        assert_eq!(
            decode_message(bare, &mut scratch).unwrap(),
            StreamMessage::ServerShutdown {
                event_time: 1770123456789
            }
        );
        let wrapped = r#"{"stream":"btcusdt@serverShutdown","data":{"e":"serverShutdown","E":5}}"#;
        assert_eq!(
            decode_message(wrapped, &mut scratch).unwrap(),
            StreamMessage::ServerShutdown { event_time: 5 }
        );
        let reply = r#"{"result":null,"id":1}"#;
        assert_eq!(
            decode_message(reply, &mut scratch).unwrap(),
            StreamMessage::Ignored
        );
    }

    #[test]
    fn bad_prices_and_truncated_frames_are_errors_not_panics() {
        let mut scratch = DepthDiff::default();
        let bad = r#"{"stream":"x@depth","data":{"U":1,"u":2,"b":[["abc","1"]],"a":[]}}"#;
        assert!(decode_message(bad, &mut scratch).is_err());
        assert!(decode_message(r#"{"stream":"x@depth","data":{"U":1"#, &mut scratch).is_err());
        let no_u = r#"{"stream":"x@depth","data":{"U":1,"b":[],"a":[]}}"#;
        assert!(decode_message(no_u, &mut scratch).is_err());
    }

    #[test]
    fn rest_snapshot_and_klines_decode() {
        let snap = decode_depth_snapshot(
            r#"{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#,
        )
        .unwrap();
        assert_eq!(snap.final_update_id, 1027024);
        assert_eq!(snap.asks[0].0, Price::new(dec!(4.000002)));
        let klines = decode_klines(
            r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]"#,
        )
        .unwrap();
        assert_eq!(klines.len(), 1);
        assert_eq!(klines[0].close, Price::new(dec!(0.015771)));
        assert_eq!(klines[0].volume, Qty::new(dec!(148976.11427815)));
    }
}
