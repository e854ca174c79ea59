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
//! A file whose rows are still a prefix of the series (it carries the series' prefix revision,
//! migration 0030, which every write but a pure append sets afresh, and its first open time) is
//! extended with only the rows after its last open time: after the live sink's new candles the
//! next backtest reads those few rows, not the whole series.
//! It is written to a temporary file and renamed over the old one, so a reader sees the old
//! file or the new one, never half of one (and a file torn by a crash fails its checksums).

#[cfg(test)]
mod append_tests;
mod format;
mod status;
#[cfg(test)]
mod tests;

pub use status::{SeriesCache, SideState, series_caches};

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
    prefix_revision: i64,
    first: Option<TimestampMs>,
    last: Option<TimestampMs>,
}

fn current(conn: &Connection, symbol: &Symbol, interval: Interval) -> StoreResult<Option<Current>> {
    let Some(series) = find_series(conn, symbol.as_str(), interval.as_str())? else {
        return Ok(None);
    };
    let (revision, prefix_revision, first, last) = conn
        .prepare_cached(
            "SELECT revision, prefix_revision,
                (SELECT open_time FROM candle_bars WHERE series_id = ?1 ORDER BY open_time LIMIT 1),
                (SELECT open_time FROM candle_bars WHERE series_id = ?1 ORDER BY open_time DESC LIMIT 1)
             FROM candle_series WHERE id = ?1",
        )?
        .query_row(params![series.id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    Ok(Some(Current {
        series,
        revision,
        prefix_revision,
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
    history_columns_writing(store, symbol, interval, from, to, TailWrite::WhenLong)
}

/// Rows after a side file's last that a load reads from SQLite again rather than rewriting the
/// file for them (see [`TailWrite::WhenLong`]): a few milliseconds of SQLite reading, against
/// about a tenth of a second to rewrite a million-row file.
pub(super) const TAIL_ROWS_READ_AGAIN: usize = 65_536;

/// When a load that extends a side file with the rows after it writes the file back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TailWrite {
    /// Once the rows after it reach [`TAIL_ROWS_READ_AGAIN`] or an eighth of the file: until
    /// then each load reads them from SQLite and serves them after the file's rows (the live
    /// candle sink adds one a minute; rewriting the whole file for each would cost more than it
    /// saves).
    WhenLong,
    /// Every time (tests: the written file must be the one a rebuild writes).
    #[cfg(test)]
    Always,
}

impl TailWrite {
    fn writes(self, tail: usize, file_rows: usize) -> bool {
        match self {
            TailWrite::WhenLong => tail >= TAIL_ROWS_READ_AGAIN || tail * 8 >= file_rows,
            #[cfg(test)]
            TailWrite::Always => true,
        }
    }
}

/// [`history_columns`], writing an extended side file back as `tail_write` says.
pub(super) fn history_columns_writing(
    store: &Store,
    symbol: &Symbol,
    interval: Interval,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
    tail_write: TailWrite,
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
        Ok(Found::Fresh(file)) => {
            return serve(conn, symbol, interval, file, from, to);
        }
        Ok(Found::Behind(file)) => {
            return extend(conn, &path, symbol, interval, file, from, to, tail_write);
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

/// A side file a load can use.
#[derive(Debug)]
enum Found {
    /// The series' current one.
    Fresh(SideFile),
    /// A prefix of the series: the stored rows after its last open time extend it.
    Behind(SideFile),
}

/// The side file at `path` when it is the current one of the series, or a prefix of it.
fn load(
    path: &Path,
    symbol: &Symbol,
    interval: Interval,
    now: &Current,
) -> Result<Found, Unusable> {
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
    let ends = (
        side.open_time.first().copied(),
        side.open_time.last().copied(),
    );
    if side.revision == now.revision && ends == (now.first, now.last) {
        return Ok(Found::Fresh(side));
    }
    if is_prefix(&side, now) {
        return Ok(Found::Behind(side));
    }
    if side.revision != now.revision {
        return stale(format!(
            "revision {} (the series is at {})",
            side.revision, now.revision
        ));
    }
    stale(format!(
        "its rows span {ends:?}, the stored ones {:?}",
        (now.first, now.last)
    ))
}

/// Whether `side`'s rows are a prefix of the series as it stands (`now`) with stored rows after
/// it: no write but a pure append since it was read, the same first open time and scales.
fn is_prefix(side: &SideFile, now: &Current) -> bool {
    let (Some(&first), Some(&last), Some(now_last)) =
        (side.open_time.first(), side.open_time.last(), now.last)
    else {
        return false;
    };
    side.prefix_revision == now.prefix_revision
        && Some(first) == now.first
        && last < now_last
        && side.price_scale == now.series.price_scale
        && side.volume_scale == now.series.volume_scale
}

/// Read only the stored rows after `side`'s last (one snapshot with the series' revisions),
/// append them, write the file when `tail_write` says so, and give the rows in range. Anything
/// that does not line up (a write in between, a row that cannot be read) rebuilds the file whole
/// instead.
#[allow(clippy::too_many_arguments)]
fn extend(
    conn: &Connection,
    path: &Path,
    symbol: &Symbol,
    interval: Interval,
    mut side: SideFile,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
    tail_write: TailWrite,
) -> StoreResult<CandleColumns> {
    let Some(&after) = side.open_time.last() else {
        return rebuild(conn, path, symbol, interval, from, to);
    };
    conn.execute_batch("SAVEPOINT side_file_append")?;
    let read = read_series(conn, symbol, interval, Some(after));
    conn.execute_batch("RELEASE side_file_append")?;
    let (now, tail) = match read {
        Ok(Some(read)) => read,
        Ok(None) => return rebuild(conn, path, symbol, interval, from, to),
        Err(e) => {
            tracing::debug!(%e, "cannot read the new rows for the side file; rebuilding it whole");
            return rebuild(conn, path, symbol, interval, from, to);
        }
    };
    let lines_up = is_prefix(&side, &now)
        && tail.open_time.first().is_some_and(|&t| t > after)
        && tail.open_time.last().copied() == now.last;
    if !lines_up {
        tracing::debug!(path = %path.display(), "the series changed under the side file; rebuilding it whole");
        return rebuild(conn, path, symbol, interval, from, to);
    }
    let added = tail.rows();
    let file_rows = side.rows();
    side.append(tail);
    side.revision = now.revision;
    if tail_write.writes(added, file_rows) {
        tracing::debug!(path = %path.display(), added, rows = side.rows(), "side file extended with the new rows");
        keep(path, &mut side);
    } else {
        tracing::debug!(path = %path.display(), added, rows = side.rows(), "the new rows read after the side file's; the file is left as it is");
    }
    serve(conn, symbol, interval, side, from, to)
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
    let read = read_series(conn, symbol, interval, None);
    conn.execute_batch("RELEASE side_file_read")?;
    let mut side = match read {
        Ok(Some((_, side))) => side,
        Ok(None) => return Ok(ColumnsBuilder::with_capacity(0).finish()),
        Err(e) => {
            // A row the range may not include (a corrupt stored number): the range alone, as
            // before, says whether it matters.
            tracing::warn!(%e, "cannot read the whole series for its side file");
            return super::columns_in_range(conn, symbol, interval, from, to);
        }
    };
    tracing::debug!(path = %path.display(), rows = side.rows(), "side file rebuilt from the whole series");
    keep(path, &mut side);
    serve(conn, symbol, interval, side, from, to)
}

/// The rows of `side` in range, or those rows from SQLite when one holds a number kept as text
/// (see [`SideFile::into_range`]).
fn serve(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    side: SideFile,
    from: Option<TimestampMs>,
    to: Option<TimestampMs>,
) -> StoreResult<CandleColumns> {
    match side.into_range(from, to) {
        Some(columns) => Ok(columns),
        None => super::columns_in_range(conn, symbol, interval, from, to),
    }
}

/// Write `side` to `path`; a failure is logged, never an error (SQLite still answers).
fn keep(path: &Path, side: &mut SideFile) {
    if let Err(e) = write_atomically(path, side) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the side file; backtests read SQLite until it can");
    }
}

/// The series as it stands and its rows after `after` (all of them for `None`) as a side file of
/// its current revisions. The caller holds one read snapshot around it.
fn read_series(
    conn: &Connection,
    symbol: &Symbol,
    interval: Interval,
    after: Option<TimestampMs>,
) -> StoreResult<Option<(Current, SideFile)>> {
    let Some(now) = current(conn, symbol, interval)? else {
        return Ok(None);
    };
    let series = now.series;
    // `after` is below the series' last open time, so `after + 1` does not overflow.
    let from = after.map(|t| t.saturating_add(1));
    let (mut price_units, mut volume_units) = (Vec::new(), Vec::new());
    let (mut price_need, mut volume_need) = (Vec::new(), Vec::new());
    let columns = read_columns(conn, &series, interval, from, None, |row| match row {
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
    let side = SideFile {
        series_id: series.id,
        revision: now.revision,
        prefix_revision: now.prefix_revision,
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
    };
    Ok(Some((now, side)))
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
