//! Candles (klines) and their intervals. Prices and volumes are exact decimals as the exchange
//! sent them; `CandleSeries` gives the f64 column view that indicator math works on.

use crate::domain::money::{Price, Qty};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Milliseconds since the Unix epoch, UTC. The only time type the domain knows.
pub type TimestampMs = i64;

/// Candle intervals Binance supports for spot klines (the subset we use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "3m")]
    M3,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "2h")]
    H2,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "6h")]
    H6,
    #[serde(rename = "8h")]
    H8,
    #[serde(rename = "12h")]
    H12,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "1w")]
    W1,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid interval {0:?}: expected one of 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w")]
pub struct InvalidInterval(pub String);

impl Interval {
    pub const ALL: [Interval; 13] = [
        Interval::M1,
        Interval::M3,
        Interval::M5,
        Interval::M15,
        Interval::M30,
        Interval::H1,
        Interval::H2,
        Interval::H4,
        Interval::H6,
        Interval::H8,
        Interval::H12,
        Interval::D1,
        Interval::W1,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M3 => "3m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::M30 => "30m",
            Interval::H1 => "1h",
            Interval::H2 => "2h",
            Interval::H4 => "4h",
            Interval::H6 => "6h",
            Interval::H8 => "8h",
            Interval::H12 => "12h",
            Interval::D1 => "1d",
            Interval::W1 => "1w",
        }
    }

    /// Length of one candle in milliseconds.
    pub const fn millis(self) -> i64 {
        const MIN: i64 = 60_000;
        match self {
            Interval::M1 => MIN,
            Interval::M3 => 3 * MIN,
            Interval::M5 => 5 * MIN,
            Interval::M15 => 15 * MIN,
            Interval::M30 => 30 * MIN,
            Interval::H1 => 60 * MIN,
            Interval::H2 => 120 * MIN,
            Interval::H4 => 240 * MIN,
            Interval::H6 => 360 * MIN,
            Interval::H8 => 480 * MIN,
            Interval::H12 => 720 * MIN,
            Interval::D1 => 1440 * MIN,
            Interval::W1 => 7 * 1440 * MIN,
        }
    }

    /// Candles per year, for annualising returns and ratios (crypto trades 365 days a year).
    pub fn periods_per_year(self) -> f64 {
        (365.0 * 86_400_000.0) / self.millis() as f64
    }

    /// The next larger interval (for multi-timeframe context), if any.
    pub fn higher(self) -> Option<Interval> {
        let i = Interval::ALL.iter().position(|&x| x == self)?;
        Interval::ALL.get(i + 1).copied()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = InvalidInterval;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Interval::ALL
            .into_iter()
            .find(|i| i.as_str() == s.trim())
            .ok_or_else(|| InvalidInterval(s.to_string()))
    }
}

/// One closed (or, when `closed` is false, still forming) candle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    pub open_time: TimestampMs,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Qty,
}

impl Candle {
    /// Time the candle closes (exclusive end of its interval).
    pub fn close_time(&self, interval: Interval) -> TimestampMs {
        self.open_time + interval.millis()
    }
}

/// Column view of a candle series as f64, the form indicator math works on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandleColumns {
    pub open_time: Vec<TimestampMs>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl CandleColumns {
    pub fn from_candles(candles: &[Candle]) -> Self {
        let mut cols = CandleColumns {
            open_time: Vec::with_capacity(candles.len()),
            open: Vec::with_capacity(candles.len()),
            high: Vec::with_capacity(candles.len()),
            low: Vec::with_capacity(candles.len()),
            close: Vec::with_capacity(candles.len()),
            volume: Vec::with_capacity(candles.len()),
        };
        for c in candles {
            cols.open_time.push(c.open_time);
            cols.open.push(c.open.to_f64());
            cols.high.push(c.high.to_f64());
            cols.low.push(c.low.to_f64());
            cols.close.push(c.close.to_f64());
            cols.volume.push(c.volume.to_f64());
        }
        cols
    }

    /// A copy of the rows in `range` (a walk-forward window runs on its own columns).
    pub fn slice(&self, range: std::ops::Range<usize>) -> CandleColumns {
        CandleColumns {
            open_time: self.open_time[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_round_trips_and_knows_its_length() {
        for i in Interval::ALL {
            assert_eq!(i.as_str().parse::<Interval>().unwrap(), i);
        }
        assert_eq!(Interval::H1.millis(), 3_600_000);
        assert_eq!(Interval::H1.periods_per_year(), 8760.0);
        assert!("2m".parse::<Interval>().is_err());
        assert_eq!(Interval::H1.higher(), Some(Interval::H2));
        assert_eq!(Interval::W1.higher(), None);
    }
}
