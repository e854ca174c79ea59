//! The importer's quick reader: a plain data row (`open_time,open,high,low,close,volume`, more
//! columns after the volume ignored, numbers as digits with at most one point) read straight
//! into the store's fixed-point [`CandleRow`], no `Decimal` per number. It vouches only for rows
//! that pass every check the importer's row reader makes; anything else (another way of writing
//! a number, a bad row) is left to that reader, which gives the same candle or the same error.

use super::import::{MICROS_THRESHOLD, TimeBounds};
use crate::domain::market::TimestampMs;
use crate::domain::money::{leading_digits, parse_units, units_make_a_candle};
use crate::store::candles::{CandleNumber, CandleRow};

/// The row `text` as a candle when it is plain and passes the importer's checks: an open time
/// within `bounds` and after `prev`, a positive low, high at or above low, open and close
/// between them.
#[inline]
pub(crate) fn quick_row(
    text: &[u8],
    bounds: TimeBounds,
    prev: Option<TimestampMs>,
) -> Option<CandleRow> {
    let (raw, digits) = leading_digits(text)?;
    let mut rest = text[digits as usize..].strip_prefix(b",")?;
    // At most 18 digits: an i64.
    let raw = raw as i64;
    let open_time = if raw >= MICROS_THRESHOLD {
        raw / 1000
    } else {
        raw
    };
    if !bounds.contains(open_time) || prev.is_some_and(|p| open_time <= p) {
        return None;
    }
    let mut units = [(0u64, 0u32); 5];
    for (k, u) in units.iter_mut().enumerate() {
        let (value, after) = parse_units(rest)?;
        *u = value;
        rest = match after {
            [] if k == 4 => after,
            [b',', tail @ ..] => tail,
            _ => return None,
        };
    }
    let [open, high, low, close, _] = units;
    if !units_make_a_candle(open, high, low, close) {
        return None;
    }
    Some(CandleRow {
        open_time,
        numbers: units.map(|(m, s)| CandleNumber::Units(m, s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::market::{CandleColumns, Interval};
    use crate::services::market_data::import::{CsvFormat, check_row};

    /// What the importer's own reader makes of `text`, as a row.
    fn slow(text: &str, prev: Option<TimestampMs>) -> Option<CandleRow> {
        check_row(CsvFormat::Binance, text, TimeBounds::default(), prev)
            .ok()
            .map(|c| CandleRow::of(&c))
    }

    /// Two rows are the same candle when their numbers are the same decimals.
    fn same(a: &CandleRow, b: &CandleRow) -> bool {
        let cols = |r: &CandleRow| {
            let c = crate::domain::market::Candle {
                open_time: r.open_time,
                open: crate::domain::money::Price::new(number(r.numbers[0])),
                high: crate::domain::money::Price::new(number(r.numbers[1])),
                low: crate::domain::money::Price::new(number(r.numbers[2])),
                close: crate::domain::money::Price::new(number(r.numbers[3])),
                volume: crate::domain::money::Qty::new(number(r.numbers[4])),
            };
            CandleColumns::from_candles(&[c])
        };
        a.open_time == b.open_time && cols(a).open == cols(b).open && {
            let (x, y) = (cols(a), cols(b));
            x.high == y.high && x.low == y.low && x.close == y.close && x.volume == y.volume
        }
    }

    fn number(n: CandleNumber) -> rust_decimal::Decimal {
        match n {
            CandleNumber::Units(m, s) => rust_decimal::Decimal::from_i128_with_scale(m.into(), s),
            CandleNumber::Decimal(d) => d,
        }
    }

    #[test]
    fn a_plain_row_is_the_candle_the_importer_reads_and_anything_else_is_left_to_it() {
        let _ = Interval::M1;
        let rows = [
            ("1735689600000,100.5,101,99.25,100,1.5", None, true),
            ("1735689600000000,100.5,101,99.25,100,1.5,x,y", None, true),
            ("1735689600000,100.50,101.000,99.2500,100,0", None, true),
            // Each of these the quick reader leaves alone: the importer decides.
            ("1735689600000,100.5,101,99.25,100,-1", None, false),
            ("1735689600000,100.5,101,99.25,100,1.5x", None, false),
            ("1735689600000, 100.5,101,99.25,100,1.5", None, false),
            ("1735689600000,1e2,101,99.25,100,1.5", None, false),
            ("1735689600000,102,101,99.25,100,1.5", None, false),
            ("1735689600000,100,101,99.25,98,1.5", None, false),
            ("1735689600000,100,101,0,98,1.5", None, false),
            ("1735689600000,100,99,101,100,1.5", None, false),
            ("1735689600000,100,101,99,100", None, false),
            ("1735689600000,100,101,99,100,1", Some(1735689600000), false),
            ("1735689600000,100,101,99,100,1", Some(1735689660000), false),
            ("+1735689600000,100,101,99,100,1", None, false),
            (
                "1735689600000,1234567890123456789,1234567890123456789,1,1,1",
                None,
                false,
            ),
        ];
        for (text, prev, quick) in rows {
            let got = quick_row(text.as_bytes(), TimeBounds::default(), prev);
            assert_eq!(got.is_some(), quick, "{text}");
            if let Some(got) = got {
                let want = slow(text, prev).expect("the importer takes it too");
                assert!(same(&got, &want), "{text}: {got:?} != {want:?}");
            }
        }
        let early = TimeBounds::for_files_at(0);
        assert!(quick_row(b"1735689600000,1,1,1,1,1", early, None).is_none());
    }
}
