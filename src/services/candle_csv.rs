//! Candles from CSV files: Binance kline dumps (`open_time,open,high,low,close,volume`, time in
//! s, ms or µs) and CryptoDataDownload exports (banner line, `date,symbol,open,...`, newest
//! first, dates like `2019-10-17 09-AM`). Rows come back oldest first.

use crate::domain::market::candle::{Candle, TimestampMs};
use crate::domain::money::{Price, Qty};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CandleCsvError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CSV error: {0}")]
    Csv(#[from] csv::Error),
    #[error(
        "no header row with open, high, low, close and a time column (open_time, timestamp, date or unix) was found"
    )]
    NoHeader,
    #[error("line {line}: {what}")]
    Row { line: u64, what: String },
    #[error("two candles open at {0}: the file has duplicate rows")]
    Duplicate(TimestampMs),
}

/// Read a candle CSV file.
pub fn read_candles_csv(path: &Path) -> Result<Vec<Candle>, CandleCsvError> {
    let file = std::fs::File::open(path).map_err(|source| CandleCsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_candles_csv(std::io::BufReader::new(file))
}

enum TimeColumn {
    Epoch(usize),
    Date(usize),
}

/// Parse candles from any reader; see the module docs for the formats.
pub fn parse_candles_csv(reader: impl Read) -> Result<Vec<Candle>, CandleCsvError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut columns: Option<(TimeColumn, [usize; 5])> = None;
    let mut candles = Vec::new();
    for record in rdr.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        let Some((time_col, [o, h, l, c, v])) = &columns else {
            let names: Vec<String> = record
                .iter()
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            let find = |n: &str| names.iter().position(|x| x == n);
            let time = find("open_time")
                .or_else(|| find("timestamp"))
                .or_else(|| find("unix"))
                .map(TimeColumn::Epoch)
                .or_else(|| find("date").map(TimeColumn::Date));
            let volume = find("volume_btc").or_else(|| find("volume"));
            if let (Some(t), Some(o), Some(h), Some(l), Some(c), Some(v)) = (
                time,
                find("open"),
                find("high"),
                find("low"),
                find("close"),
                volume,
            ) {
                columns = Some((t, [o, h, l, c, v]));
            }
            continue;
        };
        let field = |i: usize| -> Result<&str, CandleCsvError> {
            record
                .get(i)
                .map(str::trim)
                .ok_or_else(|| CandleCsvError::Row {
                    line,
                    what: format!("missing column {}", i + 1),
                })
        };
        let dec = |i: usize| -> Result<rust_decimal::Decimal, CandleCsvError> {
            let text = field(i)?;
            text.parse::<Price>()
                .map(Price::get)
                .map_err(|e| CandleCsvError::Row {
                    line,
                    what: format!("{text:?} is not a number: {e}"),
                })
        };
        let open_time = match time_col {
            TimeColumn::Epoch(i) => {
                let text = field(*i)?;
                let raw: i64 = text.parse().map_err(|_| CandleCsvError::Row {
                    line,
                    what: format!("{text:?} is not an epoch timestamp"),
                })?;
                // Binance switched spot dumps to microseconds in 2025; older ones are ms.
                if raw > 100_000_000_000_000 {
                    raw / 1000
                } else if raw > 100_000_000_000 {
                    raw
                } else {
                    raw * 1000
                }
            }
            TimeColumn::Date(i) => parse_date(field(*i)?).ok_or_else(|| CandleCsvError::Row {
                line,
                what: format!("{:?} is not a date", field(*i).unwrap_or("")),
            })?,
        };
        candles.push(Candle {
            open_time,
            open: Price(dec(*o)?),
            high: Price(dec(*h)?),
            low: Price(dec(*l)?),
            close: Price(dec(*c)?),
            volume: Qty(dec(*v)?),
        });
    }
    if columns.is_none() {
        return Err(CandleCsvError::NoHeader);
    }
    candles.sort_by_key(|c| c.open_time);
    if let Some(w) = candles
        .windows(2)
        .find(|w| w[0].open_time == w[1].open_time)
    {
        return Err(CandleCsvError::Duplicate(w[0].open_time));
    }
    Ok(candles)
}

fn parse_date(text: &str) -> Option<TimestampMs> {
    use chrono::NaiveDateTime;
    const FORMATS: [&str; 3] = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"];
    // CryptoDataDownload's "2019-10-17 09-AM": chrono needs minutes, so rebuild the hour.
    if let Some((day, hour)) = text.split_once(' ')
        && let Some((h, half)) = hour.split_once('-')
    {
        let h: u32 = h.parse().ok().filter(|h| (1..=12).contains(h))?;
        let h24 = match half {
            "AM" => h % 12,
            "PM" => h % 12 + 12,
            _ => return None,
        };
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
        return Some(date.and_hms_opt(h24, 0, 0)?.and_utc().timestamp_millis());
    }
    FORMATS.iter().find_map(|f| {
        NaiveDateTime::parse_from_str(text, f)
            .ok()
            .map(|d| d.and_utc().timestamp_millis())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn reads_binance_microseconds_and_coinbase_twelve_hour_dates_oldest_first() {
        let binance = "open_time,open,high,low,close,volume\n\
                       1735689600000000,93576.0,94509.42,93489.03,94401.14,755.9901\n";
        let c = parse_candles_csv(binance.as_bytes()).unwrap();
        assert_eq!(c[0].open_time, 1_735_689_600_000);
        assert_eq!(c[0].close, Price(dec!(94401.14)));

        let coinbase = "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n\
                        date,symbol,open,high,low,close,volume_btc,volume\n\
                        2017-07-01 12-PM,BTCUSD,2509.17,2512.87,2484.99,2488.43,157.36,393142.5\n\
                        2017-07-01 11-AM,BTCUSD,2505.56,2513.38,2495.12,2509.17,114.6,287000.32\n";
        let c = parse_candles_csv(coinbase.as_bytes()).unwrap();
        assert_eq!(c.len(), 2);
        // 2017-07-01 11:00 UTC
        assert_eq!(c[0].open_time, 1_498_906_800_000);
        assert_eq!(c[1].open_time - c[0].open_time, 3_600_000);
        assert_eq!(c[0].volume, Qty(dec!(114.6)));
    }

    #[test]
    fn says_which_line_is_bad() {
        let bad = "open_time,open,high,low,close,volume\n1,2,3,x,5,6\n";
        let e = parse_candles_csv(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(matches!(
            parse_candles_csv("a,b\n1,2\n".as_bytes()),
            Err(CandleCsvError::NoHeader)
        ));
    }
}
