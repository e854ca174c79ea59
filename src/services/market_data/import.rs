//! CSV candle import: Binance's public kline dumps (12 columns, open time in ms or µs, with or
//! without a header), plain `open_time,open,high,low,close,volume` files, and CryptoDataDownload
//! exports (banner line, `date,symbol,open,high,low,close,volume_btc,volume`, newest first).
//!
//! Parsing is a pure function of the text ([`parse_candles`]); [`import_file`] reads the file and
//! stores the candles. A bad row stops the import with its line number and the reason, unless
//! `skip_bad` is set, in which case the rest is imported and the skipped rows are reported.

use crate::domain::Symbol;
use crate::domain::market::{Candle, Interval, TimestampMs};
use crate::domain::money::{Price, Qty};
use crate::store::StoreError;
use crate::store::candles::{CandleRow, insert_candle_rows};
use chrono::{NaiveDate, NaiveDateTime};
use rusqlite::Connection;
use serde::Serialize;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Open times above this are microseconds: in milliseconds it would be the year 5138.
pub(crate) const MICROS_THRESHOLD: i64 = 100_000_000_000_000;

/// Candles stored per transaction (and per progress tick).
const CHUNK: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the file has no candle rows")]
    Empty,
    #[error("line {line}: {reason} (use --skip-bad to import the other rows)")]
    BadRow { line: usize, reason: String },
    #[error("line {line} is longer than {MAX_LINE_BYTES} bytes: this is not a candle CSV file")]
    LineTooLong { line: usize },
    #[error("line {line}: more than {MAX_BAD_ROWS} bad rows: this is not a candle CSV file")]
    TooManyBadRows { line: usize },
    #[error(
        "{source}; before it stopped, the candles from {first} to {last} were stored ({inserted} new, {already_present} already there) and the rest were not: importing the file again skips the stored ones"
    )]
    Partial {
        inserted: usize,
        already_present: usize,
        first: String,
        last: String,
        source: Box<ImportError>,
    },
    #[error("cannot store candles: {0}")]
    Store(#[from] StoreError),
}

/// A row that was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// 1-based line number in the file.
    pub line: usize,
    pub reason: String,
}

/// Missing candles between two stored ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Open time of the candle before the hole.
    pub after: TimestampMs,
    /// Open time of the candle after the hole.
    pub before: TimestampMs,
    /// Number of candles missing.
    pub missing: i64,
}

/// Which layout the file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvFormat {
    /// Binance kline dump (12 columns) or a plain `open_time,open,high,low,close,volume` file.
    Binance,
    /// CryptoDataDownload export (banner, `date,symbol,open,...`).
    CryptoDataDownload,
}

/// Candles parsed from a file, oldest first, with what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCandles {
    pub format: CsvFormat,
    /// Data rows read (header and banner excluded).
    pub rows_read: usize,
    pub candles: Vec<Candle>,
    pub skipped: Vec<BadRow>,
    pub gaps: Vec<Gap>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    pub format: CsvFormat,
    pub rows_read: usize,
    pub inserted: usize,
    pub already_present: usize,
    pub skipped: Vec<BadRow>,
    pub first_open_time: Option<TimestampMs>,
    pub last_open_time: Option<TimestampMs>,
    pub gaps: Vec<Gap>,
}

fn parse_time_ms(field: &str) -> Result<TimestampMs, String> {
    let raw: i64 = field
        .trim()
        .parse()
        .map_err(|_| format!("open time {field:?} is not an integer"))?;
    if raw < 0 {
        return Err(format!("open time {raw} is negative"));
    }
    Ok(if raw >= MICROS_THRESHOLD {
        raw / 1000
    } else {
        raw
    })
}

/// `2019-10-17 09-AM` (CryptoDataDownload hourly) or `2019-10-17 09:00:00` / `2019-10-17`.
fn parse_cdd_date(field: &str) -> Result<TimestampMs, String> {
    let field = field.trim();
    let bad = || format!("date {field:?} is not like 2019-10-17 09-AM");
    let naive = if let Some((day, hour)) = field.split_once(' ')
        && let Some((h, half)) = hour.split_once('-')
    {
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad())?;
        let h: u32 = h.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&h) {
            return Err(bad());
        }
        let h24 = match half {
            "AM" => h % 12,
            "PM" => h % 12 + 12,
            _ => return Err(bad()),
        };
        day.and_hms_opt(h24, 0, 0).ok_or_else(bad)?
    } else if let Ok(t) = NaiveDateTime::parse_from_str(field, "%Y-%m-%d %H:%M:%S") {
        t
    } else {
        NaiveDate::parse_from_str(field, "%Y-%m-%d")
            .map_err(|_| bad())?
            .and_hms_opt(0, 0, 0)
            .ok_or_else(bad)?
    };
    Ok(naive.and_utc().timestamp_millis())
}

fn decimal<T: FromStr>(name: &str, field: Option<&str>) -> Result<T, String> {
    let field = field.ok_or_else(|| format!("missing {name} column"))?;
    T::from_str(field.trim()).map_err(|_| format!("{name} {:?} is not a number", field.trim()))
}

/// Parse and check one data row. `fields` are the row's columns in the file's layout.
fn parse_row(format: CsvFormat, line: &str) -> Result<Candle, String> {
    let mut fields = line.split(',');
    let open_time = match format {
        CsvFormat::Binance => parse_time_ms(fields.next().unwrap_or(""))?,
        CsvFormat::CryptoDataDownload => {
            let t = parse_cdd_date(fields.next().unwrap_or(""))?;
            fields.next(); // symbol
            t
        }
    };
    let open: Price = decimal("open", fields.next())?;
    let high: Price = decimal("high", fields.next())?;
    let low: Price = decimal("low", fields.next())?;
    let close: Price = decimal("close", fields.next())?;
    let volume: Qty = decimal("volume", fields.next())?;
    if !low.is_positive() {
        return Err(format!("low {low} is not a positive price"));
    }
    if high < low {
        return Err(format!("high {high} is below low {low}"));
    }
    for (name, v) in [("open", open), ("close", close)] {
        if v < low || v > high {
            return Err(format!("{name} {v} is outside [low {low}, high {high}]"));
        }
    }
    if volume.get().is_sign_negative() && !volume.is_zero() {
        return Err(format!("volume {volume} is negative"));
    }
    // Trailing zeros dropped, as the store keeps them: a candle read from a file is the same
    // decimal, digit for digit, as the one read back from the database.
    let norm = |p: Price| Price(p.get().normalize());
    Ok(Candle {
        open_time,
        open: norm(open),
        high: norm(high),
        low: norm(low),
        close: norm(close),
        volume: Qty(volume.get().normalize()),
    })
}

/// The longest line read. A kline row is about 130 bytes; anything much longer is not a candle
/// file (`/dev/zero` has no line end at all), and reading it whole would take all memory.
pub const MAX_LINE_BYTES: usize = 4096;

/// After this many bad rows even `--skip-bad` gives up: the file is not candles.
pub const MAX_BAD_ROWS: usize = 10_000;

/// 2009-01-03 00:00 UTC, the day of Bitcoin's first block: no crypto candle is older, so an open
/// time before it is a mistake (a wrong unit, a negative year), not history.
pub const EARLIEST_OPEN_TIME: TimestampMs = 1_230_940_800_000;

/// How far ahead of the clock an open time may be (a candle from the future is a mistake, and
/// one dated 9999 made `data fetch` believe it was up to date forever).
pub const FUTURE_SLACK_MS: TimestampMs = 86_400_000;

/// The open times a file's rows may have. Files a user hands in are checked against
/// `[EARLIEST_OPEN_TIME, now + FUTURE_SLACK_MS]`; the bundled data is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeBounds {
    pub earliest: Option<TimestampMs>,
    pub latest: Option<TimestampMs>,
}

impl TimeBounds {
    /// The bounds for a user's file read at `now_ms`.
    pub fn for_files_at(now_ms: TimestampMs) -> TimeBounds {
        TimeBounds {
            earliest: Some(EARLIEST_OPEN_TIME),
            latest: Some(now_ms.saturating_add(FUTURE_SLACK_MS)),
        }
    }

    /// Whether `t` is within the bounds (the quick test of [`check`](Self::check)).
    #[inline]
    pub(crate) fn contains(&self, t: TimestampMs) -> bool {
        self.earliest.is_none_or(|e| t >= e) && self.latest.is_none_or(|l| t <= l)
    }

    fn check(&self, t: TimestampMs) -> Result<(), String> {
        if let Some(e) = self.earliest
            && t < e
        {
            return Err(format!(
                "open time {} is before 2009-01-03, older than any crypto market",
                fmt_ms(t)
            ));
        }
        if let Some(l) = self.latest
            && t > l
        {
            return Err(format!(
                "open time {} is more than a day in the future",
                fmt_ms(t)
            ));
        }
        Ok(())
    }
}

/// `YYYY-MM-DD HH:MM` UTC for messages (the raw number when it is not a date).
pub fn fmt_ms(t: TimestampMs) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// What a streamed parse saw, besides the candles it handed on.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    pub format: CsvFormat,
    /// Data rows read (header and banner excluded).
    pub rows_read: usize,
    pub skipped: Vec<BadRow>,
    pub gaps: Vec<Gap>,
}

/// Read one line of at most [`MAX_LINE_BYTES`] into `buf` (without its line end). `Ok(false)` at
/// the end of the input.
fn read_line<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    line: usize,
    path: &Path,
) -> Result<bool, ImportError> {
    buf.clear();
    let limit = MAX_LINE_BYTES as u64 + 1;
    let n = reader
        .by_ref()
        .take(limit)
        .read_until(b'\n', buf)
        .map_err(|source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE_BYTES {
        return Err(ImportError::LineTooLong { line });
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(true)
}

/// A line is a header when none of its fields is a number (a bad data row still has some).
fn is_header(line: &str) -> bool {
    !line.split(',').any(|f| f.trim().parse::<f64>().is_ok())
}

/// What a line of a candle file is, by the rules every reader of the files shares.
pub(crate) enum LineKind<'a> {
    /// Blank, or the CryptoDataDownload banner.
    Skip,
    /// The header line, naming the layout.
    Header(CsvFormat),
    /// Not UTF-8: a bad row.
    NotUtf8,
    /// A data row's text.
    Data(&'a str),
}

/// Before the first data row a file may have the CryptoDataDownload banner, then a header; the
/// first line may start with a UTF-8 byte-order mark (Excel and Windows tools write one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preamble {
    banner_possible: bool,
    header_possible: bool,
}

impl Default for Preamble {
    fn default() -> Self {
        Preamble {
            banner_possible: true,
            header_possible: true,
        }
    }
}

impl Preamble {
    /// Whether the banner and the header are behind: every further line is data or blank.
    pub(crate) fn is_over(&self) -> bool {
        !self.banner_possible && !self.header_possible
    }

    /// Classify line `line` (1-based) given without its line end.
    pub(crate) fn classify<'a>(&mut self, line: usize, bytes: &'a [u8]) -> LineKind<'a> {
        let Ok(mut text) = std::str::from_utf8(bytes) else {
            (self.banner_possible, self.header_possible) = (false, false);
            return LineKind::NotUtf8;
        };
        if line == 1 {
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        if text.trim().is_empty() {
            return LineKind::Skip;
        }
        if self.banner_possible {
            self.banner_possible = false;
            if text.starts_with("Timestamps are") {
                return LineKind::Skip;
            }
        }
        if self.header_possible {
            self.header_possible = false;
            if is_header(text) {
                return LineKind::Header(
                    if text.trim().to_ascii_lowercase().starts_with("date,") {
                        CsvFormat::CryptoDataDownload
                    } else {
                        CsvFormat::Binance
                    },
                );
            }
        }
        LineKind::Data(text)
    }
}

/// Parse and check one data row: its fields, its open time within `bounds`, and (when `prev`
/// is given, for files that must be ascending) after the row before it.
pub(crate) fn check_row(
    format: CsvFormat,
    text: &str,
    bounds: TimeBounds,
    prev: Option<TimestampMs>,
) -> Result<Candle, String> {
    let c = parse_row(format, text)?;
    bounds.check(c.open_time)?;
    match prev {
        Some(p) if c.open_time <= p => Err(if c.open_time == p {
            format!("duplicate open time {}", c.open_time)
        } else {
            format!("open time {} is out of order after {p}", c.open_time)
        }),
        _ => Ok(c),
    }
}

/// Parse candles from `reader` line by line, handing them to `sink` in ascending chunks of at
/// most [`CHUNK`] as they are checked, so memory does not grow with the file (except in
/// CryptoDataDownload files, which are newest first and are sorted whole). Rows must be strictly
/// ascending by open time otherwise. A UTF-8 byte-order mark is ignored; a bad row stops the
/// parse with its line number (after the chunks already handed on) unless `skip_bad`.
///
/// `path` only names the input in read errors.
pub fn parse_stream<R: BufRead>(
    reader: R,
    path: &Path,
    interval: Interval,
    skip_bad: bool,
    bounds: TimeBounds,
    sink: &mut dyn FnMut(&[Candle]) -> Result<(), ImportError>,
) -> Result<StreamSummary, ImportError> {
    parse_stream_of(reader, path, interval, skip_bad, bounds, sink)
}

/// What [`parse_stream_of`] hands on per row: a [`Candle`], or the store's fixed-point
/// [`CandleRow`], which a plain row is read into with no decimal in between.
pub(crate) trait StreamRow: Clone {
    fn open_time(&self) -> TimestampMs;
    fn from_candle(c: Candle) -> Self;
    /// A plain data row of an ascending file, read and checked without decimals when it passes
    /// every check [`check_row`] makes; `None` lets `check_row` read it (and say what is wrong).
    fn quick(_text: &str, _bounds: TimeBounds, _prev: Option<TimestampMs>) -> Option<Self> {
        None
    }
}

impl StreamRow for Candle {
    fn open_time(&self) -> TimestampMs {
        self.open_time
    }

    fn from_candle(c: Candle) -> Self {
        c
    }
}

impl StreamRow for CandleRow {
    fn open_time(&self) -> TimestampMs {
        self.open_time
    }

    fn from_candle(c: Candle) -> Self {
        CandleRow::of(&c)
    }

    #[inline]
    fn quick(text: &str, bounds: TimeBounds, prev: Option<TimestampMs>) -> Option<Self> {
        super::import_rows::quick_row(text.as_bytes(), bounds, prev)
    }
}

/// [`parse_stream`] for any [`StreamRow`].
pub(crate) fn parse_stream_of<T: StreamRow, R: BufRead>(
    mut reader: R,
    path: &Path,
    interval: Interval,
    skip_bad: bool,
    bounds: TimeBounds,
    sink: &mut dyn FnMut(&[T]) -> Result<(), ImportError>,
) -> Result<StreamSummary, ImportError> {
    let mut format = CsvFormat::Binance;
    let mut rows_read = 0;
    let mut skipped: Vec<BadRow> = Vec::new();
    let mut gaps = Vec::new();
    let mut chunk: Vec<T> = Vec::with_capacity(CHUNK);
    // Sorted files only: every row, with its line, until the end.
    let mut held: Vec<(usize, Candle)> = Vec::new();
    let mut prev: Option<TimestampMs> = None;
    let reject = |line: usize, reason: String, skipped: &mut Vec<BadRow>| {
        if skip_bad && skipped.len() < MAX_BAD_ROWS {
            skipped.push(BadRow { line, reason });
            Ok(())
        } else if skip_bad {
            Err(ImportError::TooManyBadRows { line })
        } else {
            Err(ImportError::BadRow { line, reason })
        }
    };
    let mut accept = |c: T,
                      prev: &mut Option<TimestampMs>,
                      gaps: &mut Vec<Gap>,
                      chunk: &mut Vec<T>|
     -> Result<(), ImportError> {
        let open_time = c.open_time();
        if let Some(p) = *prev {
            let step = interval.millis();
            if open_time - p > step {
                gaps.push(Gap {
                    after: p,
                    before: open_time,
                    missing: (open_time - p) / step - 1,
                });
            }
        }
        *prev = Some(open_time);
        chunk.push(c);
        if chunk.len() >= CHUNK {
            sink(chunk)?;
            chunk.clear();
        }
        Ok(())
    };

    let mut buf = Vec::new();
    let mut line = 0;
    let mut preamble = Preamble::default();
    while read_line(&mut reader, &mut buf, line + 1, path)? {
        line += 1;
        let text = match preamble.classify(line, &buf) {
            LineKind::Skip => continue,
            LineKind::Header(f) => {
                format = f;
                continue;
            }
            LineKind::NotUtf8 => {
                rows_read += 1;
                reject(line, "is not UTF-8 text".into(), &mut skipped)?;
                continue;
            }
            LineKind::Data(text) => text,
        };
        rows_read += 1;
        let sort = format == CsvFormat::CryptoDataDownload;
        if !sort && let Some(row) = T::quick(text, bounds, prev) {
            accept(row, &mut prev, &mut gaps, &mut chunk)?;
            continue;
        }
        match check_row(format, text, bounds, if sort { None } else { prev }) {
            Ok(c) if sort => held.push((line, c)),
            Ok(c) => accept(T::from_candle(c), &mut prev, &mut gaps, &mut chunk)?,
            Err(reason) => reject(line, reason, &mut skipped)?,
        }
    }
    if rows_read == 0 {
        return Err(ImportError::Empty);
    }
    if !held.is_empty() {
        held.sort_by_key(|(line, c)| (c.open_time, *line));
        for (line, c) in held {
            if prev == Some(c.open_time) {
                reject(
                    line,
                    format!("duplicate open time {}", c.open_time),
                    &mut skipped,
                )?;
            } else {
                accept(T::from_candle(c), &mut prev, &mut gaps, &mut chunk)?;
            }
        }
        skipped.sort_by_key(|b| b.line);
    }
    if !chunk.is_empty() {
        sink(&chunk)?;
    }
    Ok(StreamSummary {
        format,
        rows_read,
        skipped,
        gaps,
    })
}

/// Parse a whole text (the bundled data, tests): [`parse_stream`] without time bounds,
/// collecting the candles.
pub fn parse_candles(
    text: &str,
    interval: Interval,
    skip_bad: bool,
) -> Result<ParsedCandles, ImportError> {
    let mut candles = Vec::new();
    let s = parse_stream(
        text.as_bytes(),
        Path::new("<text>"),
        interval,
        skip_bad,
        TimeBounds::default(),
        &mut |chunk| {
            candles.extend_from_slice(chunk);
            Ok(())
        },
    )?;
    Ok(ParsedCandles {
        format: s.format,
        rows_read: s.rows_read,
        candles,
        skipped: s.skipped,
        gaps: s.gaps,
    })
}

/// Read a user's candle file whole into memory (a backtest needs every candle), streaming the
/// text: only the candles are kept, and an endless or binary file is refused at its first
/// over-long line. Open times must lie within [`TimeBounds::for_files_at`] `now_ms`.
pub fn read_candles_file(
    path: &Path,
    interval: Interval,
    now_ms: TimestampMs,
) -> Result<Vec<Candle>, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut candles = Vec::new();
    parse_stream(
        std::io::BufReader::new(file),
        path,
        interval,
        false,
        TimeBounds::for_files_at(now_ms),
        &mut |chunk| {
            candles.extend_from_slice(chunk);
            Ok(())
        },
    )?;
    Ok(candles)
}

/// Holes in an ascending series: consecutive open times further apart than one interval.
pub fn find_gaps(candles: &[Candle], interval: Interval) -> Vec<Gap> {
    let step = interval.millis();
    candles
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (w[0].open_time, w[1].open_time);
            (b - a > step).then(|| Gap {
                after: a,
                before: b,
                missing: (b - a) / step - 1,
            })
        })
        .collect()
}

/// Options of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOptions {
    /// Import the good rows and report the bad ones instead of stopping at the first.
    pub skip_bad: bool,
}

/// Read `path` line by line, check every row, and store the candles of `symbol`/`interval` a
/// chunk at a time (each chunk one transaction, so a concurrent writer waits at most one chunk).
/// Candles already stored are left unchanged, so importing the same file twice changes nothing.
/// When the import stops part way (a bad row after the first chunk, a full disk), the error says
/// exactly which candles were stored. Open times must lie within 2009-01-03 and a day from now.
/// `progress(bytes read, file size)` is called as chunks are stored.
pub fn import_file(
    conn: &Connection,
    path: &Path,
    symbol: &Symbol,
    interval: Interval,
    options: ImportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportSummary, ImportError> {
    let read_err = |source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    // 0 for devices and pipes, whose size is not known.
    let size = file
        .metadata()
        .map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX))
        .unwrap_or(0);
    let counter = CountingReader {
        inner: file,
        read: std::rc::Rc::new(std::cell::Cell::new(0)),
    };
    let bytes_read = counter.read.clone();
    let (mut inserted, mut already_present) = (0, 0);
    let mut span: Option<(TimestampMs, TimestampMs)> = None;
    progress(0, size);
    let parsed = parse_stream_of::<CandleRow, _>(
        std::io::BufReader::new(counter),
        path,
        interval,
        options.skip_bad,
        TimeBounds::for_files_at(chrono::Utc::now().timestamp_millis()),
        &mut |chunk| {
            let report = insert_candle_rows(conn, symbol, interval, chunk)?;
            inserted += report.inserted;
            already_present += report.already_present;
            if let (Some(first), Some(last)) = (chunk.first(), chunk.last()) {
                span = Some((span.map_or(first.open_time, |s| s.0), last.open_time));
            }
            progress(bytes_read.get().min(size), size);
            Ok(())
        },
    );
    let parsed = match (parsed, span) {
        (Ok(p), _) => p,
        (Err(e), None) => return Err(e),
        (Err(e), Some((first, last))) => {
            return Err(ImportError::Partial {
                inserted,
                already_present,
                first: fmt_ms(first),
                last: fmt_ms(last),
                source: Box::new(e),
            });
        }
    };
    progress(size, size);
    Ok(ImportSummary {
        format: parsed.format,
        rows_read: parsed.rows_read,
        inserted,
        already_present,
        skipped: parsed.skipped,
        first_open_time: span.map(|s| s.0),
        last_open_time: span.map(|s| s.1),
        gaps: parsed.gaps,
    })
}

/// A reader that counts the bytes it hands out (for the progress bar).
struct CountingReader<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get().saturating_add(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const H: i64 = 3_600_000;

    fn bad_line(text: &str) -> (usize, String) {
        match parse_candles(text, Interval::H1, false) {
            Err(ImportError::BadRow { line, reason }) => (line, reason),
            other => panic!("expected a bad row, got {other:?}"),
        }
    }

    #[test]
    fn binance_twelve_column_dump_without_header_in_milliseconds() {
        let text = "1735689600000,93576.00,94509.42,93489.03,94401.14,755.99010,1735693199999,71100000.1,100,300.1,28000000.2,0\n\
                    1735693200000,94401.13,94408.72,93578.77,93607.74,586.53456,1735696799999,55000000.3,90,200.2,19000000.4,0\n";
        let p = parse_candles(text, Interval::H1, false).unwrap();
        assert_eq!(p.format, CsvFormat::Binance);
        assert_eq!(p.rows_read, 2);
        assert_eq!(p.candles[0].open_time, 1_735_689_600_000);
        assert_eq!(p.candles[0].open.get(), dec!(93576.00));
        assert_eq!(p.candles[1].volume.get(), dec!(586.53456));
        assert!(p.gaps.is_empty());
    }

    #[test]
    fn microsecond_open_times_are_detected_by_magnitude() {
        let text = "open_time,open,high,low,close,volume\n1735689600000000,1,2,0.5,1.5,3\n";
        let p = parse_candles(text, Interval::H1, false).unwrap();
        assert_eq!(p.candles[0].open_time, 1_735_689_600_000);
    }

    #[test]
    fn cryptodatadownload_file_is_read_newest_first_and_returned_oldest_first() {
        let text = "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\r\n\
                    date,symbol,open,high,low,close,volume_btc,volume\r\n\
                    2019-10-17 12-PM,BTCUSD,8051,8056.83,8021.23,8035.88,61.25,492394.56\r\n\
                    2019-10-17 11-AM,BTCUSD,7975.89,8070,7975.89,8051,370.45,2971610.86\r\n\
                    2019-10-17 12-AM,BTCUSD,7975.89,8070,7975.89,8051,1,2\r\n";
        let p = parse_candles(text, Interval::H1, false).unwrap();
        assert_eq!(p.format, CsvFormat::CryptoDataDownload);
        let day = 1_571_270_400_000; // 2019-10-17 00:00 UTC
        let times: Vec<_> = p.candles.iter().map(|c| c.open_time).collect();
        assert_eq!(times, [day, day + 11 * H, day + 12 * H]);
        assert_eq!(
            p.candles[2].volume.get(),
            dec!(61.25),
            "volume is the base (BTC) volume"
        );
        assert_eq!(
            p.gaps,
            [Gap {
                after: day,
                before: day + 11 * H,
                missing: 10
            }]
        );
    }

    #[test]
    fn cryptodatadownload_rows_out_of_place_are_sorted_but_duplicates_refused() {
        let head = "date,symbol,open,high,low,close,volume_btc,volume\n";
        let text = format!(
            "{head}2019-10-17 02-AM,BTCUSD,1,1,1,1,1,1\n2019-10-17 03-AM,BTCUSD,1,1,1,1,1,1\n2019-10-17 01-AM,BTCUSD,1,1,1,1,1,1\n"
        );
        let p = parse_candles(&text, Interval::H1, false).unwrap();
        let t: Vec<_> = p
            .candles
            .iter()
            .map(|c| c.open_time % (24 * H) / H)
            .collect();
        assert_eq!(t, [1, 2, 3]);
        let dup = format!("{text}2019-10-17 02-AM,BTCUSD,1,1,1,1,1,1\n");
        let (line, reason) = bad_line(&dup);
        assert_eq!(line, 5);
        assert!(reason.contains("duplicate"), "{reason}");
    }

    #[test]
    fn each_kind_of_bad_row_is_rejected_with_its_line_number() {
        let head = "open_time,open,high,low,close,volume\n0,1,2,0.5,1,1\n";
        let cases = [
            ("3600000,1,x,0.5,1,1", "high \"x\" is not a number"),
            ("3600000,1,0.4,0.5,0.45,1", "high 0.4 is below low 0.5"),
            ("3600000,3,2,0.5,1,1", "open 3 is outside"),
            ("3600000,1,2,0.5,2.5,1", "close 2.5 is outside"),
            ("3600000,1,2,0.5,1,-1", "volume -1 is negative"),
            ("0,1,2,0.5,1,1", "duplicate open time 0"),
            ("-5,1,2,0.5,1,1", "negative"),
            ("3600000,1,2,0.5,1", "missing volume column"),
        ];
        for (row, want) in cases {
            let (line, reason) = bad_line(&format!("{head}{row}\n"));
            assert_eq!(line, 3, "{row}");
            assert!(reason.contains(want), "{row}: {reason}");
        }
        let (line, reason) = bad_line(&format!("{head}7200000,1,2,0.5,1,1\n3600000,1,2,0.5,1,1\n"));
        assert_eq!(line, 4);
        assert!(reason.contains("out of order"), "{reason}");
    }

    #[test]
    fn skip_bad_keeps_the_good_rows_and_says_why_the_others_went() {
        let text = "0,1,2,0.5,1,1\n3600000,1,x,0.5,1,1\n3600000,1,2,0.5,1,1\n0,1,2,0.5,1,1\n7200000,1,2,0.5,1,1\n";
        let p = parse_candles(text, Interval::H1, true).unwrap();
        assert_eq!(p.rows_read, 5);
        assert_eq!(
            p.candles.iter().map(|c| c.open_time).collect::<Vec<_>>(),
            [0, H, 2 * H]
        );
        assert_eq!(p.skipped.len(), 2);
        assert_eq!(p.skipped[0].line, 2);
        assert_eq!(p.skipped[1].line, 4);
        assert!(p.skipped[1].reason.contains("out of order"));
    }

    #[test]
    fn gaps_count_the_missing_candles() {
        let text = "0,1,2,0.5,1,1\n3600000,1,2,0.5,1,1\n14400000,1,2,0.5,1,1\n";
        let p = parse_candles(text, Interval::H1, false).unwrap();
        assert_eq!(
            p.gaps,
            [Gap {
                after: H,
                before: 4 * H,
                missing: 2
            }]
        );
    }

    #[test]
    fn a_file_with_only_a_header_is_empty() {
        assert!(matches!(
            parse_candles(
                "open_time,open,high,low,close,volume\n",
                Interval::H1,
                false
            ),
            Err(ImportError::Empty)
        ));
    }
}
