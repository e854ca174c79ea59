//! A candle file read straight into [`CandleColumns`], for backtests: the file streamed in
//! chunks (never whole in memory), each row's numbers parsed as fixed-point integers with no
//! `Decimal` and no `Candle` in between, and the columns' exact view built as rows arrive.
//!
//! The rules are the importer's ([`super::import`]): a row the quick parser cannot vouch for
//! (a number written another way, a bad row, an odd line) goes through the importer's own
//! per-row checks, so what is accepted and every error message, with its line number, are the
//! same. CryptoDataDownload files (newest first, sorted whole) take the importer's path.

use super::import::{
    CsvFormat, ImportError, LineKind, MAX_LINE_BYTES, MICROS_THRESHOLD, Preamble, TimeBounds,
    check_row, read_candles_file,
};
use crate::domain::market::candle::{
    CandleColumns, ColumnsBuilder, Interval, TimestampMs, UnitsSummary,
};
use crate::domain::money::{MAX_UNITS_DIGITS, leading_digits, parse_units, units_make_a_candle};
use std::io::Read;
use std::path::Path;

mod fast;

/// Bytes read from the file at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// Rows the fast path parses before handing them to the columns together.
const BATCH_ROWS: usize = 256;

/// Read `path` into columns: the candles [`read_candles_file`] would return, as
/// [`CandleColumns::from_candles`] would build them, with the same errors. Open times must lie
/// within [`TimeBounds::for_files_at`] `now_ms`.
pub fn read_columns_file(
    path: &Path,
    interval: Interval,
    now_ms: TimestampMs,
) -> Result<CandleColumns, ImportError> {
    let read_err = |source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let size = file.metadata().map_or(0, |m| m.len() as usize);
    let bounds = TimeBounds::for_files_at(now_ms);
    let reader = read_rows(file, path, size, CHUNK_BYTES, bounds)?;
    if reader.format == CsvFormat::CryptoDataDownload {
        // Newest first, sorted whole: the importer's path, then the columns.
        let candles = read_candles_file(path, interval, now_ms)?;
        return Ok(CandleColumns::from_candles(&candles));
    }
    if reader.rows_read == 0 {
        return Err(ImportError::Empty);
    }
    Ok(reader
        .builder
        .map(ColumnsBuilder::finish)
        .unwrap_or_default())
}

/// The rows of `file` (of `size` bytes, at `path` for the messages), read `chunk_bytes` (more
/// than [`MAX_LINE_BYTES`] + 1) at a time; a CryptoDataDownload file only as far as its header.
fn read_rows(
    mut file: impl Read,
    path: &Path,
    size: usize,
    chunk_bytes: usize,
    bounds: TimeBounds,
) -> Result<Rows, ImportError> {
    let read_err = |source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = Rows::new(bounds);
    let mut buf = vec![0u8; chunk_bytes];
    // Bytes at the front of `buf` that are the start of a line not yet complete.
    let mut carry = 0;
    loop {
        let n = file.read(&mut buf[carry..]).map_err(read_err)?;
        if reader.builder.is_none() {
            reader.start(size, &buf[..carry + n]);
        }
        if n == 0 {
            if carry > 0 {
                reader.line(&buf[..carry])?;
            }
            break;
        }
        let filled = carry + n;
        let mut start = 0;
        loop {
            // Plain rows with short numbers are parsed where they lie, in batches; another
            // plain row also where it lies, its line end found by the same pass; any other
            // line is found first and then read by the importer's rules.
            start += reader.fast_rows(&buf[start..filled]);
            if let Some(used) = reader.quick_line(&buf[start..filled]) {
                start += used;
                continue;
            }
            let Some(end) = memchr(b'\n', &buf[start..filled]) else {
                break;
            };
            reader.line(&buf[start..start + end])?;
            start += end + 1;
        }
        if reader.format == CsvFormat::CryptoDataDownload {
            break;
        }
        // The incomplete last line moves to the front; a line longer than any candle row is
        // refused before it fills memory, as the importer does.
        carry = filled - start;
        if carry > MAX_LINE_BYTES {
            return Err(ImportError::LineTooLong {
                line: reader.line + 1,
            });
        }
        buf.copy_within(start..filled, 0);
    }
    Ok(reader)
}

/// The position of the first `needle` in `hay` (the standard library's search is
/// word-at-a-time for a single byte in slices).
#[inline]
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// The state of a read: lines seen, the preamble, the rows kept.
struct Rows {
    bounds: TimeBounds,
    preamble: Preamble,
    format: CsvFormat,
    /// Lines seen (1-based number of the last one).
    line: usize,
    rows_read: usize,
    prev: Option<TimestampMs>,
    builder: Option<ColumnsBuilder>,
    /// Where the fast path puts a batch of rows.
    batch: Box<Batch>,
}

/// A batch of rows read by the fast path: open times and open, high, low, close, volume.
struct Batch {
    open_time: [TimestampMs; BATCH_ROWS],
    values: [[f64; BATCH_ROWS]; 5],
}

/// The largest of a run of values as written, and the largest scale of any of them without
/// trailing fraction zeros: what [`UnitsSummary`] needs, kept as rows are read.
#[derive(Clone, Copy)]
struct Largest {
    value: f64,
    written: fast::Written,
    scale: u32,
}

impl Largest {
    const NEW: Largest = Largest {
        value: -1.0,
        written: fast::Written {
            value: 0,
            scale: 0,
            normal_scale: 0,
        },
        scale: 0,
    };

    /// The largest value normalised (its dropped digits are zeros, so the division is exact).
    fn summary(&self) -> UnitsSummary {
        let w = self.written;
        let zeros = w.scale - w.normal_scale;
        UnitsSummary {
            largest: (w.value / 10u64.pow(zeros), w.normal_scale),
            scale: self.scale,
        }
    }
}

impl Rows {
    fn new(bounds: TimeBounds) -> Self {
        Rows {
            bounds,
            preamble: Preamble::default(),
            format: CsvFormat::Binance,
            line: 0,
            rows_read: 0,
            prev: None,
            builder: None,
            batch: Box::new(Batch {
                open_time: [0; BATCH_ROWS],
                values: [[0.0; BATCH_ROWS]; 5],
            }),
        }
    }

    /// The plain rows at the start of `bytes` that the fast path takes (stopping short of the
    /// last [`fast::ROW_WINDOW`] bytes): rows kept and lines counted, as [`Self::quick_line`]
    /// would for each. The bytes used.
    fn fast_rows(&mut self, bytes: &[u8]) -> usize {
        if self.format == CsvFormat::CryptoDataDownload || !self.preamble.is_over() {
            return 0;
        }
        let Some(builder) = self.builder.as_mut() else {
            return 0;
        };
        let batch = &mut *self.batch;
        let mut expected = fast::Expected::default();
        let mut prev = self.prev;
        let mut used = 0;
        loop {
            let mut n = 0;
            let mut prices = Largest::NEW;
            let mut volumes = Largest::NEW;
            while n < BATCH_ROWS && bytes.len() - used >= fast::ROW_WINDOW {
                let Some(row) = fast::row_at(&bytes[used..], &mut expected) else {
                    break;
                };
                let t = row.open_time;
                if !(prev.is_none_or(|p| t > p) && self.bounds.contains(t)) {
                    break;
                }
                prev = Some(t);
                batch.open_time[n] = t;
                for (column, &value) in batch.values.iter_mut().zip(&row.values) {
                    column[n] = value;
                }
                let [open, high, low, close, volume] = row.numbers;
                // Valid rows: the high is the largest price.
                if row.values[1] > prices.value {
                    prices.value = row.values[1];
                    prices.written = high;
                }
                prices.scale = prices
                    .scale
                    .max(open.normal_scale)
                    .max(high.normal_scale)
                    .max(low.normal_scale)
                    .max(close.normal_scale);
                if row.values[4] > volumes.value {
                    volumes.value = row.values[4];
                    volumes.written = volume;
                }
                volumes.scale = volumes.scale.max(volume.normal_scale);
                used += row.used;
                n += 1;
            }
            if n == 0 {
                break;
            }
            let [open, high, low, close, volume] = &batch.values;
            builder.extend_rows(
                &batch.open_time[..n],
                [&open[..n], &high[..n], &low[..n], &close[..n], &volume[..n]],
                prices.summary(),
                volumes.summary(),
            );
            self.line += n;
            self.rows_read += n;
            if n < BATCH_ROWS {
                break;
            }
        }
        self.prev = prev;
        used
    }

    /// Size the columns from the file's size and the length of its first lines (columns a
    /// little too large cost address space only: pages never written are never resident).
    fn start(&mut self, size: usize, head: &[u8]) {
        let lines = head.iter().filter(|&&b| b == b'\n').count();
        let rows = match (lines, head.len()) {
            (0, _) | (_, 0) => 1024,
            (lines, len) => size / (len / lines).max(1) + size / (len / lines).max(1) / 16 + 16,
        };
        self.builder = Some(ColumnsBuilder::with_capacity(rows));
    }

    /// The line at the start of `bytes` when it is a plain data row ending in `\n` (or `\r\n`)
    /// that [`quick_row`] takes as it stands: the row kept, the line counted, and the bytes used
    /// (its `\n` included). `None` (nothing done) for any other line, which [`Self::line`] reads.
    #[inline]
    fn quick_line(&mut self, bytes: &[u8]) -> Option<usize> {
        if self.format == CsvFormat::CryptoDataDownload || !self.preamble.is_over() {
            return None;
        }
        let (t, row, used) = quick_row_at(bytes)?;
        if !(self.prev.is_none_or(|p| t > p) && self.bounds.contains(t)) {
            return None;
        }
        self.line += 1;
        self.rows_read += 1;
        self.prev = Some(t);
        self.builder
            .as_mut()
            .expect("started before the first line")
            .push_units(t, row);
        Some(used)
    }

    /// One line, without its `\n`.
    #[inline]
    fn line(&mut self, mut bytes: &[u8]) -> Result<(), ImportError> {
        self.line += 1;
        let line = self.line;
        if self.format == CsvFormat::CryptoDataDownload {
            // Read again whole by the importer once this chunk is done.
            return Ok(());
        }
        if bytes.len() > MAX_LINE_BYTES {
            return Err(ImportError::LineTooLong { line });
        }
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        let builder = self
            .builder
            .as_mut()
            .expect("started before the first line");
        if self.preamble.is_over()
            && let Some((t, row)) = quick_row(bytes)
            && self.prev.is_none_or(|p| t > p)
            && self.bounds.contains(t)
        {
            self.rows_read += 1;
            self.prev = Some(t);
            builder.push_units(t, row);
            return Ok(());
        }
        // Anything else by the importer's rules, line for line.
        let text = match self.preamble.classify(line, bytes) {
            LineKind::Skip => return Ok(()),
            LineKind::Header(format) => {
                self.format = format;
                return Ok(());
            }
            LineKind::NotUtf8 => {
                return Err(ImportError::BadRow {
                    line,
                    reason: "is not UTF-8 text".into(),
                });
            }
            LineKind::Data(text) => text,
        };
        self.rows_read += 1;
        let c = check_row(self.format, text, self.bounds, self.prev)
            .map_err(|reason| ImportError::BadRow { line, reason })?;
        self.prev = Some(c.open_time);
        builder.push_candle(&c);
        Ok(())
    }
}

/// A plain data row (`open_time,open,high,low,close,volume[,...]`, ASCII, unsigned numbers of
/// at most [`MAX_UNITS_DIGITS`](crate::domain::money::MAX_UNITS_DIGITS) digits written `123` or `123.45`) that passes the importer's checks
/// on its own values: its open time in ms and its numbers as normalised `(mantissa, scale)`.
/// `None` for anything else, which then takes the importer's path (and gets its message).
#[inline]
fn quick_row(bytes: &[u8]) -> Option<(TimestampMs, Units)> {
    if !bytes.is_ascii() {
        return None;
    }
    let (raw, mut rest) = integer(bytes)?;
    let open_time = if raw >= MICROS_THRESHOLD as u64 {
        raw / 1000
    } else {
        raw
    } as TimestampMs;
    let mut row = [(0u64, 0u32); 5];
    for (k, value) in row.iter_mut().enumerate() {
        rest = rest.strip_prefix(b",")?;
        let (v, after) = fixed_point(rest)?;
        *value = v;
        rest = after;
        // The volume may be followed by more columns (Binance's 12), which are not read.
        if k < 4 && rest.first() != Some(&b',') {
            return None;
        }
    }
    if !rest.is_empty() && rest[0] != b',' {
        return None;
    }
    let [open, high, low, close, _volume] = row;
    // The importer's checks on the values (an unsigned volume is never negative).
    units_make_a_candle(open, high, low, close).then_some((open_time, row))
}

/// A row's open, high, low, close and volume as `(mantissa, scale)`.
type Units = [(u64, u32); 5];

/// [`quick_row`] on the line at the start of `bytes`, read in one pass that also finds its
/// end: the open time, the numbers, and the bytes the line takes with its `\n`. `None` when
/// [`quick_row`] would refuse the line, or its `\n` is not in `bytes`, or the line (without its
/// `\n`) is longer than [`MAX_LINE_BYTES`].
#[inline]
fn quick_row_at(bytes: &[u8]) -> Option<(TimestampMs, Units, usize)> {
    let (raw, mut i) = digits_at(bytes, 0)?;
    let open_time = if raw >= MICROS_THRESHOLD as u64 {
        raw / 1000
    } else {
        raw
    } as TimestampMs;
    let mut row = [(0u64, 0u32); 5];
    for value in &mut row {
        if bytes.get(i) != Some(&b',') {
            return None;
        }
        let (v, after) = fixed_point_at(bytes, i + 1)?;
        *value = v;
        i = after;
    }
    let end = match bytes.get(i)? {
        b'\n' => i,
        b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 1,
        // More columns (Binance's 12), not read: ASCII up to the line end.
        b',' => {
            let end = i + memchr(b'\n', &bytes[i..])?;
            let tail = &bytes[i..end];
            if end > MAX_LINE_BYTES || !tail.is_ascii() {
                return None;
            }
            end
        }
        _ => return None,
    };
    let [open, high, low, close, _volume] = row;
    units_make_a_candle(open, high, low, close).then_some((open_time, row, end + 1))
}

/// The digits from `bytes[i]` on (at least one, at most
/// [`MAX_UNITS_DIGITS`](crate::domain::money::MAX_UNITS_DIGITS)) as an integer, and the index
/// after them: [`leading_digits`] read in place.
#[inline(always)]
fn digits_at(bytes: &[u8], mut i: usize) -> Option<(u64, usize)> {
    let start = i;
    let mut value = 0u64;
    while let Some(&b) = bytes.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // Wraps only past the digit limit, which is refused below.
        value = value.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let n = i - start;
    (n > 0 && n <= MAX_UNITS_DIGITS as usize).then_some((value, i))
}

/// [`fixed_point`] on the number from `bytes[i]` on, in one pass: trailing zeros of the
/// fraction dropped as they are read, no division. The index after the number.
#[inline(always)]
fn fixed_point_at(bytes: &[u8], i: usize) -> Option<((u64, u32), usize)> {
    let (whole, mut j) = digits_at(bytes, i)?;
    if bytes.get(j) != Some(&b'.') {
        return Some(((whole, 0), j));
    }
    j += 1;
    let frac_start = j;
    // The mantissa so far, and the mantissa and scale up to the last non-zero digit.
    let (mut m, mut kept, mut kept_scale) = (whole, whole, 0u32);
    while let Some(&b) = bytes.get(j) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        m = m.wrapping_mul(10).wrapping_add(u64::from(d));
        j += 1;
        if d != 0 {
            kept = m;
            kept_scale = (j - frac_start) as u32;
        }
    }
    let frac_digits = j - frac_start;
    (frac_digits > 0 && j - i - 1 <= MAX_UNITS_DIGITS as usize).then_some(((kept, kept_scale), j))
}

/// Leading digits (at most [`MAX_UNITS_DIGITS`](crate::domain::money::MAX_UNITS_DIGITS), at least one) as an integer, and what follows.
#[inline]
fn integer(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (value, digits) = leading_digits(bytes)?;
    Some((value, &bytes[digits as usize..]))
}

/// `123` or `123.45` as its normalised mantissa and scale (trailing zeros dropped, as the
/// importer normalises its decimals), and what follows.
#[inline]
fn fixed_point(bytes: &[u8]) -> Option<((u64, u32), &[u8])> {
    let ((mut m, mut s), rest) = parse_units(bytes)?;
    while s > 0 && m.is_multiple_of(10) {
        m /= 10;
        s -= 1;
    }
    Some(((m, s), rest))
}

#[cfg(test)]
mod tests;
