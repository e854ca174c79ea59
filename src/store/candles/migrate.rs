//! Migration 0028's Rust half: the candles of the old text table (`candles_text_0027`, renamed
//! by the migration's SQL) written into the integer layout by the same code every write uses,
//! then the old table dropped. A stored text that is not a decimal (a corrupt row) is copied as
//! it is, so the readers report it as they did before.

use super::write::{CandleNumber, CandleRow, write_rows};
use crate::domain::Symbol;
use crate::domain::market::Interval;
use rusqlite::{Connection, params};
use rusqlite_migration::{HookError, HookResult};
use rust_decimal::Decimal;

/// Rows read from the old table at a time (memory stays bounded on a large history).
const BATCH: i64 = 50_000;

pub(crate) fn migrate_text_candles(tx: &rusqlite::Transaction<'_>) -> HookResult {
    migrate(tx).map_err(|e| HookError::Hook(format!("moving candles to integers: {e}")))
}

fn migrate(conn: &Connection) -> Result<(), String> {
    let series: Vec<(String, String)> = conn
        .prepare(
            "SELECT DISTINCT symbol, interval FROM candles_text_0027 ORDER BY symbol, interval",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| e.to_string())?;
    for (symbol, interval) in series {
        // A series the typed API cannot name (hand-written rows) is copied as text.
        let typed = Symbol::new(&symbol)
            .ok()
            .zip(interval.parse::<Interval>().ok());
        let mut after = i64::MIN;
        let mut first = true;
        loop {
            let rows = read_batch(conn, &symbol, &interval, after, first)?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            first = false;
            let mut exact = Vec::with_capacity(rows.len());
            for (open_time, texts) in &rows {
                match (&typed, numbers(texts)) {
                    (Some(_), Some(numbers)) => exact.push(CandleRow {
                        open_time: *open_time,
                        numbers,
                    }),
                    _ => copy_as_text(conn, &symbol, &interval, *open_time, texts)?,
                }
            }
            if let Some((symbol, interval)) = &typed {
                write_rows(conn, symbol, *interval, &exact).map_err(|e| e.to_string())?;
            }
        }
    }
    conn.execute_batch("DROP TABLE candles_text_0027")
        .map_err(|e| e.to_string())
}

type TextRow = (i64, [String; 5]);

fn read_batch(
    conn: &Connection,
    symbol: &str,
    interval: &str,
    after: i64,
    first: bool,
) -> Result<Vec<TextRow>, String> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT open_time, open, high, low, close, volume FROM candles_text_0027
             WHERE symbol = ?1 AND interval = ?2 AND (open_time > ?3 OR ?4)
             ORDER BY open_time LIMIT ?5",
        )
        .map_err(|e| e.to_string())?;
    stmt.query_map(params![symbol, interval, after, first, BATCH], |r| {
        Ok((
            r.get(0)?,
            [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
        ))
    })
    .and_then(|rows| rows.collect())
    .map_err(|e| e.to_string())
}

/// The stored texts as numbers, when every one is a decimal.
fn numbers(texts: &[String; 5]) -> Option<[CandleNumber; 5]> {
    let mut out = [CandleNumber::Units(0, 0); 5];
    for (n, t) in out.iter_mut().zip(texts) {
        *n = CandleNumber::of(Decimal::from_str_exact(t).ok()?);
    }
    Some(out)
}

fn copy_as_text(
    conn: &Connection,
    symbol: &str,
    interval: &str,
    open_time: i64,
    texts: &[String; 5],
) -> Result<(), String> {
    let [o, h, l, c, v] = texts;
    conn.execute(
        "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![symbol, interval, open_time, o, h, l, c, v],
    )
    .map(drop)
    .map_err(|e| e.to_string())
}
