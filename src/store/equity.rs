//! Equity snapshots (`equity_snapshots`): a connection's equity over time, so the start-of-day
//! equity and the peak survive restarts.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use super::codec::{dec_from_sql, dec_to_sql};
use crate::domain::money::Quote;

/// One snapshot row per connection per UTC minute.
pub const SNAPSHOT_MS: i64 = 60_000;

/// Record a snapshot, and the connection's peak if this is a new one (in one transaction).
///
/// Rows are kept one per minute: marks come as often as every second from the market stream
/// (86,400 rows a day), so a snapshot in the same UTC minute as the latest row replaces that
/// row's values instead of adding one (1,440 rows a day). Each minute's row holds its last
/// equity, so the equity before midnight is still the day's last one; the peak is judged on
/// every snapshot, kept or not.
pub fn insert(
    conn: &Connection,
    connection: &str,
    equity: Quote,
    unrealized: Quote,
    at_ms: i64,
) -> StoreResult<()> {
    // Immediate: this reads the peak and the latest row, then writes; a deferred transaction
    // would fail at its first write with "database is locked" when an import wrote meanwhile.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let before = peak(&tx, connection)?;
    let last: Option<(i64, i64)> = tx
        .query_row(
            "SELECT id, taken_at FROM equity_snapshots WHERE connection = ?1 ORDER BY taken_at DESC, id DESC LIMIT 1",
            [connection],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (equity_text, unrealized_text) = (dec_to_sql(equity.get()), dec_to_sql(unrealized.get()));
    match last {
        // The same UTC minute as the latest row: that row takes this minute's newer value.
        Some((id, t))
            if at_ms >= t && t.div_euclid(SNAPSHOT_MS) == at_ms.div_euclid(SNAPSHOT_MS) =>
        {
            tx.execute(
                "UPDATE equity_snapshots SET equity = ?1, unrealized_pnl = ?2, taken_at = ?3 WHERE id = ?4",
                params![equity_text, unrealized_text, at_ms, id],
            )?;
        }
        _ => {
            tx.execute(
                "INSERT INTO equity_snapshots (connection, equity, unrealized_pnl, taken_at) VALUES (?1, ?2, ?3, ?4)",
                params![connection, equity_text, unrealized_text, at_ms],
            )?;
        }
    }
    let (peak_equity, peak_at) = match before {
        Some((p, t)) if p >= equity => (p, t),
        _ => (equity, at_ms),
    };
    tx.execute(
        "INSERT INTO equity_peaks (connection, equity, taken_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (connection) DO UPDATE SET equity = excluded.equity, taken_at = excluded.taken_at",
        params![connection, dec_to_sql(peak_equity.get()), peak_at],
    )?;
    tx.commit()?;
    Ok(())
}

fn one(conn: &Connection, sql: &str, connection: &str, at: i64) -> StoreResult<Option<Quote>> {
    let text: Option<String> = conn
        .query_row(sql, params![connection, at], |r| r.get(0))
        .optional()?;
    text.map(|t| dec_from_sql("equity_snapshots.equity", &t).map(Quote))
        .transpose()
}

/// Equity when the UTC day of `day_start` began: the last snapshot before it, else the first
/// one of the day.
pub fn start_of_day(
    conn: &Connection,
    connection: &str,
    day_start: i64,
) -> StoreResult<Option<Quote>> {
    if let Some(q) = one(
        conn,
        "SELECT equity FROM equity_snapshots WHERE connection = ?1 AND taken_at < ?2 ORDER BY taken_at DESC, id DESC LIMIT 1",
        connection,
        day_start,
    )? {
        return Ok(Some(q));
    }
    one(
        conn,
        "SELECT equity FROM equity_snapshots WHERE connection = ?1 AND taken_at >= ?2 ORDER BY taken_at, id LIMIT 1",
        connection,
        day_start,
    )
}

/// The highest equity ever recorded, with its time: the kept peak, or for snapshots written
/// before peaks were kept, a scan of them (decimals are TEXT, so compared in Rust, not SQL).
pub fn peak(conn: &Connection, connection: &str) -> StoreResult<Option<(Quote, i64)>> {
    let kept: Option<(String, i64)> = conn
        .query_row(
            "SELECT equity, taken_at FROM equity_peaks WHERE connection = ?1",
            [connection],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((e, t)) = kept {
        return Ok(Some((Quote(dec_from_sql("equity_peaks.equity", &e)?), t)));
    }
    let mut stmt =
        conn.prepare("SELECT equity, taken_at FROM equity_snapshots WHERE connection = ?1")?;
    let rows = stmt.query_map([connection], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
    let mut best: Option<(Quote, i64)> = None;
    for r in rows {
        let (e, t) = r?;
        let q = Quote(dec_from_sql("equity_snapshots.equity", &e)?);
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, t));
        }
    }
    Ok(best)
}

/// The latest snapshot: (equity, unrealised PnL, time).
pub fn latest(conn: &Connection, connection: &str) -> StoreResult<Option<(Quote, Quote, i64)>> {
    let row: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT equity, unrealized_pnl, taken_at FROM equity_snapshots WHERE connection = ?1 ORDER BY taken_at DESC, id DESC LIMIT 1",
            [connection],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(e, u, t)| {
        Ok((
            Quote(dec_from_sql("equity_snapshots.equity", &e)?),
            Quote(dec_from_sql("equity_snapshots.unrealized_pnl", &u)?),
            t,
        ))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use rust_decimal_macros::dec;

    #[test]
    fn start_of_day_is_the_last_equity_before_midnight_and_peak_the_highest() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let day = 86_400_000;
        assert_eq!(start_of_day(c, "paper", day).unwrap(), None);
        insert(c, "paper", Quote(dec!(1000)), Quote::ZERO, day + 5).unwrap();
        // no snapshot before the day: the day's first one
        assert_eq!(
            start_of_day(c, "paper", day).unwrap(),
            Some(Quote(dec!(1000)))
        );
        insert(c, "paper", Quote(dec!(1200.5)), Quote::ZERO, day + 10).unwrap();
        insert(c, "paper", Quote(dec!(950)), Quote::ZERO, 2 * day + 1).unwrap();
        insert(c, "other", Quote(dec!(99999)), Quote::ZERO, 2 * day + 1).unwrap();
        assert_eq!(
            start_of_day(c, "paper", 2 * day).unwrap(),
            Some(Quote(dec!(1200.5)))
        );
        assert_eq!(
            peak(c, "paper").unwrap(),
            Some((Quote(dec!(1200.5)), day + 10))
        );
        assert_eq!(latest(c, "paper").unwrap().unwrap().0, Quote(dec!(950)));
    }

    #[test]
    fn the_peak_is_kept_as_snapshots_are_written_and_survives_older_snapshots() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        // Snapshots from before peaks were kept: no peak row yet, the scan finds 1500.
        for (e, t) in [(dec!(1000), 1), (dec!(1500), 2), (dec!(1200), 3)] {
            c.execute(
                "INSERT INTO equity_snapshots (connection, equity, unrealized_pnl, taken_at) VALUES ('paper', ?1, '0', ?2)",
                params![e.to_string(), t],
            )
            .unwrap();
        }
        assert_eq!(peak(c, "paper").unwrap(), Some((Quote(dec!(1500)), 2)));
        // The first write keeps the older, higher peak rather than its own lower equity.
        insert(c, "paper", Quote(dec!(1400)), Quote::ZERO, 4).unwrap();
        assert_eq!(peak(c, "paper").unwrap(), Some((Quote(dec!(1500)), 2)));
        // 1500.01 is higher by a cent: compared as decimals, not text or floats.
        insert(c, "paper", Quote(dec!(1500.01)), Quote::ZERO, 5).unwrap();
        insert(c, "paper", Quote(dec!(999)), Quote::ZERO, 6).unwrap();
        assert_eq!(peak(c, "paper").unwrap(), Some((Quote(dec!(1500.01)), 5)));
        let kept: i64 = c
            .query_row("SELECT COUNT(*) FROM equity_peaks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
        assert_eq!(peak(c, "other").unwrap(), None);
    }

    #[test]
    fn snapshots_are_kept_one_per_minute_with_the_minutes_last_equity_and_every_peak_seen() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let day = 86_400_000;
        let rows = |conn: &Connection| -> i64 {
            conn.query_row("SELECT COUNT(*) FROM equity_snapshots", [], |r| r.get(0))
                .unwrap()
        };
        // A second-by-second stream over the last minute of a day: one row. Its peak (1060 at
        // second 30) is kept although the row ends on the minute's last value.
        for s in 0..60 {
            let e = if s == 30 {
                dec!(1060)
            } else {
                dec!(1000) + rust_decimal::Decimal::from(s)
            };
            insert(c, "paper", Quote(e), Quote::ZERO, day - 60_000 + s * 1000).unwrap();
        }
        assert_eq!(rows(c), 1);
        assert_eq!(
            peak(c, "paper").unwrap(),
            Some((Quote(dec!(1060)), day - 30_000))
        );
        assert_eq!(
            latest(c, "paper").unwrap().unwrap(),
            (Quote(dec!(1059)), Quote::ZERO, day - 1000)
        );
        // Midnight starts a new minute, so a new row; the start of the day is the last equity
        // before it.
        insert(c, "paper", Quote(dec!(990)), Quote::ZERO, day).unwrap();
        insert(c, "paper", Quote(dec!(995)), Quote::ZERO, day + 59_999).unwrap();
        assert_eq!(rows(c), 2);
        assert_eq!(
            start_of_day(c, "paper", day).unwrap(),
            Some(Quote(dec!(1059)))
        );
        insert(c, "paper", Quote(dec!(996)), Quote::ZERO, day + 60_000).unwrap();
        assert_eq!(rows(c), 3);
        // Another connection's minute is its own.
        insert(c, "other", Quote(dec!(5)), Quote::ZERO, day + 60_001).unwrap();
        assert_eq!(rows(c), 4);
        assert_eq!(latest(c, "paper").unwrap().unwrap().0, Quote(dec!(996)));
    }
}
