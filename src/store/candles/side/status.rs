//! `trademind db status`'s view of the side files: what a backtest would do with each stored
//! series' file now, by the loader's own test, with nothing written.

use super::format::Unusable;
use super::{Found, current, load, side_path};
use crate::domain::Symbol;
use crate::domain::market::{Interval, TimestampMs};
use crate::store::{Store, StoreResult};
use rusqlite::params;
use std::path::Path;

/// A stored series and whether its side file is the one a backtest would read now
/// (`trademind db status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeriesCache {
    pub symbol: String,
    pub interval: String,
    pub candles: u64,
    pub first_open_time: Option<TimestampMs>,
    pub last_open_time: Option<TimestampMs>,
    /// The side file's path.
    pub side_file: String,
    pub side_state: SideState,
}

/// What a backtest would do with a series' side file now: the same test it applies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SideState {
    /// Current: a backtest reads it.
    Fresh { bytes: u64 },
    /// A prefix of the series: the next backtest reads only the newer candles and appends them.
    Behind { new_candles: u64 },
    /// Not written yet: the next backtest reads SQLite and writes it.
    Missing,
    /// Of an earlier state of the series: the next backtest reads SQLite and rewrites it.
    Stale { reason: String },
    /// Truncated, corrupt or unreadable: the next backtest reads SQLite and rewrites it.
    Unusable { reason: String },
}

impl std::fmt::Display for SideState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SideState::Fresh { bytes } if *bytes < 1_000_000 => {
                write!(f, "fresh ({:.1} kB)", *bytes as f64 / 1e3)
            }
            SideState::Fresh { bytes } => write!(f, "fresh ({:.1} MB)", *bytes as f64 / 1e6),
            SideState::Behind { new_candles } => write!(
                f,
                "behind by {new_candles} candle{}; backtests read them from the database after \
                 the file's rows, and rewrite the file once they are many",
                if *new_candles == 1 { "" } else { "s" }
            ),
            SideState::Missing => f.write_str("not written yet; the next backtest writes it"),
            SideState::Stale { reason } => {
                write!(f, "stale: {reason}; the next backtest rewrites it")
            }
            SideState::Unusable { reason } => {
                write!(f, "unusable: {reason}; the next backtest rewrites it")
            }
        }
    }
}

/// Every stored series with its side file's state, by symbol then interval. Nothing is written:
/// a missing or stale file is only reported. `None` for a store without a file (in memory).
pub fn series_caches(store: &Store) -> StoreResult<Option<Vec<SeriesCache>>> {
    let Some(dir) = store.path().and_then(Path::parent) else {
        return Ok(None);
    };
    let conn = store.conn();
    let names: Vec<(String, String)> = conn
        .prepare("SELECT symbol, interval FROM candle_series ORDER BY symbol, interval")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(names.len());
    for (symbol_name, interval_name) in names {
        // A name no command could have stored is left out rather than failing the status.
        let (Ok(symbol), Ok(interval)) = (
            symbol_name.parse::<Symbol>(),
            interval_name.parse::<Interval>(),
        ) else {
            tracing::warn!(symbol = %symbol_name, interval = %interval_name, "a stored series with an unreadable name");
            continue;
        };
        let Some(now) = current(conn, &symbol, interval)? else {
            continue;
        };
        let candles: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM candle_bars WHERE series_id = ?1")?
            .query_row(params![now.series.id], |r| r.get(0))?;
        let path = side_path(dir, now.series.id, &symbol, interval);
        let side_state = match load(&path, &symbol, interval, &now) {
            Ok(Found::Fresh(_)) => SideState::Fresh {
                bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            },
            Ok(Found::Behind(file)) => {
                let after = file.open_time.last().copied().unwrap_or(i64::MIN);
                let new: i64 = conn
                    .prepare_cached(
                        "SELECT COUNT(*) FROM candle_bars WHERE series_id = ?1 AND open_time > ?2",
                    )?
                    .query_row(params![now.series.id, after], |r| r.get(0))?;
                SideState::Behind {
                    new_candles: u64::try_from(new).unwrap_or(0),
                }
            }
            Err(Unusable::Missing) => SideState::Missing,
            Err(Unusable::Stale(reason)) => SideState::Stale { reason },
            Err(other) => SideState::Unusable {
                reason: other.to_string(),
            },
        };
        out.push(SeriesCache {
            symbol: symbol_name,
            interval: interval_name,
            candles: u64::try_from(candles).unwrap_or(0),
            first_open_time: now.first,
            last_open_time: now.last,
            side_file: path.display().to_string(),
            side_state,
        });
    }
    Ok(Some(out))
}
