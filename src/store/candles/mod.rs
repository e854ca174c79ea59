//! Candle repository: candles stored exactly, keyed by symbol, interval and open time. Inserting
//! is idempotent: a candle already stored is left as is.
//!
//! Layout (migration 0028): a `candle_series` row per symbol and interval holds the decimal
//! scales of its prices and volumes; `candle_bars`, keyed (series, open time), holds each number
//! as the INTEGER `value * 10^scale`, or as its exact decimal text when it does not fit (see
//! [`write`]). A `candles` view shows the old text shape for anyone's own SQL.

mod migrate;
mod side;
mod write;

pub(crate) use migrate::migrate_text_candles;
pub use side::{SIDE_DIR, SeriesCache, SideState, history_columns, series_caches};
pub use write::{CandleNumber, CandleRow, MAX_SCALE};

use super::codec::dec_from_sql;
use super::{StoreError, StoreResult};
use crate::domain::Symbol;
use crate::domain::market::candle::{CandleColumns, ColumnsBuilder};
use crate::domain::market::{Candle, Interval, TimestampMs};
use crate::domain::money::{Price, Qty};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use rust_decimal::Decimal;
use write::{Series, find_series, write_rows};

/// Outcome of storing a batch of candles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct InsertReport {
    /// Candles that were new.
    pub inserted: usize,
    /// Candles whose open time was already stored (left unchanged).
    pub already_present: usize,
}

/// Store `candles` in one transaction; those already present (same symbol, interval and open
/// time) are left untouched, so importing the same data twice changes nothing.
pub fn insert_candles(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    candles: &[Candle],
) -> StoreResult<InsertReport> {
    let rows: Vec<CandleRow> = candles.iter().map(CandleRow::of).collect();
    insert_candle_rows(conn, symbol, interval, &rows)
}

/// [`insert_candles`] for candles given as fixed-point numbers (a parser's output, no `Decimal`
/// per number): one transaction, the rows already stored left untouched.
pub fn insert_candle_rows(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    rows: &[CandleRow],
) -> StoreResult<InsertReport> {
    // Immediate: the batch writes anyway, and taking the write lock first lets a busy database
    // make this wait (busy timeout) rather than fail on a read-to-write upgrade.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // The last open time before the write: rows after it cannot be stored yet, so the write is a
    // pure append when every new row is one of them.
    let last = last_open_time(&tx, symbol, interval)?;
    let inserted = write_rows(&tx, symbol, interval, rows)?;
    if inserted > 0 {
        // Once per transaction, not per row: a series' side file is valid for one revision. A
        // random token, not a count: a database put back to an earlier copy and written again
        // would count to a number a side file written in between already carries.
        tx.prepare_cached(
            "UPDATE candle_series SET revision = random() WHERE symbol = ?1 AND interval = ?2",
        )?
        .execute(params![symbol.as_str(), interval.as_str()])?;
        // The rows a side file holds stay a prefix of the series only after a pure append onto
        // stored rows (a rescale's UPDATE sets the prefix revision through its trigger).
        let appended = last.is_some_and(|last| inserted == distinct_after(rows, last));
        if !appended {
            tx.prepare_cached(
                "UPDATE candle_series SET prefix_revision = random() WHERE symbol = ?1 AND interval = ?2",
            )?
            .execute(params![symbol.as_str(), interval.as_str()])?;
        }
    }
    tx.commit()?;
    Ok(InsertReport {
        inserted,
        already_present: rows.len() - inserted,
    })
}

/// How many distinct open times after `last` the rows have.
fn distinct_after(rows: &[CandleRow], last: TimestampMs) -> usize {
    let mut after: Vec<TimestampMs> = rows
        .iter()
        .map(|r| r.open_time)
        .filter(|&t| t > last)
        .collect();
    after.sort_unstable();
    after.dedup();
    after.len()
}

/// The stored names of a number's column, for error messages (the old table's names).
const COLUMN_NAMES: [&str; 5] = [
    "candles.open",
    "candles.high",
    "candles.low",
    "candles.close",
    "candles.volume",
];

const SELECT_BARS: &str = "SELECT open_time, open, high, low, close, volume FROM candle_bars";

/// A stored number: an integer at `scale`, or exact decimal text.
fn decimal_of(value: ValueRef<'_>, scale: u32, column: &'static str) -> StoreResult<Decimal> {
    match value {
        ValueRef::Integer(i) => Ok(Decimal::new(i, scale).normalize()),
        ValueRef::Text(t) => dec_from_sql(column, &String::from_utf8_lossy(t)),
        other => Err(StoreError::Corrupt {
            column,
            value: format!("{other:?}"),
            reason: "a candle number is an integer or decimal text".into(),
        }),
    }
}

/// The candle of a `SELECT_BARS` row of `series`.
fn decode(row: &Row<'_>, series: &Series) -> StoreResult<Candle> {
    let n = |k: usize| {
        let scale = if k < 4 {
            series.price_scale
        } else {
            series.volume_scale
        };
        decimal_of(row.get_ref(k + 1)?, scale, COLUMN_NAMES[k])
    };
    Ok(Candle {
        open_time: row.get(0)?,
        open: Price::new(n(0)?),
        high: Price::new(n(1)?),
        low: Price::new(n(2)?),
        close: Price::new(n(3)?),
        volume: Qty::new(n(4)?),
    })
}

fn series_of(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
) -> StoreResult<Option<Series>> {
    find_series(conn, symbol.as_str(), interval.as_str())
}

/// Candles with `from <= open_time < to` (either bound optional), oldest first.
pub fn candles_in_range(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> StoreResult<Vec<Candle>> {
    let Some(series) = series_of(conn, symbol, interval)? else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT_BARS} WHERE series_id = ?1 AND open_time >= ?2 AND open_time < ?3 ORDER BY open_time"
    ))?;
    let mut rows = stmt.query(params![
        series.id,
        from.unwrap_or(i64::MIN),
        to.unwrap_or(i64::MAX)
    ])?;
    let mut candles = Vec::new();
    while let Some(row) = rows.next()? {
        candles.push(decode(row, &series)?);
    }
    Ok(candles)
}

/// Every stored candle of a series, oldest first.
pub fn load_candles(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
) -> StoreResult<Vec<Candle>> {
    candles_in_range(conn, symbol, interval, None, None)
}

/// Hand every stored candle of a series to `f`, oldest first, one row at a time (memory does not
/// grow with the series). Returns how many there were.
pub fn for_each_candle(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    f: &mut dyn FnMut(Candle),
) -> StoreResult<usize> {
    let Some(series) = series_of(conn, symbol, interval)? else {
        return Ok(0);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT_BARS} WHERE series_id = ?1 ORDER BY open_time"
    ))?;
    let mut rows = stmt.query([series.id])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        f(decode(row, &series)?);
        n += 1;
    }
    Ok(n)
}

/// `m / 10^s` with the trailing zeros of `m` dropped (the mantissa and scale of the normalised
/// decimal, which is what the candles carry).
#[inline]
fn normalised(mut m: u64, mut s: u32) -> (u64, u32) {
    if m == 0 {
        return (0, 0);
    }
    while s > 0 && m.is_multiple_of(10) {
        m /= 10;
        s -= 1;
    }
    (m, s)
}

/// Rows a range holds at most when its candles are one interval apart (a capacity hint).
fn rows_hint(
    conn: &Connection,
    series: i64,
    interval: Interval,
    from: TimestampMs,
    to: TimestampMs,
) -> StoreResult<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT open_time FROM candle_bars WHERE series_id = ?1 AND open_time >= ?2 AND open_time < ?3 ORDER BY open_time LIMIT 1),
                (SELECT open_time FROM candle_bars WHERE series_id = ?1 AND open_time >= ?2 AND open_time < ?3 ORDER BY open_time DESC LIMIT 1)",
    )?;
    let (first, last): (Option<i64>, Option<i64>) =
        stmt.query_row(params![series, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(match (first, last) {
        (Some(a), Some(b)) => {
            let rows = (b.saturating_sub(a) / interval.millis().max(1)).saturating_add(1);
            // Untouched capacity costs address space, not memory; past this the vectors grow.
            usize::try_from(rows).unwrap_or(0).min(1 << 26)
        }
        _ => 0,
    })
}

/// Candles with `from <= open_time < to` (either bound optional) straight into columns, oldest
/// first: the columns [`CandleColumns::from_candles`] builds from [`candles_in_range`], with no
/// `Decimal` and no `Candle` in between (each stored integer is already the fixed-point number;
/// a row holding a number kept as text goes through the decimal library as before).
///
/// Backtests read through [`history_columns`], which serves the same columns from the series'
/// side file when it is fresh.
pub fn columns_in_range(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> StoreResult<CandleColumns> {
    let Some(series) = series_of(conn, symbol, interval)? else {
        return Ok(ColumnsBuilder::with_capacity(0).finish());
    };
    read_columns(conn, &series, interval, from, to, |_| {})
}

/// The rows of `series` with `from <= open_time < to` as columns (see [`columns_in_range`]),
/// handing `each` every row's five stored integers when all are non-negative integers (the rows
/// read without a decimal), `None` for a row that holds anything else.
fn read_columns(
    conn: &Connection,
    series: &Series,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
    mut each: impl FnMut(Option<&[i64; 5]>),
) -> StoreResult<CandleColumns> {
    let (from, to) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
    let hint = rows_hint(conn, series.id, interval, from, to)?;
    let mut builder = ColumnsBuilder::with_capacity(hint);
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT_BARS} WHERE series_id = ?1 AND open_time >= ?2 AND open_time < ?3 ORDER BY open_time"
    ))?;
    let mut rows = stmt.query(params![series.id, from, to])?;
    let scales = [
        series.price_scale,
        series.price_scale,
        series.price_scale,
        series.price_scale,
        series.volume_scale,
    ];
    while let Some(row) = rows.next()? {
        let open_time: TimestampMs = row.get(0)?;
        let mut ints = [0i64; 5];
        let mut quick = true;
        for (k, v) in ints.iter_mut().enumerate() {
            match row.get_ref(k + 1)? {
                ValueRef::Integer(i) if i >= 0 => *v = i,
                _ => {
                    quick = false;
                    break;
                }
            }
        }
        if quick {
            let units: [(u64, u32); 5] =
                std::array::from_fn(|k| normalised(ints[k] as u64, scales[k]));
            builder.push_units(open_time, units);
            each(Some(&ints));
        } else {
            builder.push_candle(&decode(row, series)?);
            each(None);
        }
    }
    Ok(builder.finish())
}

/// The newest `n` candles of a series, oldest first.
pub fn last_candles(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    n: usize,
) -> StoreResult<Vec<Candle>> {
    let Some(series) = series_of(conn, symbol, interval)? else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT_BARS} WHERE series_id = ?1 ORDER BY open_time DESC LIMIT ?2"
    ))?;
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![series.id, limit])?;
    let mut candles = Vec::new();
    while let Some(row) = rows.next()? {
        candles.push(decode(row, &series)?);
    }
    candles.reverse();
    Ok(candles)
}

/// Open time of the newest stored candle of a series.
pub fn last_open_time(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
) -> StoreResult<Option<TimestampMs>> {
    let Some(series) = series_of(conn, symbol, interval)? else {
        return Ok(None);
    };
    Ok(conn
        .query_row(
            "SELECT open_time FROM candle_bars WHERE series_id = ?1 ORDER BY open_time DESC LIMIT 1",
            [series.id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Number of stored candles of a series.
pub fn count_candles(conn: &Connection, symbol: &Symbol, interval: Interval) -> StoreResult<usize> {
    let Some(series) = series_of(conn, symbol, interval)? else {
        return Ok(0);
    };
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM candle_bars WHERE series_id = ?1",
        [series.id],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    fn candle(open_time: TimestampMs, close: rust_decimal::Decimal) -> Candle {
        Candle {
            open_time,
            open: Price::new(dec!(100.10)),
            high: Price::new(dec!(123456789.123456789)),
            low: Price::new(dec!(0.00000001)),
            close: Price::new(close),
            volume: Qty::new(dec!(755.99010000)),
        }
    }

    fn btc() -> Symbol {
        Symbol::new("BTCUSDT").unwrap()
    }

    #[test]
    fn candles_round_trip_exactly_and_come_back_oldest_first() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let candles = vec![
            candle(7_200_000, dec!(3.3)),
            candle(0, dec!(1.1)),
            candle(3_600_000, dec!(2.2)),
        ];
        let report = insert_candles(conn, &btc(), Interval::H1, &candles).unwrap();
        assert_eq!(
            report,
            InsertReport {
                inserted: 3,
                already_present: 0
            }
        );
        let back = load_candles(conn, &btc(), Interval::H1).unwrap();
        assert_eq!(
            back.iter().map(|c| c.open_time).collect::<Vec<_>>(),
            [0, 3_600_000, 7_200_000]
        );
        assert_eq!(back[0], candles[1]);
        assert_eq!(back[0].high.get(), dec!(123456789.123456789));
        assert_eq!(back[0].low.get(), dec!(0.00000001));
    }

    #[test]
    fn inserting_again_changes_nothing_even_with_different_values() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        insert_candles(conn, &btc(), Interval::H1, &[candle(0, dec!(1.1))]).unwrap();
        let again = insert_candles(
            conn,
            &btc(),
            Interval::H1,
            &[candle(0, dec!(9.9)), candle(60, dec!(2))],
        )
        .unwrap();
        assert_eq!(
            again,
            InsertReport {
                inserted: 1,
                already_present: 1
            }
        );
        assert_eq!(
            load_candles(conn, &btc(), Interval::H1).unwrap()[0]
                .close
                .get(),
            dec!(1.1)
        );
    }

    #[test]
    fn series_are_separated_by_symbol_and_interval() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        insert_candles(
            conn,
            &btc(),
            Interval::H1,
            &[candle(0, dec!(1)), candle(3_600_000, dec!(2))],
        )
        .unwrap();
        insert_candles(conn, &btc(), Interval::M1, &[candle(0, dec!(1))]).unwrap();
        let eth = Symbol::new("ETHUSDT").unwrap();
        assert_eq!(count_candles(conn, &btc(), Interval::H1).unwrap(), 2);
        assert_eq!(count_candles(conn, &btc(), Interval::M1).unwrap(), 1);
        assert_eq!(count_candles(conn, &eth, Interval::H1).unwrap(), 0);
        assert_eq!(
            last_open_time(conn, &btc(), Interval::H1).unwrap(),
            Some(3_600_000)
        );
        assert_eq!(last_open_time(conn, &eth, Interval::H1).unwrap(), None);
    }

    #[test]
    fn range_is_start_inclusive_end_exclusive_and_last_n_is_oldest_first() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let candles: Vec<_> = (0..5).map(|i| candle(i * 60_000, dec!(1))).collect();
        insert_candles(conn, &btc(), Interval::M1, &candles).unwrap();
        let mid =
            candles_in_range(conn, &btc(), Interval::M1, Some(60_000), Some(180_000)).unwrap();
        assert_eq!(
            mid.iter().map(|c| c.open_time).collect::<Vec<_>>(),
            [60_000, 120_000]
        );
        let last = last_candles(conn, &btc(), Interval::M1, 2).unwrap();
        assert_eq!(
            last.iter().map(|c| c.open_time).collect::<Vec<_>>(),
            [180_000, 240_000]
        );
        assert_eq!(
            last_candles(conn, &btc(), Interval::M1, 10).unwrap().len(),
            5
        );
    }

    #[test]
    fn columns_read_from_the_store_are_those_of_its_candles() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let mut candles: Vec<_> = (0..6)
            .map(|i| Candle {
                high: Price::new(dec!(200.5)),
                ..candle(i * 60_000, dec!(1.5) * Decimal::from(i + 1))
            })
            .collect();
        candles[2].volume = Qty::new(dec!(0.000000000000000000001));
        candles[4].high = Price::new(dec!(12345678901234567890.5));
        insert_candles(conn, &btc(), Interval::M1, &candles).unwrap();
        // Stored by hand as text the quick reader does not take: the decimal library reads it.
        conn.execute(
            "INSERT INTO candles VALUES ('BTCUSDT', '1m', 360000, '100', '12345678901234567890', '1.00', '150', '7')",
            [],
        )
        .unwrap();
        for (from, to) in [
            (None, None),
            (Some(60_000), Some(300_000)),
            (Some(300_000), None),
        ] {
            let want = CandleColumns::from_candles(
                &candles_in_range(conn, &btc(), Interval::M1, from, to).unwrap(),
            );
            let got = columns_in_range(conn, &btc(), Interval::M1, from, to).unwrap();
            assert_eq!(got, want, "{from:?}..{to:?}");
        }
        // Without the over-wide rows, the columns give every candle back exactly.
        let exact = columns_in_range(conn, &btc(), Interval::M1, None, Some(120_000)).unwrap();
        assert!(exact.holds_exact_candles());
        let back = candles_in_range(conn, &btc(), Interval::M1, None, Some(120_000)).unwrap();
        for (i, c) in back.iter().enumerate() {
            assert_eq!(exact.exact_candle(i).as_ref(), Some(c));
        }
    }

    #[test]
    fn a_corrupt_stored_price_is_reported_with_its_column() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        conn.execute(
            "INSERT INTO candles VALUES ('BTCUSDT', '1h', 0, 'x', '1', '1', '1', '1')",
            [],
        )
        .unwrap();
        let err = load_candles(conn, &btc(), Interval::H1).unwrap_err();
        assert!(err.to_string().contains("candles.open"), "{err}");
        let err = columns_in_range(conn, &btc(), Interval::H1, None, None).unwrap_err();
        assert!(err.to_string().contains("candles.open"), "{err}");
    }
}

#[cfg(test)]
mod layout_tests;
