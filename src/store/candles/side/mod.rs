//! A columnar side file per candle series (#22): the series' columns as
//! [`columns_in_range`](super::columns_in_range) gives them, kept in `history/` beside the
//! database so a backtest loads a year of minutes with one read instead of stepping a million
//! SQLite rows.
//!
//! SQLite stays the one truth; the file is a derived cache. It carries the series' revision
//! (migration 0029: a random token every write sets afresh, so a database put back to an earlier
//! copy never counts its way to a file's revision) and is used only while that is still the series'
//! revision and its first and last open times are still the stored ones. A missing, stale,
//! truncated or corrupt file is never an error: the columns are read from SQLite, the reason is
//! logged, and the file is rebuilt.
//!
//! It is written lazily, on the first load after a change, not after each import: the live
//! candle sink writes a candle a minute, and rewriting a whole series' file each time would cost
//! more than every backtest gains; an import followed by a backtest pays the SQLite read once.
//! It is written to a temporary file and renamed over the old one, so a reader sees the old
//! file or the new one, never half of one (and a file torn by a crash fails its checksums).

mod format;
#[cfg(test)]
mod tests;

use super::write::{Series, find_series};
use super::{StoreResult, read_columns};
use crate::domain::Symbol;
use crate::domain::market::candle::{CandleColumns, ColumnsBuilder};
use crate::domain::market::{Interval, TimestampMs};
use crate::store::Store;
use format::{SideFile, TEXT_ROW, Unusable, decimals_needed};
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};

/// The directory of the side files, inside the data dir.
pub const SIDE_DIR: &str = "history";

/// What a side file must match to be used: the series as SQLite holds it now.
#[derive(Debug, Clone)]
struct Current {
    series: Series,
    revision: i64,
    first: Option<TimestampMs>,
    last: Option<TimestampMs>,
}

fn current(conn: &Connection, symbol: &Symbol, interval: Interval) -> StoreResult<Option<Current>> {
    let Some(series) = find_series(conn, symbol.as_str(), interval.as_str())? else {
        return Ok(None);
    };
    let (revision, first, last) = conn
        .prepare_cached(
            "SELECT revision,
                (SELECT open_time FROM candle_bars WHERE series_id = ?1 ORDER BY open_time LIMIT 1),
                (SELECT open_time FROM candle_bars WHERE series_id = ?1 ORDER BY open_time DESC LIMIT 1)
             FROM candle_series WHERE id = ?1",
        )?
        .query_row(params![series.id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(Some(Current {
        series,
        revision,
        first,
        last,
    }))
}

/// The side file of a series in the data dir `dir`.
fn side_path(dir: &Path, series: i64, symbol: &Symbol, interval: Interval) -> PathBuf {
    dir.join(SIDE_DIR)
        .join(format!("{series}-{symbol}-{interval}.cols"))
}

/// Candles with `from <= open_time < to` (either bound optional) as columns: exactly what
/// [`columns_in_range`](super::columns_in_range) gives (every bit, the same exact view), read
/// from the series' side file when it is fresh, else from SQLite (and the file rebuilt). A store
/// without a file (in memory) reads SQLite.
pub fn history_columns(
    store: &Store,
    symbol: &Symbol,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> StoreResult<CandleColumns> {
    let conn = store.conn();
    let Some(dir) = store.path().and_then(Path::parent) else {
        return super::columns_in_range(conn, symbol, interval, from, to);
    };
    let Some(now) = current(conn, symbol, interval)? else {
        return Ok(ColumnsBuilder::with_capacity(0).finish());
    };
    let path = side_path(dir, now.series.id, symbol, interval);
    match load(&path, symbol, interval, &now) {
        Ok(file) => {
            return match file.into_range(from, to) {
                Some(columns) => Ok(columns),
                None => super::columns_in_range(conn, symbol, interval, from, to),
            };
        }
        Err(Unusable::Missing) => {
            tracing::debug!(path = %path.display(), "no side file yet; reading SQLite")
        }
        Err(reason @ Unusable::Stale(_)) => {
            tracing::debug!(path = %path.display(), %reason, "reading SQLite")
        }
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "side file ignored; reading SQLite and rebuilding it")
        }
    }
    rebuild(conn, &path, symbol, interval, from, to)
}

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
            Ok(_) => SideState::Fresh {
                bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            },
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

/// The side file at `path` when it is the current one of the series.
fn load(
    path: &Path,
    symbol: &Symbol,
    interval: Interval,
    now: &Current,
) -> Result<SideFile, Unusable> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let side = SideFile::read(&mut file, len)?;
    let stale = |what: String| Err(Unusable::Stale(what));
    if side.series_id != now.series.id
        || side.symbol != symbol.as_str()
        || side.interval != interval.as_str()
    {
        return stale(format!(
            "it is of series {} {} {}",
            side.series_id, side.symbol, side.interval
        ));
    }
    if side.revision != now.revision {
        return stale(format!(
            "revision {} (the series is at {})",
            side.revision, now.revision
        ));
    }
    let ends = (
        side.open_time.first().copied(),
        side.open_time.last().copied(),
    );
    if ends != (now.first, now.last) {
        return stale(format!(
            "its rows span {ends:?}, the stored ones {:?}",
            (now.first, now.last)
        ));
    }
    Ok(side)
}

/// Read the whole series from SQLite (one snapshot: its revision and rows agree), write its side
/// file, and give the rows in range.
fn rebuild(
    conn: &Connection,
    path: &Path,
    symbol: &Symbol,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> StoreResult<CandleColumns> {
    // A savepoint is a read transaction of its own, or nests in the caller's.
    conn.execute_batch("SAVEPOINT side_file_read")?;
    let read = read_series(conn, symbol, interval);
    conn.execute_batch("RELEASE side_file_read")?;
    let side = match read {
        Ok(Some(side)) => side,
        Ok(None) => return Ok(ColumnsBuilder::with_capacity(0).finish()),
        Err(e) => {
            // A row the range may not include (a corrupt stored number): the range alone, as
            // before, says whether it matters.
            tracing::warn!(%e, "cannot read the whole series for its side file");
            return super::columns_in_range(conn, symbol, interval, from, to);
        }
    };
    let mut side = side;
    if let Err(e) = write_atomically(path, &mut side) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the side file; backtests read SQLite until it can");
    }
    match side.into_range(from, to) {
        Some(columns) => Ok(columns),
        None => super::columns_in_range(conn, symbol, interval, from, to),
    }
}

fn read_series(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
) -> StoreResult<Option<SideFile>> {
    let Some(now) = current(conn, symbol, interval)? else {
        return Ok(None);
    };
    let series = now.series;
    let hint = 0;
    let mut price_units = Vec::with_capacity(hint);
    let mut volume_units = Vec::with_capacity(hint);
    let mut price_need = Vec::with_capacity(hint);
    let mut volume_need = Vec::with_capacity(hint);
    let columns = read_columns(conn, &series, interval, None, None, |row| match row {
        Some(&[o, h, l, c, v]) => {
            price_units.push(o.max(h).max(l).max(c));
            volume_units.push(v);
            let need = |u| decimals_needed(u, series.price_scale);
            price_need.push(need(o).max(need(h)).max(need(l)).max(need(c)));
            volume_need.push(decimals_needed(v, series.volume_scale));
        }
        None => {
            price_units.push(0);
            volume_units.push(0);
            price_need.push(TEXT_ROW);
            volume_need.push(TEXT_ROW);
        }
    })?;
    let CandleColumns {
        open_time,
        open,
        high,
        low,
        close,
        volume,
        ..
    } = columns;
    Ok(Some(SideFile {
        series_id: series.id,
        revision: now.revision,
        symbol: symbol.as_str().to_string(),
        interval: interval.as_str().to_string(),
        price_scale: series.price_scale,
        volume_scale: series.volume_scale,
        open_time,
        values: [open, high, low, close, volume],
        price_units,
        volume_units,
        price_need,
        volume_need,
    }))
}

/// Write `side` to a temporary file beside `path` and rename it over `path`.
fn write_atomically(path: &Path, side: &mut SideFile) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no directory"))?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Unique per process and call: two writers never share a temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let done = side
        .write(&mut out)
        .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}
