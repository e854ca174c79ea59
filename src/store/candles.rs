//! Candle repository: candles stored exactly (decimal TEXT as the exchange sent them), keyed by
//! symbol, interval and open time. Inserting is idempotent: a candle already stored is left as is.

use super::StoreResult;
use super::codec::{dec_from_sql, dec_to_sql};
use crate::domain::Symbol;
use crate::domain::market::candle::{CandleColumns, ColumnsBuilder};
use crate::domain::market::{Candle, Interval, TimestampMs};
use crate::domain::money::{Price, Qty, parse_units};
use rusqlite::{Connection, Row, params};

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
    // Immediate: the batch writes anyway, and taking the write lock first lets a busy database
    // make this wait (busy timeout) rather than fail on a read-to-write upgrade.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut report = InsertReport::default();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO candles (symbol, interval, open_time, open, high, low, close, volume)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for c in candles {
            let changed = stmt.execute(params![
                symbol.as_str(),
                interval.as_str(),
                c.open_time,
                dec_to_sql(c.open.get()),
                dec_to_sql(c.high.get()),
                dec_to_sql(c.low.get()),
                dec_to_sql(c.close.get()),
                dec_to_sql(c.volume.get()),
            ])?;
            if changed == 0 {
                report.already_present += 1;
            } else {
                report.inserted += 1;
            }
        }
    }
    tx.commit()?;
    Ok(report)
}

const COLUMNS: &str = "open_time, open, high, low, close, volume";

fn candle_from_row(row: &Row<'_>) -> rusqlite::Result<(TimestampMs, [String; 5])> {
    Ok((
        row.get(0)?,
        [
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
        ],
    ))
}

fn decode(
    (open_time, [open, high, low, close, volume]): (TimestampMs, [String; 5]),
) -> StoreResult<Candle> {
    Ok(Candle {
        open_time,
        open: Price::new(dec_from_sql("candles.open", &open)?),
        high: Price::new(dec_from_sql("candles.high", &high)?),
        low: Price::new(dec_from_sql("candles.low", &low)?),
        close: Price::new(dec_from_sql("candles.close", &close)?),
        volume: Qty::new(dec_from_sql("candles.volume", &volume)?),
    })
}

/// Candles with `from <= open_time < to` (either bound optional), oldest first.
pub fn candles_in_range(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> StoreResult<Vec<Candle>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM candles
         WHERE symbol = ?1 AND interval = ?2 AND open_time >= ?3 AND open_time < ?4
         ORDER BY open_time"
    ))?;
    let rows = stmt
        .query_map(
            params![
                symbol.as_str(),
                interval.as_str(),
                from.unwrap_or(i64::MIN),
                to.unwrap_or(i64::MAX)
            ],
            candle_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode).collect()
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
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM candles WHERE symbol = ?1 AND interval = ?2 ORDER BY open_time"
    ))?;
    let mut rows = stmt.query(params![symbol.as_str(), interval.as_str()])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        f(decode(candle_from_row(row)?)?);
        n += 1;
    }
    Ok(n)
}

/// Candles with `from <= open_time < to` (either bound optional) straight into columns, oldest
/// first: the columns [`CandleColumns::from_candles`] builds from [`candles_in_range`], with no
/// `Decimal` and no `Candle` in between (each stored number is read as fixed-point from its
/// text; one the quick reader does not take goes through the decimal library as before).
pub fn columns_in_range(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> StoreResult<CandleColumns> {
    let (from, to) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
    let count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM candles
         WHERE symbol = ?1 AND interval = ?2 AND open_time >= ?3 AND open_time < ?4",
        params![symbol.as_str(), interval.as_str(), from, to],
        |r| r.get(0),
    )?;
    let mut builder = ColumnsBuilder::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM candles
         WHERE symbol = ?1 AND interval = ?2 AND open_time >= ?3 AND open_time < ?4
         ORDER BY open_time"
    ))?;
    let mut rows = stmt.query(params![symbol.as_str(), interval.as_str(), from, to])?;
    while let Some(row) = rows.next()? {
        let open_time: TimestampMs = row.get(0)?;
        let mut units = [(0u64, 0u32); 5];
        let mut quick = true;
        for (k, u) in units.iter_mut().enumerate() {
            match row.get_ref(k + 1)?.as_bytes().ok().and_then(parse_units) {
                Some((v, [])) => *u = v,
                _ => {
                    quick = false;
                    break;
                }
            }
        }
        if quick {
            builder.push_units(open_time, units);
        } else {
            builder.push_candle(&decode(candle_from_row(row)?)?);
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
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM candles WHERE symbol = ?1 AND interval = ?2
         ORDER BY open_time DESC LIMIT ?3"
    ))?;
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(
            params![symbol.as_str(), interval.as_str(), limit],
            candle_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut candles = rows
        .into_iter()
        .map(decode)
        .collect::<StoreResult<Vec<_>>>()?;
    candles.reverse();
    Ok(candles)
}

/// Open time of the newest stored candle of a series.
pub fn last_open_time(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
) -> StoreResult<Option<TimestampMs>> {
    Ok(conn.query_row(
        "SELECT MAX(open_time) FROM candles WHERE symbol = ?1 AND interval = ?2",
        params![symbol.as_str(), interval.as_str()],
        |r| r.get(0),
    )?)
}

/// Number of stored candles of a series.
pub fn count_candles(conn: &Connection, symbol: &Symbol, interval: Interval) -> StoreResult<usize> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM candles WHERE symbol = ?1 AND interval = ?2",
        params![symbol.as_str(), interval.as_str()],
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
