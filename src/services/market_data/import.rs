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
use crate::store::candles::insert_candles;
use chrono::{NaiveDate, NaiveDateTime};
use rusqlite::Connection;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Open times above this are microseconds: in milliseconds it would be the year 5138.
const MICROS_THRESHOLD: i64 = 100_000_000_000_000;

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

fn is_header(line: &str) -> bool {
    line.split(',')
        .next()
        .is_some_and(|f| f.trim().parse::<f64>().is_err())
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

/// Parse a whole file. Rows must be strictly ascending by open time, except in
/// CryptoDataDownload files, which are sorted; the result is oldest first either way.
pub fn parse_candles(
    text: &str,
    interval: Interval,
    skip_bad: bool,
) -> Result<ParsedCandles, ImportError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();

    let mut format = CsvFormat::Binance;
    if let Some((_, first)) = lines.peek()
        && first.starts_with("Timestamps are")
    {
        lines.next();
    }
    if let Some((_, first)) = lines.peek().copied()
        && is_header(first)
    {
        if first.trim().to_ascii_lowercase().starts_with("date,") {
            format = CsvFormat::CryptoDataDownload;
        }
        lines.next();
    }
    // CryptoDataDownload files are newest first and, around daylight-saving changes, not even
    // that: they are sorted here and only duplicates are refused. Other files must be in order.
    let sort = format == CsvFormat::CryptoDataDownload;

    let mut rows_read = 0;
    let mut rows: Vec<(usize, Candle)> = Vec::new();
    let mut skipped = Vec::new();
    let reject = |line: usize, reason: String, skipped: &mut Vec<BadRow>| {
        if skip_bad {
            skipped.push(BadRow { line, reason });
            Ok(())
        } else {
            Err(ImportError::BadRow { line, reason })
        }
    };
    for (line, text) in lines {
        rows_read += 1;
        let checked = parse_row(format, text).and_then(|c| match rows.last() {
            Some((_, prev)) if !sort && c.open_time <= prev.open_time => {
                Err(if c.open_time == prev.open_time {
                    format!("duplicate open time {}", c.open_time)
                } else {
                    format!(
                        "open time {} is out of order after {}",
                        c.open_time, prev.open_time
                    )
                })
            }
            _ => Ok(c),
        });
        match checked {
            Ok(c) => rows.push((line, c)),
            Err(reason) => reject(line, reason, &mut skipped)?,
        }
    }
    let mut candles: Vec<Candle> = Vec::with_capacity(rows.len());
    if sort {
        rows.sort_by_key(|(line, c)| (c.open_time, *line));
        for (line, c) in rows {
            if candles.last().is_some_and(|p| p.open_time == c.open_time) {
                reject(
                    line,
                    format!("duplicate open time {}", c.open_time),
                    &mut skipped,
                )?;
            } else {
                candles.push(c);
            }
        }
        skipped.sort_by_key(|b| b.line);
    } else {
        candles.extend(rows.into_iter().map(|(_, c)| c));
    }
    if rows_read == 0 {
        return Err(ImportError::Empty);
    }
    let gaps = find_gaps(&candles, interval);
    Ok(ParsedCandles {
        format,
        rows_read,
        candles,
        skipped,
        gaps,
    })
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

/// Read `path`, check every row, and store the candles of `symbol`/`interval`. Candles already
/// stored are left unchanged, so importing the same file twice changes nothing.
/// `progress(done, total)` is called as candles are stored.
pub fn import_file(
    conn: &Connection,
    path: &Path,
    symbol: &Symbol,
    interval: Interval,
    options: ImportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportSummary, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parsed = parse_candles(&text, interval, options.skip_bad)?;
    let total = parsed.candles.len();
    let (mut inserted, mut already_present) = (0, 0);
    progress(0, total);
    for (i, chunk) in parsed.candles.chunks(CHUNK).enumerate() {
        let report = insert_candles(conn, symbol, interval, chunk)?;
        inserted += report.inserted;
        already_present += report.already_present;
        progress((i * CHUNK + chunk.len()).min(total), total);
    }
    Ok(ImportSummary {
        format: parsed.format,
        rows_read: parsed.rows_read,
        inserted,
        already_present,
        skipped: parsed.skipped,
        first_open_time: parsed.candles.first().map(|c| c.open_time),
        last_open_time: parsed.candles.last().map(|c| c.open_time),
        gaps: parsed.gaps,
    })
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
