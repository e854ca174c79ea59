//! Candles (klines) and their intervals. Prices and volumes are exact decimals as the exchange
//! sent them; `CandleSeries` gives the f64 column view that indicator math works on.

use crate::domain::money::{EXACT_POW10, POW10, Price, Qty, decimal_units};
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
///
/// Built by [`from_candles`](Self::from_candles), it also knows when its f64 prices give the
/// exact decimals back (see [`exact_close`](Self::exact_close)) and when its open times are evenly
/// spaced, so a backtest can read an exact price or a time from the columns it streams anyway
/// instead of from the wide decimal candles (one cache and TLB miss per order on a large series).
/// Both facts describe the rows as `from_candles` built them; rows pushed onto the public
/// columns afterwards are never read through them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandleColumns {
    pub open_time: Vec<TimestampMs>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    /// The decimal scale `s` at which every open, high, low and close of the first `exact_rows`
    /// rows is an integer below 2^51 (see `exact_price`).
    price_scale: Option<u32>,
    /// The decimal scale at which every volume of the first `exact_rows` rows is an integer
    /// below 2^51 (so a whole candle can be rebuilt from the columns, see `exact_candle`).
    volume_scale: Option<u32>,
    /// Every open time of the first `exact_rows` rows is `open_time[0] + i * step`.
    time_step: Option<TimestampMs>,
    exact_rows: usize,
}

/// Below this, `(f * 10^s).round()` gives back the integer `m` of a price `m / 10^s` from its
/// correctly rounded f64 `f` (two roundings of at most half an ulp each: an error under
/// `m * 2^-52`, so under 0.5).
const EXACT_UNITS_LIMIT: u64 = 1 << 51;

/// `m * 10^k`, saturating at `u64::MAX` (which no exact view accepts).
#[inline]
fn scaled_units(m: u64, k: u32) -> u64 {
    if m == 0 {
        return 0;
    }
    POW10
        .get(k as usize)
        .and_then(|&f| m.checked_mul(f))
        .unwrap_or(u64::MAX)
}

/// The scale at which a set of non-negative decimals are all integers, worked out a value at a
/// time: the largest scale of any non-zero value, the largest mantissa seen expressed at that
/// scale (saturating), and whether every value fitted 64 bits with a scale an f64 is exact for.
/// Kept in registers: a per-scale table in memory would chain read-modify-writes a candle.
#[derive(Debug, Clone, Copy)]
struct ExactScale {
    scale: u32,
    max_units: u64,
    representable: bool,
}

impl ExactScale {
    const NEW: ExactScale = ExactScale {
        scale: 0,
        max_units: 0,
        representable: true,
    };

    /// Take `m / 10^s` (with `s < EXACT_POW10.len()`) into account; its f64.
    #[inline]
    fn units(&mut self, m: u64, s: u32) -> f64 {
        if s > self.scale && m > 0 {
            self.max_units = scaled_units(self.max_units, s - self.scale);
            self.scale = s;
        }
        self.max_units = self
            .max_units
            .max(scaled_units(m, self.scale.saturating_sub(s)));
        m as f64 / EXACT_POW10[s as usize]
    }

    /// Take a decimal into account; its f64 (the same bits `to_f64` gives).
    #[inline]
    fn decimal(&mut self, d: rust_decimal::Decimal) -> f64 {
        match decimal_units(d) {
            Some((m, s)) if (s as usize) < EXACT_POW10.len() => self.units(m, s),
            _ => {
                self.representable = false;
                crate::domain::money::decimal_to_f64(d)
            }
        }
    }

    /// Take a run of values into account at once, given its largest value and the largest
    /// scale of any non-zero value in it (the view is the same whatever order values come in).
    #[inline]
    fn summary(&mut self, run: UnitsSummary) {
        if run.scale > self.scale {
            self.max_units = scaled_units(self.max_units, run.scale - self.scale);
            self.scale = run.scale;
        }
        let (m, s) = run.largest;
        self.units(m, s);
    }

    /// One scale for all, the largest any value has; every mantissa scaled up to it must stay
    /// under the limit.
    fn finish(self) -> Option<u32> {
        (self.representable && self.max_units < EXACT_UNITS_LIMIT).then_some(self.scale)
    }
}

/// What the exact view needs to know of a run of values (prices or volumes) that a parser
/// turned into f64s itself, for [`ColumnsBuilder::extend_rows`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitsSummary {
    /// The largest value as a normalised `(mantissa, scale)` (no trailing zeros in the
    /// mantissa when the scale is above 0), the scale under 23.
    pub largest: (u64, u32),
    /// The largest scale of any non-zero value written without trailing fraction zeros.
    pub scale: u32,
}

/// Builds [`CandleColumns`] a row at a time, working out the exact view as it goes: from
/// candles ([`push_candle`](Self::push_candle)) or straight from a parser's fixed-point
/// numbers ([`push_units`](Self::push_units)), with no decimal in between. Either way a row
/// gives the same f64s and the same view.
#[derive(Debug, Clone)]
pub struct ColumnsBuilder {
    cols: CandleColumns,
    prices: ExactScale,
    volumes: ExactScale,
    step: TimestampMs,
    evenly_spaced: bool,
}

impl ColumnsBuilder {
    pub fn with_capacity(n: usize) -> Self {
        ColumnsBuilder {
            cols: CandleColumns {
                open_time: Vec::with_capacity(n),
                open: Vec::with_capacity(n),
                high: Vec::with_capacity(n),
                low: Vec::with_capacity(n),
                close: Vec::with_capacity(n),
                volume: Vec::with_capacity(n),
                ..CandleColumns::default()
            },
            prices: ExactScale::NEW,
            volumes: ExactScale::NEW,
            step: 0,
            evenly_spaced: true,
        }
    }

    /// Rows pushed so far.
    pub fn len(&self) -> usize {
        self.cols.open_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cols.open_time.is_empty()
    }

    /// The open time of the last row pushed.
    pub fn last_open_time(&self) -> Option<TimestampMs> {
        self.cols.open_time.last().copied()
    }

    #[inline]
    fn push_time(&mut self, t: TimestampMs) {
        let i = self.cols.open_time.len();
        match i {
            0 => {}
            1 => self.step = t - self.cols.open_time[0],
            _ => self.evenly_spaced &= t == self.cols.open_time[0] + i as i64 * self.step,
        }
        self.cols.open_time.push(t);
    }

    /// One candle.
    pub fn push_candle(&mut self, c: &Candle) {
        self.push_time(c.open_time);
        let cols = &mut self.cols;
        cols.open.push(self.prices.decimal(c.open.get()));
        cols.high.push(self.prices.decimal(c.high.get()));
        cols.low.push(self.prices.decimal(c.low.get()));
        cols.close.push(self.prices.decimal(c.close.get()));
        cols.volume.push(self.volumes.decimal(c.volume.get()));
    }

    /// One row given as fixed-point numbers `(m, s)` meaning `m / 10^s`, each `s` under 23:
    /// open, high, low, close, volume. The same row as a candle whose decimals have these
    /// mantissas and scales.
    #[inline]
    pub fn push_units(&mut self, open_time: TimestampMs, row: [(u64, u32); 5]) {
        self.push_time(open_time);
        let [o, h, l, c, v] = row;
        let cols = &mut self.cols;
        cols.open.push(self.prices.units(o.0, o.1));
        cols.high.push(self.prices.units(h.0, h.1));
        cols.low.push(self.prices.units(l.0, l.1));
        cols.close.push(self.prices.units(c.0, c.1));
        cols.volume.push(self.volumes.units(v.0, v.1));
    }

    /// Rows a parser has turned into f64s itself (each `m / 10^s` correctly rounded, the same
    /// bits [`push_units`](Self::push_units) gives), in open-time order: their open times, their
    /// open, high, low, close and volume columns (all as long as `open_time`), and what the
    /// exact view needs of their prices and volumes.
    pub fn extend_rows(
        &mut self,
        open_time: &[TimestampMs],
        values: [&[f64]; 5],
        prices: UnitsSummary,
        volumes: UnitsSummary,
    ) {
        assert!(values.iter().all(|v| v.len() == open_time.len()));
        let mut rest = open_time;
        while self.len() < 2
            && let Some((&t, tail)) = rest.split_first()
        {
            self.push_time(t);
            rest = tail;
        }
        if let Some(&last) = self.cols.open_time.last() {
            // Evenly spaced: every step from the row before is the first step (the same as
            // `t == open_time[0] + i * step` for each row, without its multiply).
            let step = self.step;
            let mut prev = last;
            let mut even = true;
            for &t in rest {
                even &= t.wrapping_sub(prev) == step;
                prev = t;
            }
            self.evenly_spaced &= even;
        }
        self.cols.open_time.extend_from_slice(rest);
        let [open, high, low, close, volume] = values;
        let cols = &mut self.cols;
        cols.open.extend_from_slice(open);
        cols.high.extend_from_slice(high);
        cols.low.extend_from_slice(low);
        cols.close.extend_from_slice(close);
        cols.volume.extend_from_slice(volume);
        if !open_time.is_empty() {
            self.prices.summary(prices);
            self.volumes.summary(volumes);
        }
    }

    /// Whole columns a reader already holds (a cache file's), in open-time order, with what the
    /// exact view needs of their prices and volumes: the columns [`extend_rows`](Self::extend_rows)
    /// builds from the same rows, without copying them.
    pub fn from_columns(
        open_time: Vec<TimestampMs>,
        values: [Vec<f64>; 5],
        prices: UnitsSummary,
        volumes: UnitsSummary,
    ) -> CandleColumns {
        assert!(values.iter().all(|v| v.len() == open_time.len()));
        let mut b = ColumnsBuilder::with_capacity(0);
        if let [t0, t1, ..] = open_time[..] {
            // As `extend_rows`: every step from the row before is the first step.
            b.step = t1 - t0;
            let step = b.step;
            b.evenly_spaced = open_time
                .windows(2)
                .fold(true, |even, w| even & (w[1].wrapping_sub(w[0]) == step));
        }
        if !open_time.is_empty() {
            b.prices.summary(prices);
            b.volumes.summary(volumes);
        }
        let [open, high, low, close, volume] = values;
        b.cols = CandleColumns {
            open_time,
            open,
            high,
            low,
            close,
            volume,
            ..CandleColumns::default()
        };
        b.finish()
    }

    pub fn finish(self) -> CandleColumns {
        let mut cols = self.cols;
        let n = cols.open_time.len();
        cols.price_scale = self.prices.finish();
        cols.volume_scale = self.volumes.finish();
        cols.time_step = (self.evenly_spaced && n > 1).then_some(self.step);
        cols.exact_rows = n;
        cols
    }
}

impl CandleColumns {
    pub fn from_candles(candles: &[Candle]) -> Self {
        let mut builder = ColumnsBuilder::with_capacity(candles.len());
        for c in candles {
            builder.push_candle(c);
        }
        builder.finish()
    }

    /// A copy of the rows in `range` (a walk-forward window runs on its own columns).
    pub fn slice(&self, range: std::ops::Range<usize>) -> CandleColumns {
        let inside = range.end <= self.exact_rows;
        CandleColumns {
            open_time: self.open_time[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range.clone()].to_vec(),
            price_scale: self.price_scale.filter(|_| inside),
            volume_scale: self.volume_scale.filter(|_| inside),
            time_step: self.time_step.filter(|_| inside && range.len() > 1),
            exact_rows: if inside { range.len() } else { 0 },
        }
    }

    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    /// Row `i`'s close as the exact decimal of its candle, from the f64 column, when the view
    /// knows it to be exact (`None` otherwise: read the candle). Normalised, as parsed prices
    /// are.
    #[inline]
    pub fn exact_close(&self, i: usize) -> Option<Price> {
        self.exact_price(&self.close, i)
    }

    /// Row `i`'s open, exactly (see [`exact_close`](Self::exact_close)).
    #[inline]
    pub fn exact_open(&self, i: usize) -> Option<Price> {
        self.exact_price(&self.open, i)
    }

    /// Row `i` as the candle it was built from, exactly (decimals normalised), when the view
    /// covers prices and volumes: a run can keep the columns alone and rebuild the odd row it
    /// needs whole. `None` otherwise.
    #[inline]
    pub fn exact_candle(&self, i: usize) -> Option<Candle> {
        let volume = exact_decimal(self.volume_scale, self.exact_rows, &self.volume, i)?;
        Some(Candle {
            open_time: self.open_time_at(i),
            open: self.exact_price(&self.open, i)?,
            high: self.exact_price(&self.high, i)?,
            low: self.exact_price(&self.low, i)?,
            close: self.exact_price(&self.close, i)?,
            volume: Qty(volume),
        })
    }

    /// Whether [`exact_candle`](Self::exact_candle) gives every row back.
    pub fn holds_exact_candles(&self) -> bool {
        self.price_scale.is_some() && self.volume_scale.is_some() && self.exact_rows == self.len()
    }

    #[inline]
    fn exact_price(&self, column: &[f64], i: usize) -> Option<Price> {
        exact_decimal(self.price_scale, self.exact_rows, column, i).map(Price)
    }

    /// The step between the open times of the first `rows` rows when the view knows them to be
    /// evenly spaced (`None`: not known, read the column). A backtest skips its pass over the
    /// time column with it.
    #[inline]
    pub fn even_time_step(&self, rows: usize) -> Option<TimestampMs> {
        self.time_step.filter(|_| rows <= self.exact_rows)
    }

    /// Row `i`'s open time, worked out from the first one when the rows are evenly spaced
    /// (no read of the time column, which a sparse reader would miss in the cache).
    #[inline]
    pub fn open_time_at(&self, i: usize) -> TimestampMs {
        match self.time_step {
            Some(step) if i < self.exact_rows => self.open_time[0] + i as i64 * step,
            _ => self.open_time[i],
        }
    }
}

/// `column[i]` as the decimal it came from, at `scale` and normalised, when the view covers row
/// `i` (see `CandleColumns::exact_close`).
#[inline]
fn exact_decimal(
    scale: Option<u32>,
    exact_rows: usize,
    column: &[f64],
    i: usize,
) -> Option<rust_decimal::Decimal> {
    let scale = scale.filter(|_| i < exact_rows)?;
    let scaled = column[i] * EXACT_POW10[scale as usize];
    // Rounded half away from zero without a libm call: `scaled` is non-negative and under
    // 2^51, so its truncation and fraction are exact.
    let whole = scaled as u64;
    let mut m = whole + u64::from(scaled - whole as f64 >= 0.5);
    let mut s = scale;
    while s > 0 && m.is_multiple_of(10) {
        m /= 10;
        s -= 1;
    }
    // m < 2^51: an i64, and a decimal with no rescaling.
    Some(rust_decimal::Decimal::new(m as i64, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    fn candle(t: TimestampMs, o: Decimal, h: Decimal, l: Decimal, c: Decimal) -> Candle {
        Candle {
            open_time: t,
            open: Price(o),
            high: Price(h),
            low: Price(l),
            close: Price(c),
            volume: Qty(dec!(1)),
        }
    }

    /// `a` (read from the columns) is `b` (the candle's decimal) normalised: the same value at
    /// the scale a parser would have produced, whatever trailing zeros `b` carries.
    fn same_decimal(a: Price, b: Price) -> bool {
        a.get() == b.get() && a.get().scale() == b.get().normalize().scale()
    }

    proptest! {
        /// Whatever the prices (any scale, any size, mixed in one series), an exact price read
        /// from the columns is the candle's decimal, normalised; when the columns cannot promise
        /// that, they say so (None) rather than give an approximation.
        #[test]
        fn exact_prices_from_the_columns_are_the_candles_decimals(
            rows in prop::collection::vec(
                (0u64..(1u64 << 53), 0u32..12, prop::bool::weighted(0.02)),
                1..60,
            ),
        ) {
            let candles: Vec<Candle> = rows
                .iter()
                .enumerate()
                .map(|(i, &(m, s, huge))| {
                    // Now and then a price too wide for the exact view.
                    let m = i128::from(m) * if huge { 1_000_000_007 } else { 1 };
                    let p = Decimal::from_i128_with_scale(m, s);
                    let q = Decimal::from_i128_with_scale(m / 3, s.saturating_sub(1));
                    candle(i as i64 * 60_000, p, p.max(q), p.min(q), q)
                })
                .collect();
            let cols = CandleColumns::from_candles(&candles);
            let any_huge = candles.iter().any(|c| {
                [c.open, c.high, c.low, c.close]
                    .iter()
                    .any(|p| p.get().mantissa() >= 1 << 51)
            });
            for (i, c) in candles.iter().enumerate() {
                match (cols.exact_open(i), cols.exact_close(i)) {
                    (Some(o), Some(cl)) => {
                        prop_assert!(same_decimal(o, c.open), "open {} vs {}", o, c.open);
                        prop_assert!(same_decimal(cl, c.close), "close {} vs {}", cl, c.close);
                    }
                    (None, None) => prop_assert!(cols.price_scale.is_none()),
                    other => prop_assert!(false, "half an exact view: {:?}", other),
                }
                prop_assert_eq!(cols.open_time_at(i), c.open_time);
            }
            if any_huge {
                prop_assert!(cols.price_scale.is_none());
            }
        }
    }

    #[test]
    fn the_exact_view_takes_the_largest_scale_and_refuses_what_it_cannot_give_back() {
        let candles = vec![
            candle(0, dec!(100), dec!(101.5), dec!(99.25), dec!(100.125)),
            candle(60_000, dec!(100.125), dec!(102), dec!(100), dec!(101)),
        ];
        let cols = CandleColumns::from_candles(&candles);
        assert_eq!(cols.price_scale, Some(3));
        assert_eq!(cols.exact_close(0), Some(Price(dec!(100.125))));
        assert_eq!(cols.exact_close(0).unwrap().get().scale(), 3);
        // Normalised, as a parsed price is: 101, not 101.000.
        assert_eq!(cols.exact_close(1).unwrap().get().scale(), 0);
        assert_eq!(cols.time_step, Some(60_000));

        // A negative price, or one too wide for an f64 to give back, turns the view off.
        let mut odd = candles.clone();
        odd[1].low = Price(dec!(-1));
        assert_eq!(CandleColumns::from_candles(&odd).exact_close(0), None);
        let mut wide = candles.clone();
        // The series' scale is 3 (100.125): 2^51 thousandths is one too many.
        wide[1].high = Price(dec!(2251799813685.248));
        assert_eq!(CandleColumns::from_candles(&wide).exact_open(1), None);
        wide[1].high = Price(dec!(2251799813685.247));
        assert_eq!(
            CandleColumns::from_candles(&wide).exact_open(1),
            Some(Price(dec!(100.125)))
        );
    }

    #[test]
    fn whole_candles_are_rebuilt_from_the_columns_only_when_volumes_are_exact_too() {
        let mut candles = vec![
            candle(0, dec!(100.10), dec!(101.5), dec!(99.25), dec!(100.125)),
            candle(60_000, dec!(100.125), dec!(102), dec!(100), dec!(101)),
        ];
        candles[0].volume = Qty(dec!(755.99010));
        candles[1].volume = Qty(dec!(0));
        let cols = CandleColumns::from_candles(&candles);
        assert!(cols.holds_exact_candles());
        for (i, c) in candles.iter().enumerate() {
            let back = cols.exact_candle(i).unwrap();
            assert_eq!(&back, c);
            assert_eq!(
                back.volume.get().to_string(),
                c.volume.get().normalize().to_string()
            );
            assert_eq!(
                back.open.get().to_string(),
                c.open.get().normalize().to_string()
            );
        }
        // A volume too wide for the view: prices stay exact, whole candles are not offered.
        candles[1].volume = Qty(dec!(12345678901234567.8901));
        let cols = CandleColumns::from_candles(&candles);
        assert!(!cols.holds_exact_candles());
        assert_eq!(cols.exact_candle(0), None);
        assert_eq!(cols.exact_close(0), Some(Price(dec!(100.125))));
        // Built row by row from fixed-point numbers: the same columns as from the candles.
        let mut b = ColumnsBuilder::with_capacity(0);
        b.push_units(
            0,
            [(10010, 2), (1015, 1), (9925, 2), (100125, 3), (75599010, 5)],
        );
        let mut c0 = candles[0].clone();
        c0.open = Price(dec!(100.10));
        assert_eq!(b.finish(), CandleColumns::from_candles(&[c0]));
    }

    #[test]
    fn open_times_come_from_the_step_only_when_evenly_spaced() {
        let mut candles: Vec<Candle> = (0..5)
            .map(|i| candle(1_000 + i * 60_000, dec!(1), dec!(1), dec!(1), dec!(1)))
            .collect();
        let cols = CandleColumns::from_candles(&candles);
        assert_eq!(cols.time_step, Some(60_000));
        assert_eq!(cols.open_time_at(4), 241_000);
        // A gap: every time is read from the column.
        candles[3].open_time += 60_000;
        candles[4].open_time += 60_000;
        let cols = CandleColumns::from_candles(&candles);
        assert_eq!(cols.time_step, None);
        assert_eq!(cols.open_time_at(3), candles[3].open_time);
        // A slice keeps what holds for its rows.
        let part = cols.slice(0..3);
        assert_eq!(part.time_step, None, "still unknown: not re-derived");
        let even = CandleColumns::from_candles(&candles[..3]).slice(1..3);
        assert_eq!(even.time_step, Some(60_000));
        assert_eq!(even.open_time_at(1), candles[2].open_time);
        assert_eq!(even.exact_close(1), Some(Price(dec!(1))));
    }

    #[test]
    fn rows_pushed_after_building_are_never_read_through_the_exact_view() {
        let candles = vec![candle(0, dec!(1.5), dec!(2), dec!(1), dec!(1.75))];
        let mut cols = CandleColumns::from_candles(&candles);
        cols.open_time.push(5);
        cols.open.push(0.1);
        cols.close.push(0.1);
        assert_eq!(cols.exact_close(0), Some(Price(dec!(1.75))));
        assert_eq!(cols.exact_close(1), None);
        assert_eq!(cols.open_time_at(1), 5);
    }

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
