//! Technical indicators at TA-Lib precision: one state machine per indicator (`update` in O(1),
//! for live trading) and two batch faces over columns: the whole set fused in one pass
//! (`calculate_indicators`, for backtests, in `batch.rs`) and one kernel per indicator (`sma`
//! .. `vwap`, in `kernels.rs`). Each state machine's steady-state arithmetic is one small step
//! function (`slide`, `step`, `smooth`) that `update` and the batch loops all call, and the
//! batch faces run the warm-up rows through `update` itself, so every face gives bit-identical
//! numbers.
//!
//! Lookback semantics are TA-Lib's: an indicator yields nothing until its lookback is filled, and
//! the warm-up follows TA-Lib's seeding rules (EMA seeded by the SMA of its first `period` values,
//! MACD's fast EMA seeded on the same bar as the slow one, Wilder's ATR/ADX/RSI seeding). The
//! arithmetic follows TA-Lib's operation order, except that a division by a constant (a period)
//! is a multiplication by its reciprocal, and the exponential averages (EMA, MACD's three,
//! Wilder's RSI and ATR) are written as `keep * previous + weight * new` ([`decay`]): a few ulps
//! of rounding, far inside the 1e-9 parity tolerance, for a large saving (these loops are as
//! fast as the chain of operations from one row's average to the next; see [`decay`]).
//! In batch columns "no value" is `f64::NAN`; in streaming results it is `None`.

mod batch;
mod bollinger;
mod kernels;

pub use batch::{calculate_indicators, calculate_indicators_into};
pub use bollinger::{BandsValue, Bollinger, bollinger};
pub use kernels::{adx, atr, ema, macd, obv, rsi, sma, stochastic, vwap, wma};

use super::candle::{Candle, CandleColumns, TimestampMs};
use serde::{Deserialize, Serialize};

/// TA-Lib's `TA_IS_ZERO`: values this close to zero are treated as zero in divisions.
#[inline]
fn is_zero(v: f64) -> bool {
    -1e-8 < v && v < 1e-8
}

/// TA-Lib's true range: the largest of today's range and the gaps from yesterday's close.
#[inline]
fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut out = high - low;
    let gap_up = (high - prev_close).abs();
    if gap_up > out {
        out = gap_up;
    }
    let gap_down = (low - prev_close).abs();
    if gap_down > out {
        out = gap_down;
    }
    out
}

/// One step of an exponential average: `keep * previous + fresh`, where `fresh` is the new
/// value already multiplied by its weight. TA-Lib writes the EMA as `(x - prev) * k + prev` and
/// Wilder's smoothing as `(prev * (n - 1) + x) / n`: three operations from one row's average to
/// the next (sub, mul, add; or mul, add, div), each waiting for the one before. Here only a
/// multiplication and an addition are on that chain (`fresh` is computed beside it), which is
/// what bounds a single-indicator loop. The rounding differs from TA-Lib's by a few ulps that
/// do not grow (the average forgets them at the rate `keep`). Every face (state machine, fused
/// batch, kernels) calls this one function, so they stay bit-identical.
#[inline(always)]
fn decay(previous: f64, keep: f64, fresh: f64) -> f64 {
    previous * keep + fresh
}

/// Ask the CPU to bring the cache line holding `at` into L1 ahead of use (`WRITE`: to be
/// written). Only a hint: it never faults, whatever the address, and changes no memory. On the
/// 1M-row series the kernels stream their columns through the last-level cache, and the
/// hardware prefetcher alone left ATR and Bollinger waiting on it (about 15% and 30% of their
/// time).
#[inline(always)]
fn prefetch<const WRITE: bool>(at: *const f64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch instruction reads nothing into the program, writes no memory and
    // never faults, whatever the address; `at` is not dereferenced.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T0, _mm_prefetch};
        if WRITE {
            _mm_prefetch::<_MM_HINT_ET0>(at.cast());
        } else {
            _mm_prefetch::<_MM_HINT_T0>(at.cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// An exponential average advanced two rows per link of its dependency chain. With
/// `fresh` the weighted new values `a` then `b` of a pair of rows, the pair's first output is
/// `decay(anchor, keep, a)` and its second, the new anchor,
/// `decay(anchor, keep², decay(a, keep, b))`: only one multiplication and one addition per
/// *two* rows wait on the previous average (the first output and `decay(a, keep, b)` are
/// computed beside the chain). The same average as [`decay`] row by row, up to a few ulps that
/// do not grow. Every face steps it a row at a time ([`Paired::step`]: the pair alternates, a
/// branch the predictor always gets right), so they agree bit for bit; pairs start at the seed.
#[derive(Debug, Clone, Copy)]
struct Paired {
    keep: f64,
    /// `keep * keep`.
    keep2: f64,
    /// The average after the last whole pair (the seed, before any pair).
    anchor: f64,
    /// The weighted value of an open pair's first row.
    pending: f64,
    /// A pair is open: the next row closes it.
    open: bool,
}

impl Paired {
    fn new(keep: f64) -> Paired {
        Paired {
            keep,
            keep2: keep * keep,
            anchor: 0.0,
            pending: 0.0,
            open: false,
        }
    }

    /// Start from `value` (the seed); the next row opens a pair.
    fn seed(&mut self, value: f64) {
        self.anchor = value;
        self.open = false;
    }

    /// One row, `fresh` its weighted new value: the average after it.
    #[inline(always)]
    fn step(&mut self, fresh: f64) -> f64 {
        self.open = !self.open;
        if self.open {
            self.pending = fresh;
            decay(self.anchor, self.keep, fresh)
        } else {
            let pair = decay(self.pending, self.keep, fresh);
            self.anchor = decay(self.anchor, self.keep2, pair);
            self.anchor
        }
    }
}

/// An exponential average advanced four rows per link of its dependency chain, as [`Paired`]
/// does two: with `a, b, c, d` the weighted new values of a group of four rows and `p_j` the
/// group's own average so far (`p_1 = a`, `p_2 = decay(p_1, keep, b)`, ...), row `j`'s output is
/// `decay(anchor, keep^j, p_j)` and the fourth is the next anchor. Only one multiplication and
/// one addition per *four* rows wait on the previous average; the `p_j` chain and the other
/// outputs are computed beside it. The same average as [`decay`] row by row up to a few ulps
/// that do not grow (the average forgets them at the rate `keep`). Every face steps it a row
/// at a time ([`Quad::step`]) or a group at a time (the ATR kernel: the same operations in the
/// same order), so they agree bit for bit; groups start at the seed.
#[derive(Debug, Clone, Copy)]
struct Quad {
    keep: f64,
    /// `keep^1 ..= keep^4`.
    powers: [f64; 4],
    /// The average after the last whole group (the seed, before any group).
    anchor: f64,
    /// The open group's own average so far (`p_j`).
    pending: f64,
    /// Rows of the open group so far (0 to 3).
    filled: usize,
}

impl Quad {
    fn new(keep: f64) -> Quad {
        let keep2 = keep * keep;
        Quad {
            keep,
            powers: [keep, keep2, keep2 * keep, keep2 * keep2],
            anchor: 0.0,
            pending: 0.0,
            filled: 0,
        }
    }

    /// Start from `value` (the seed); the next row opens a group.
    fn seed(&mut self, value: f64) {
        self.anchor = value;
        self.filled = 0;
    }

    /// One row, `fresh` its weighted new value: the average after it.
    #[inline(always)]
    fn step(&mut self, fresh: f64) -> f64 {
        self.pending = if self.filled == 0 {
            fresh
        } else {
            decay(self.pending, self.keep, fresh)
        };
        let out = decay(self.anchor, self.powers[self.filled & 3], self.pending);
        self.filled += 1;
        if self.filled == 4 {
            self.anchor = out;
            self.filled = 0;
        }
        out
    }
}

/// One candle in f64, the input of the candle-based indicators.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ohlcv {
    pub open_time: TimestampMs,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Ohlcv {
    /// Row `i` of a column view. Panics if `i` is out of range, like slice indexing.
    #[inline]
    pub fn from_columns(cols: &CandleColumns, i: usize) -> Ohlcv {
        Ohlcv {
            open_time: cols.open_time[i],
            open: cols.open[i],
            high: cols.high[i],
            low: cols.low[i],
            close: cols.close[i],
            volume: cols.volume[i],
        }
    }
}

impl From<&Candle> for Ohlcv {
    fn from(c: &Candle) -> Self {
        Ohlcv {
            open_time: c.open_time,
            open: c.open.to_f64(),
            high: c.high.to_f64(),
            low: c.low.to_f64(),
            close: c.close.to_f64(),
            volume: c.volume.to_f64(),
        }
    }
}

/// The last `cap` values, oldest first; fixed storage, O(1) push.
#[derive(Debug, Clone)]
struct Ring {
    buf: Box<[f64]>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        Ring {
            buf: vec![0.0; cap.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, x: f64) {
        let cap = self.buf.len();
        if self.len < cap {
            let at = (self.head + self.len) % cap;
            self.buf[at] = x;
            self.len += 1;
        } else {
            self.buf[self.head] = x;
            self.head += 1;
            if self.head == cap {
                self.head = 0;
            }
        }
    }

    /// [`Ring::push`] into a full ring, without the fill-phase branch.
    #[inline(always)]
    fn push_full(&mut self, x: f64) {
        self.buf[self.head] = x;
        let next = self.head + 1;
        self.head = if next == self.buf.len() { 0 } else { next };
    }

    /// The value the next push into a full ring evicts (the oldest one kept).
    #[inline(always)]
    fn oldest(&self) -> f64 {
        self.buf[self.head]
    }

    #[inline(always)]
    fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// Running maximum (`MAX = true`) or minimum of the last `period` values: a monotonic queue,
/// amortised O(1) per value, exact (no arithmetic, so the same value TA-Lib's rescans find).
#[derive(Debug, Clone)]
struct Extremum<const MAX: bool> {
    index: Box<[u64]>,
    value: Box<[f64]>,
    head: usize,
    len: usize,
    period: u64,
}

impl<const MAX: bool> Extremum<MAX> {
    fn new(period: usize) -> Self {
        let cap = period.max(1);
        Extremum {
            index: vec![0; cap].into_boxed_slice(),
            value: vec![0.0; cap].into_boxed_slice(),
            head: 0,
            len: 0,
            period: cap as u64,
        }
    }

    #[inline]
    fn slot(&self, k: usize) -> usize {
        let cap = self.value.len();
        let at = self.head + k;
        if at >= cap { at - cap } else { at }
    }

    /// Add value `x` at position `i` (strictly increasing) and return the window's extreme.
    #[inline]
    fn push(&mut self, i: u64, x: f64) -> f64 {
        // Drop the entries that left the window, then those dominated by `x`.
        while self.len > 0 && self.index[self.head] + self.period <= i {
            self.head = self.slot(1);
            self.len -= 1;
        }
        while self.len > 0 {
            let back = self.slot(self.len - 1);
            let dominated = if MAX {
                self.value[back] <= x
            } else {
                self.value[back] >= x
            };
            if !dominated {
                break;
            }
            self.len -= 1;
        }
        let at = self.slot(self.len);
        self.index[at] = i;
        self.value[at] = x;
        self.len += 1;
        self.value[self.head]
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// Simple moving average (TA-Lib `SMA`): first value at index `period - 1`.
#[derive(Debug, Clone)]
pub struct Sma {
    period: usize,
    inv_period: f64,
    window: Ring,
    sum: f64,
}

impl Sma {
    /// A period of 0 is treated as 1.
    pub fn new(period: usize) -> Sma {
        let period = period.max(1);
        Sma {
            period,
            inv_period: 1.0 / period as f64,
            window: Ring::new(period),
            sum: 0.0,
        }
    }

    /// Index of the first value (values before it are warm-up).
    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        if self.window.is_full() {
            // Steady state: the window is full from the period-th value on.
            return Some(self.update_full(x));
        }
        self.window.push(x);
        if !self.window.is_full() {
            self.sum += x;
            return None;
        }
        Some(self.slide(x, self.window.oldest()))
    }

    /// One step of a full window: `x` enters, `leaving` (the oldest value still in the window,
    /// dropped after this output) goes. The arithmetic both faces share.
    #[inline(always)]
    fn slide(&mut self, x: f64, leaving: f64) -> f64 {
        // TA-Lib's order: add the new value, divide, then drop the trailing one.
        self.sum += x;
        let out = self.sum * self.inv_period;
        self.sum -= leaving;
        out
    }

    /// [`Sma::update`] once the window is full (the batch face's steady state).
    #[inline(always)]
    fn update_full(&mut self, x: f64) -> f64 {
        debug_assert!(self.window.is_full());
        self.window.push_full(x);
        self.slide(x, self.window.oldest())
    }

    pub fn reset(&mut self) {
        self.window.clear();
        self.sum = 0.0;
    }
}

/// [`Sma`] over a series the caller keeps whole (a backtest's close column, a strategy's
/// history): the value leaving the window is read back from the series instead of from a ring
/// of its own, so an update is two additions and a multiplication. Fed the series one value
/// longer on each call, it gives exactly `Sma::update`'s values (the same operations in the same
/// order; a property test checks it bit for bit).
#[derive(Debug, Clone)]
pub struct SlidingSma {
    period: usize,
    inv_period: f64,
    sum: f64,
}

impl SlidingSma {
    /// A period of 0 is treated as 1.
    pub fn new(period: usize) -> SlidingSma {
        let period = period.max(1);
        SlidingSma {
            period,
            inv_period: 1.0 / period as f64,
            sum: 0.0,
        }
    }

    /// `series` is every value so far, the newest last; call once per new value.
    #[inline(always)]
    pub fn update(&mut self, series: &[f64]) -> Option<f64> {
        let n = series.len();
        let x = *series.last()?;
        self.sum += x;
        if n < self.period {
            return None;
        }
        let out = self.sum * self.inv_period;
        self.sum -= series[n - self.period];
        Some(out)
    }
}

/// Exponential moving average (TA-Lib `EMA`, `k = 2 / (period + 1)`), seeded with the SMA of
/// its first `period` values: first value at index `period - 1`.
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    k: f64,
    /// `1 - k`: the previous average's weight.
    keep: f64,
    seen: usize,
    sum: f64,
    value: f64,
}

impl Ema {
    pub fn new(period: usize) -> Ema {
        let period = period.max(1);
        let k = 2.0 / (period as f64 + 1.0);
        Ema {
            period,
            k,
            keep: 1.0 - k,
            seen: 0,
            sum: 0.0,
            value: 0.0,
        }
    }

    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        if self.seen >= self.period {
            return Some(self.step(x));
        }
        self.seen += 1;
        self.sum += x;
        if self.seen < self.period {
            return None;
        }
        self.value = self.sum / self.period as f64;
        Some(self.value)
    }

    /// One smoothing step once seeded.
    #[inline(always)]
    fn step(&mut self, x: f64) -> f64 {
        self.value = decay(self.value, self.keep, x * self.k);
        self.value
    }

    pub fn reset(&mut self) {
        self.seen = 0;
        self.sum = 0.0;
        self.value = 0.0;
    }
}

/// Linearly weighted moving average (TA-Lib `WMA`, weights 1..=period, newest heaviest).
#[derive(Debug, Clone)]
pub struct Wma {
    period: usize,
    /// The newest value's weight, `period` as f64.
    weight: f64,
    inv_divider: f64,
    window: Ring,
    seen: usize,
    weighted_sum: f64,
    plain_sum: f64,
    trailing: f64,
}

impl Wma {
    pub fn new(period: usize) -> Wma {
        let period = period.max(1);
        Wma {
            period,
            weight: period as f64,
            inv_divider: 1.0 / (period * (period + 1) / 2) as f64,
            window: Ring::new(period),
            seen: 0,
            weighted_sum: 0.0,
            plain_sum: 0.0,
            trailing: 0.0,
        }
    }

    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.window.push(x);
        if self.seen + 1 < self.period {
            self.seen += 1;
            self.plain_sum += x;
            self.weighted_sum += x * self.seen as f64;
            return None;
        }
        let out = self.slide(x, self.trailing);
        self.trailing = self.window.oldest();
        Some(out)
    }

    /// One step of a full window: `x` enters and `leaving`, the value `period` steps back,
    /// leaves the plain sum. The arithmetic both faces share.
    #[inline(always)]
    fn slide(&mut self, x: f64, leaving: f64) -> f64 {
        // Sliding the window lowers every weight by one: subtract the plain sum after output.
        self.plain_sum += x;
        self.plain_sum -= leaving;
        self.weighted_sum += x * self.weight;
        let out = self.weighted_sum * self.inv_divider;
        self.weighted_sum -= self.plain_sum;
        out
    }

    pub fn reset(&mut self) {
        let period = self.period;
        *self = Wma::new(period);
    }
}

/// Relative strength index with Wilder's smoothing (TA-Lib `RSI`): first value at index `period`.
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    inv_period: f64,
    prev: Option<f64>,
    changes: usize,
    /// The sums of the first `period` changes, then the averages.
    gain: f64,
    loss: f64,
    /// Wilder's averages once seeded, two rows per link of their chains (see [`Paired`]).
    gain_avg: Paired,
    loss_avg: Paired,
}

impl Rsi {
    pub fn new(period: usize) -> Rsi {
        let keep = wilder_keep(period);
        Rsi {
            period: period.max(1),
            inv_period: 1.0 / period.max(1) as f64,
            prev: None,
            changes: 0,
            gain: 0.0,
            loss: 0.0,
            gain_avg: Paired::new(keep),
            loss_avg: Paired::new(keep),
        }
    }

    pub fn lookback(&self) -> usize {
        self.period
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let prev = self.prev.replace(x)?;
        self.changes += 1;
        if self.changes > self.period {
            return Some(self.smooth(x, prev));
        }
        self.accumulate(x - prev);
        if self.changes < self.period {
            return None;
        }
        self.loss *= self.inv_period;
        self.gain *= self.inv_period;
        self.loss_avg.seed(self.loss);
        self.gain_avg.seed(self.gain);
        Some(self.value())
    }

    /// A rise adds to the gains, a fall to the losses. Both sums get an addition (of 0.0 for
    /// the other one), selected without a branch: the sign of a price change is a coin toss
    /// the branch predictor always loses. The sums are never -0.0, so adding 0.0 changes no
    /// bit.
    #[inline(always)]
    fn accumulate(&mut self, change: f64) {
        let (gain, loss) = split_change(change);
        self.loss += loss;
        self.gain += gain;
    }

    /// Wilder's smoothing step once seeded, from the previous close to `x`: the arithmetic
    /// both faces share.
    #[inline(always)]
    fn smooth(&mut self, x: f64, prev: f64) -> f64 {
        let (gain, loss) = split_change(x - prev);
        self.loss = self.loss_avg.step(loss * self.inv_period);
        self.gain = self.gain_avg.step(gain * self.inv_period);
        rsi_value(self.gain, self.loss)
    }

    #[inline(always)]
    fn value(&self) -> f64 {
        rsi_value(self.gain, self.loss)
    }

    pub fn reset(&mut self) {
        *self = Rsi::new(self.period);
    }
}

/// A price change as (gain, loss), one of them 0.0, without a branch (see
/// [`Rsi::accumulate`]): the gain is a `max` (one instruction) and the loss `gain - change`,
/// exact in both cases (`0 - change` or `change - change`). Written as two selects, the
/// compiler turned one of them back into a branch.
#[inline(always)]
fn split_change(change: f64) -> (f64, f64) {
    let gain = if change > 0.0 { change } else { 0.0 };
    (gain, gain - change)
}

/// The RSI of the average gain and loss (0 when both are ~0, as TA-Lib).
#[inline(always)]
fn rsi_value(gain: f64, loss: f64) -> f64 {
    let total = gain + loss;
    let rsi = 100.0 * (gain / total);
    if is_zero(total) { 0.0 } else { rsi }
}

/// `(period - 1) / period`, the previous average's weight in Wilder's smoothing (period 0 is 1).
fn wilder_keep(period: usize) -> f64 {
    let period = period.max(1);
    (period - 1) as f64 / period as f64
}

/// One MACD reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MacdValue {
    pub macd: f64,
    pub signal: f64,
    pub histogram: f64,
}

/// MACD (TA-Lib `MACD`): both EMAs are seeded on the bar where the slow one completes (the fast
/// one with the SMA of the last `fast` values there), the signal EMA runs on the MACD line from
/// that bar. First value at index `(slow - 1) + (signal - 1)`.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: usize,
    slow: usize,
    k_fast: f64,
    k_slow: f64,
    keep_fast: f64,
    keep_slow: f64,
    warmup: Vec<f64>,
    seeded: bool,
    fast_ema: f64,
    slow_ema: f64,
    signal: Ema,
}

impl Macd {
    /// Periods of 0 are treated as 1; a fast period longer than the slow one is swapped, as
    /// TA-Lib does.
    pub fn new(fast: usize, slow: usize, signal: usize) -> Macd {
        let (mut fast, mut slow) = (fast.max(1), slow.max(1));
        if slow < fast {
            std::mem::swap(&mut fast, &mut slow);
        }
        Macd {
            fast,
            slow,
            k_fast: 2.0 / (fast as f64 + 1.0),
            k_slow: 2.0 / (slow as f64 + 1.0),
            keep_fast: 1.0 - 2.0 / (fast as f64 + 1.0),
            keep_slow: 1.0 - 2.0 / (slow as f64 + 1.0),
            warmup: Vec::with_capacity(slow),
            seeded: false,
            fast_ema: 0.0,
            slow_ema: 0.0,
            signal: Ema::new(signal),
        }
    }

    pub fn lookback(&self) -> usize {
        (self.slow - 1) + self.signal.lookback()
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> Option<MacdValue> {
        if self.seeded {
            self.smooth(x);
        } else {
            self.warmup.push(x);
            if self.warmup.len() < self.slow {
                return None;
            }
            let slow_sum = self.warmup.iter().fold(0.0, |s, v| s + v);
            let fast_sum = self.warmup[self.slow - self.fast..]
                .iter()
                .fold(0.0, |s, v| s + v);
            self.slow_ema = slow_sum / self.slow as f64;
            self.fast_ema = fast_sum / self.fast as f64;
            self.seeded = true;
        }
        let macd = self.fast_ema - self.slow_ema;
        let signal = self.signal.update(macd)?;
        Some(MacdValue {
            macd,
            signal,
            histogram: macd - signal,
        })
    }

    /// Both EMAs' step once seeded.
    #[inline(always)]
    fn smooth(&mut self, x: f64) {
        self.slow_ema = decay(self.slow_ema, self.keep_slow, x * self.k_slow);
        self.fast_ema = decay(self.fast_ema, self.keep_fast, x * self.k_fast);
    }

    /// [`Macd::update`] once the signal line is seeded (the batch face's steady state).
    #[inline(always)]
    fn update_seeded(&mut self, x: f64) -> MacdValue {
        self.smooth(x);
        let macd = self.fast_ema - self.slow_ema;
        let signal = self.signal.step(macd);
        MacdValue {
            macd,
            signal,
            histogram: macd - signal,
        }
    }

    pub fn reset(&mut self) {
        self.warmup.clear();
        self.seeded = false;
        self.fast_ema = 0.0;
        self.slow_ema = 0.0;
        self.signal.reset();
    }
}

/// Average true range with Wilder's smoothing (TA-Lib `ATR`): seeded with the plain mean of the
/// first `period` true ranges (which start at the second candle); first value at index `period`.
#[derive(Debug, Clone)]
pub struct Atr {
    period: usize,
    inv_period: f64,
    prev_close: Option<f64>,
    ranges: usize,
    /// The running sum of true ranges during the seed, then the ATR.
    value: f64,
    /// Wilder's smoothing once seeded, `keep = (period - 1) / period`, four rows per link.
    smoothed: Quad,
}

impl Atr {
    pub fn new(period: usize) -> Atr {
        Atr {
            period: period.max(1),
            inv_period: 1.0 / period.max(1) as f64,
            prev_close: None,
            ranges: 0,
            value: 0.0,
            smoothed: Quad::new(wilder_keep(period)),
        }
    }

    pub fn lookback(&self) -> usize {
        self.period
    }

    #[inline]
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let prev_close = self.prev_close.replace(bar.close)?;
        let tr = true_range(bar.high, bar.low, prev_close);
        self.ranges += 1;
        if self.ranges > self.period {
            return Some(self.smooth(tr));
        }
        // During the seed `value` holds the running sum of true ranges.
        self.value += tr;
        if self.ranges < self.period {
            return None;
        }
        self.value *= self.inv_period;
        self.smoothed.seed(self.value);
        Some(self.value)
    }

    /// Wilder's smoothing step once seeded: the arithmetic both faces share.
    #[inline(always)]
    fn smooth(&mut self, tr: f64) -> f64 {
        self.value = self.smoothed.step(tr * self.inv_period);
        self.value
    }

    pub fn reset(&mut self) {
        *self = Atr::new(self.period);
    }
}

/// Average directional index with +DI and −DI (TA-Lib `ADX`, `PLUS_DI`, `MINUS_DI`): the DIs
/// appear at index `period`, the ADX at index `2 * period - 1`. `update` returns the ADX; the
/// DIs of the same candle are read with [`Adx::plus_di`] and [`Adx::minus_di`].
#[derive(Debug, Clone)]
pub struct Adx {
    period: usize,
    inv_period: f64,
    /// `period - 1` as f64: the weight of the previous ADX in Wilder's smoothing.
    decay: f64,
    started: bool,
    moves: usize,
    prev_high: f64,
    prev_low: f64,
    prev_close: f64,
    plus_dm: f64,
    minus_dm: f64,
    tr: f64,
    dx_sum: f64,
    adx: f64,
    plus_di: Option<f64>,
    minus_di: Option<f64>,
}

impl Adx {
    pub fn new(period: usize) -> Adx {
        Adx {
            period: period.max(1),
            inv_period: 1.0 / period.max(1) as f64,
            decay: period.max(1) as f64 - 1.0,
            started: false,
            moves: 0,
            prev_high: 0.0,
            prev_low: 0.0,
            prev_close: 0.0,
            plus_dm: 0.0,
            minus_dm: 0.0,
            tr: 0.0,
            dx_sum: 0.0,
            adx: 0.0,
            plus_di: None,
            minus_di: None,
        }
    }

    pub fn lookback(&self) -> usize {
        2 * self.period - 1
    }

    /// +DI of the last candle, once its lookback is filled.
    pub fn plus_di(&self) -> Option<f64> {
        self.plus_di
    }

    /// −DI of the last candle, once its lookback is filled.
    pub fn minus_di(&self) -> Option<f64> {
        self.minus_di
    }

    #[inline]
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        if !self.started {
            self.started = true;
            self.prev_high = bar.high;
            self.prev_low = bar.low;
            self.prev_close = bar.close;
            return None;
        }
        let up = bar.high - self.prev_high;
        let down = self.prev_low - bar.low;
        let tr = true_range(bar.high, bar.low, self.prev_close);
        self.prev_high = bar.high;
        self.prev_low = bar.low;
        self.prev_close = bar.close;
        self.moves += 1;

        if self.moves < self.period {
            self.add_moves(up, down);
            self.tr += tr;
            return None;
        }

        let directional = self.smooth(up, down, tr);
        self.plus_di = Some(directional.plus_di);
        self.minus_di = Some(directional.minus_di);
        let first_adx = 2 * self.period - 1;
        if self.moves < first_adx {
            self.dx_sum += directional.dx_or_zero();
            None
        } else if self.moves == first_adx {
            self.dx_sum += directional.dx_or_zero();
            self.adx = self.dx_sum * self.inv_period;
            Some(self.adx)
        } else {
            Some(self.smooth_adx(&directional))
        }
    }

    /// Add today's directional movement to +DM (a larger rise) or −DM (a larger fall). Both
    /// get an addition (0.0 for the loser), selected without a branch: which one wins is a
    /// coin toss the branch predictor always loses. The sums are never -0.0, so adding 0.0
    /// changes no bit.
    #[inline(always)]
    fn add_moves(&mut self, up: f64, down: f64) {
        let fell = (down > 0.0) & (up < down);
        let rose = (up > 0.0) & (up > down);
        self.minus_dm += if fell { down } else { 0.0 };
        self.plus_dm += if rose { up } else { 0.0 };
    }

    /// Wilder's smoothing of ±DM and TR once seeded, and the DIs and DX they give: the
    /// arithmetic both faces share.
    #[inline(always)]
    fn smooth(&mut self, up: f64, down: f64, tr: f64) -> Directional {
        let inv_n = self.inv_period;
        self.minus_dm -= self.minus_dm * inv_n;
        self.plus_dm -= self.plus_dm * inv_n;
        self.add_moves(up, down);
        self.tr = self.tr - self.tr * inv_n + tr;
        // Computed unconditionally and selected: a flat market (TR or DI sum ~ 0) has DIs of
        // 0 and no DX, whatever the divisions gave.
        let scale = 100.0 / self.tr;
        let minus_di = self.minus_dm * scale;
        let plus_di = self.plus_dm * scale;
        let total = minus_di + plus_di;
        let dx = 100.0 * ((minus_di - plus_di).abs() / total);
        let flat = is_zero(self.tr);
        Directional {
            plus_di: if flat { 0.0 } else { plus_di },
            minus_di: if flat { 0.0 } else { minus_di },
            dx,
            has_dx: !flat && !is_zero(total),
        }
    }

    /// Wilder's smoothing of the ADX once seeded; a candle without a DX leaves it unchanged.
    #[inline(always)]
    fn smooth_adx(&mut self, directional: &Directional) -> f64 {
        let smoothed = (self.adx * self.decay + directional.dx) * self.inv_period;
        self.adx = if directional.has_dx {
            smoothed
        } else {
            self.adx
        };
        self.adx
    }

    pub fn reset(&mut self) {
        *self = Adx::new(self.period);
    }
}

/// The DIs and DX of one candle; `has_dx` is false when the DI sum is ~0 (no DX that day).
#[derive(Debug, Clone, Copy)]
struct Directional {
    plus_di: f64,
    minus_di: f64,
    dx: f64,
    has_dx: bool,
}

impl Directional {
    fn dx_or_zero(&self) -> f64 {
        if self.has_dx { self.dx } else { 0.0 }
    }
}

/// One stochastic oscillator reading (TA-Lib's slow %K and %D).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StochValue {
    pub k: f64,
    pub d: f64,
}

/// Slow stochastic (TA-Lib `STOCH` with SMA smoothing): raw %K over `fast_k` candles, %K its
/// `slow_k` SMA, %D the `slow_d` SMA of %K. Both appear together at index
/// `(fast_k - 1) + (slow_k - 1) + (slow_d - 1)`.
#[derive(Debug, Clone)]
pub struct Stochastic {
    fast_k: usize,
    highest: Extremum<true>,
    lowest: Extremum<false>,
    seen: u64,
    slow_k: Sma,
    slow_d: Sma,
}

impl Stochastic {
    pub fn new(fast_k: usize, slow_k: usize, slow_d: usize) -> Stochastic {
        Stochastic {
            fast_k: fast_k.max(1),
            highest: Extremum::new(fast_k),
            lowest: Extremum::new(fast_k),
            seen: 0,
            slow_k: Sma::new(slow_k),
            slow_d: Sma::new(slow_d),
        }
    }

    pub fn lookback(&self) -> usize {
        (self.fast_k - 1) + self.slow_k.lookback() + self.slow_d.lookback()
    }

    #[inline]
    pub fn update(&mut self, bar: &Ohlcv) -> Option<StochValue> {
        let i = self.seen;
        self.seen += 1;
        let highest = self.highest.push(i, bar.high);
        let lowest = self.lowest.push(i, bar.low);
        if self.seen < self.fast_k as u64 {
            return None;
        }
        let k = self.slow_k.update(raw_k(bar.close, highest, lowest))?;
        let d = self.slow_d.update(k)?;
        Some(StochValue { k, d })
    }

    /// [`Stochastic::update`] once %D is filled (the batch face's steady state), given the
    /// window's highest high and lowest low.
    #[inline(always)]
    fn update_full(&mut self, close: f64, highest: f64, lowest: f64) -> StochValue {
        let k = self.slow_k.update_full(raw_k(close, highest, lowest));
        let d = self.slow_d.update_full(k);
        StochValue { k, d }
    }

    pub fn reset(&mut self) {
        self.highest.clear();
        self.lowest.clear();
        self.seen = 0;
        self.slow_k.reset();
        self.slow_d.reset();
    }
}

/// Where `close` sits in the window's range, 0..=100 (0 for a flat window).
#[inline(always)]
fn raw_k(close: f64, highest: f64, lowest: f64) -> f64 {
    let range = highest - lowest;
    let k = (close - lowest) * 100.0 / range;
    if range != 0.0 { k } else { 0.0 }
}

/// On-balance volume (TA-Lib `OBV`): starts at the first candle's volume, then adds the volume
/// of up closes and subtracts that of down closes. Has a value from the first candle.
#[derive(Debug, Clone, Default)]
pub struct Obv {
    prev_close: Option<f64>,
    value: f64,
}

impl Obv {
    pub fn new() -> Obv {
        Obv::default()
    }

    pub fn lookback(&self) -> usize {
        0
    }

    #[inline]
    pub fn update(&mut self, close: f64, volume: f64) -> Option<f64> {
        match self.prev_close {
            None => self.value = volume,
            Some(prev) => {
                self.step(close, prev, volume);
            }
        }
        self.prev_close = Some(close);
        Some(self.value)
    }

    /// Add the volume of an up close, subtract that of a down close (selects, not branches:
    /// the direction is unpredictable). The arithmetic both faces share.
    #[inline(always)]
    fn step(&mut self, close: f64, prev: f64, volume: f64) -> f64 {
        let up = self.value + volume;
        let down = self.value - volume;
        self.value = if close > prev {
            up
        } else if close < prev {
            down
        } else {
            self.value
        };
        self.value
    }

    pub fn reset(&mut self) {
        *self = Obv::default();
    }
}

/// Volume-weighted average price of the typical price `(high + low + close) / 3`, accumulated
/// from the first candle, or from the start of each session when a session length is given
/// (for example one day: the VWAP restarts at 00:00 UTC). No value while no volume has traded.
#[derive(Debug, Clone, Default)]
pub struct Vwap {
    session_ms: Option<i64>,
    /// Open times of the current session (empty before the first candle).
    session: std::ops::Range<TimestampMs>,
    price_volume: f64,
    volume: f64,
}

impl Vwap {
    /// Cumulative since the first candle.
    pub fn new() -> Vwap {
        Vwap::default()
    }

    /// Restarting whenever a candle opens in a new session of `session_ms` milliseconds
    /// (sessions aligned to the Unix epoch). A non-positive length means no sessions.
    pub fn with_session(session_ms: i64) -> Vwap {
        Vwap {
            session_ms: (session_ms > 0).then_some(session_ms),
            ..Vwap::default()
        }
    }

    pub fn lookback(&self) -> usize {
        0
    }

    #[inline]
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let vwap = self.step(bar.open_time, bar.high, bar.low, bar.close, bar.volume);
        (self.volume > 0.0).then_some(vwap)
    }

    /// Add one candle and return the VWAP, NaN while no volume has traded: the arithmetic
    /// both faces share.
    #[inline(always)]
    fn step(
        &mut self,
        open_time: TimestampMs,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) -> f64 {
        if let Some(len) = self.session_ms
            && !(self.session.start <= open_time && open_time < self.session.end)
        {
            self.start_session(open_time, len);
        }
        let typical = (high + low + close) * (1.0 / 3.0);
        self.price_volume += typical * volume;
        self.volume += volume;
        let vwap = self.price_volume / self.volume;
        if self.volume > 0.0 { vwap } else { f64::NAN }
    }

    /// Reset the sums for the session containing `open_time`; its bounds are kept so that the
    /// check per candle is two comparisons, not an integer division.
    #[cold]
    fn start_session(&mut self, open_time: TimestampMs, len: i64) {
        let start = open_time.saturating_sub(open_time.rem_euclid(len));
        self.session = start..start.saturating_add(len);
        self.price_volume = 0.0;
        self.volume = 0.0;
    }

    pub fn reset(&mut self) {
        *self = Vwap {
            session_ms: self.session_ms,
            ..Vwap::default()
        };
    }
}

/// The seed's simple signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    Buy,
    Sell,
    Hold,
}

/// RSI below 30 with a rising MACD histogram (> 0) → buy; RSI above 70 with a falling one
/// (< 0) → sell; otherwise hold. A missing value (NaN) holds.
#[inline]
pub fn simple_signal(rsi: f64, macd_histogram: f64) -> Signal {
    simple_signal_at(rsi, macd_histogram, 30.0, 70.0)
}

/// `simple_signal` with other RSI levels (the rules engine's `oversold` / `overbought`).
pub fn simple_signal_at(rsi: f64, macd_histogram: f64, oversold: f64, overbought: f64) -> Signal {
    if rsi < oversold && macd_histogram > 0.0 {
        Signal::Buy
    } else if rsi > overbought && macd_histogram < 0.0 {
        Signal::Sell
    } else {
        Signal::Hold
    }
}

/// Parameters of the full indicator set. Defaults are the conventional ones (and TA-Lib's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndicatorParams {
    /// SMA period (default 20).
    pub sma_period: usize,
    /// EMA period (default 20).
    pub ema_period: usize,
    /// WMA period (default 20).
    pub wma_period: usize,
    /// RSI period (default 14).
    pub rsi_period: usize,
    /// MACD fast EMA period (default 12).
    pub macd_fast: usize,
    /// MACD slow EMA period (default 26).
    pub macd_slow: usize,
    /// MACD signal EMA period (default 9).
    pub macd_signal: usize,
    /// Bollinger Bands period (default 20).
    pub bb_period: usize,
    /// Standard deviations above the middle band (default 2).
    pub bb_dev_up: f64,
    /// Standard deviations below the middle band (default 2).
    pub bb_dev_down: f64,
    /// ATR period (default 14).
    pub atr_period: usize,
    /// ADX / DI period (default 14).
    pub adx_period: usize,
    /// Stochastic raw %K lookback (default 14).
    pub stoch_fast_k: usize,
    /// Stochastic %K smoothing (SMA, default 3).
    pub stoch_slow_k: usize,
    /// Stochastic %D smoothing (SMA, default 3).
    pub stoch_slow_d: usize,
    /// VWAP session length in ms; `None` (default) accumulates from the first candle.
    pub vwap_session_ms: Option<i64>,
}

impl Default for IndicatorParams {
    fn default() -> Self {
        IndicatorParams {
            sma_period: 20,
            ema_period: 20,
            wma_period: 20,
            rsi_period: 14,
            macd_fast: 12,
            macd_slow: 26,
            macd_signal: 9,
            bb_period: 20,
            bb_dev_up: 2.0,
            bb_dev_down: 2.0,
            atr_period: 14,
            adx_period: 14,
            stoch_fast_k: 14,
            stoch_slow_k: 3,
            stoch_slow_d: 3,
            vwap_session_ms: None,
        }
    }
}

/// Largest period accepted (TA-Lib's limit).
pub const MAX_PERIOD: usize = 100_000;

impl IndicatorParams {
    /// Check ranges: periods 1..=100000 (2.. where a period of 1 is meaningless), the MACD fast
    /// period below the slow one, band widths finite and non-negative, a positive VWAP session.
    pub fn validate(&self) -> Result<(), String> {
        let periods = [
            ("sma_period", self.sma_period, 1),
            ("ema_period", self.ema_period, 1),
            ("wma_period", self.wma_period, 1),
            ("rsi_period", self.rsi_period, 2),
            ("macd_fast", self.macd_fast, 2),
            ("macd_slow", self.macd_slow, 2),
            ("macd_signal", self.macd_signal, 1),
            ("bb_period", self.bb_period, 2),
            ("atr_period", self.atr_period, 1),
            ("adx_period", self.adx_period, 2),
            ("stoch_fast_k", self.stoch_fast_k, 1),
            ("stoch_slow_k", self.stoch_slow_k, 1),
            ("stoch_slow_d", self.stoch_slow_d, 1),
        ];
        for (name, value, min) in periods {
            if !(min..=MAX_PERIOD).contains(&value) {
                return Err(format!(
                    "{name} = {value} is out of range: use {min}..={MAX_PERIOD}"
                ));
            }
        }
        if self.macd_fast >= self.macd_slow {
            return Err(format!(
                "macd_fast ({}) must be shorter than macd_slow ({})",
                self.macd_fast, self.macd_slow
            ));
        }
        for (name, value) in [
            ("bb_dev_up", self.bb_dev_up),
            ("bb_dev_down", self.bb_dev_down),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{name} = {value} must be a finite number >= 0"));
            }
        }
        if let Some(ms) = self.vwap_session_ms
            && ms <= 0
        {
            return Err(format!("vwap_session_ms = {ms} must be positive"));
        }
        Ok(())
    }
}

/// Every indicator for one candle; `None` while its lookback is not filled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IndicatorValues {
    pub open_time: TimestampMs,
    pub close: f64,
    pub sma: Option<f64>,
    pub ema: Option<f64>,
    pub wma: Option<f64>,
    pub rsi: Option<f64>,
    pub macd: Option<MacdValue>,
    pub bollinger: Option<BandsValue>,
    pub atr: Option<f64>,
    pub adx: Option<f64>,
    pub plus_di: Option<f64>,
    pub minus_di: Option<f64>,
    pub stochastic: Option<StochValue>,
    pub obv: Option<f64>,
    pub vwap: Option<f64>,
    pub signal: Signal,
}

/// The full set, streaming: one candle in, every indicator out, in O(1).
#[derive(Debug, Clone)]
pub struct IndicatorSet {
    pub sma: Sma,
    pub ema: Ema,
    pub wma: Wma,
    pub rsi: Rsi,
    pub macd: Macd,
    pub bollinger: Bollinger,
    pub atr: Atr,
    pub adx: Adx,
    pub stochastic: Stochastic,
    pub obv: Obv,
    pub vwap: Vwap,
}

impl IndicatorSet {
    pub fn new(params: &IndicatorParams) -> IndicatorSet {
        IndicatorSet {
            sma: Sma::new(params.sma_period),
            ema: Ema::new(params.ema_period),
            wma: Wma::new(params.wma_period),
            rsi: Rsi::new(params.rsi_period),
            macd: Macd::new(params.macd_fast, params.macd_slow, params.macd_signal),
            bollinger: Bollinger::new(params.bb_period, params.bb_dev_up, params.bb_dev_down),
            atr: Atr::new(params.atr_period),
            adx: Adx::new(params.adx_period),
            stochastic: Stochastic::new(
                params.stoch_fast_k,
                params.stoch_slow_k,
                params.stoch_slow_d,
            ),
            obv: Obv::new(),
            vwap: match params.vwap_session_ms {
                Some(ms) => Vwap::with_session(ms),
                None => Vwap::new(),
            },
        }
    }

    #[inline]
    pub fn update(&mut self, bar: &Ohlcv) -> IndicatorValues {
        let close = bar.close;
        let rsi = self.rsi.update(close);
        let macd = self.macd.update(close);
        let adx = self.adx.update(bar);
        IndicatorValues {
            open_time: bar.open_time,
            close,
            sma: self.sma.update(close),
            ema: self.ema.update(close),
            wma: self.wma.update(close),
            rsi,
            macd,
            bollinger: self.bollinger.update(close),
            atr: self.atr.update(bar),
            adx,
            plus_di: self.adx.plus_di(),
            minus_di: self.adx.minus_di(),
            stochastic: self.stochastic.update(bar),
            obv: self.obv.update(close, bar.volume),
            vwap: self.vwap.update(bar),
            signal: simple_signal(
                rsi.unwrap_or(f64::NAN),
                macd.map_or(f64::NAN, |m| m.histogram),
            ),
        }
    }

    /// Candles after which every indicator is past its warm-up (and its seeding step), so each
    /// update takes its steady-state branch.
    fn warmup(&self) -> usize {
        [
            self.sma.lookback(),
            self.ema.lookback(),
            self.wma.lookback(),
            self.rsi.lookback(),
            self.macd.lookback(),
            self.bollinger.lookback(),
            self.atr.lookback(),
            self.adx.lookback(),
            self.stochastic.lookback(),
            self.obv.lookback(),
            self.vwap.lookback(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            + 1
    }

    pub fn reset(&mut self) {
        self.sma.reset();
        self.ema.reset();
        self.wma.reset();
        self.rsi.reset();
        self.macd.reset();
        self.bollinger.reset();
        self.atr.reset();
        self.adx.reset();
        self.stochastic.reset();
        self.obv.reset();
        self.vwap.reset();
    }
}

/// The full set as columns, one row per candle; NaN where an indicator has no value yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Indicators {
    pub open_time: Vec<TimestampMs>,
    pub close: Vec<f64>,
    pub sma: Vec<f64>,
    pub ema: Vec<f64>,
    pub wma: Vec<f64>,
    pub rsi: Vec<f64>,
    pub macd: Vec<f64>,
    pub macd_signal: Vec<f64>,
    pub macd_histogram: Vec<f64>,
    pub bb_upper: Vec<f64>,
    pub bb_middle: Vec<f64>,
    pub bb_lower: Vec<f64>,
    pub atr: Vec<f64>,
    pub adx: Vec<f64>,
    pub plus_di: Vec<f64>,
    pub minus_di: Vec<f64>,
    pub stoch_k: Vec<f64>,
    pub stoch_d: Vec<f64>,
    pub obv: Vec<f64>,
    pub vwap: Vec<f64>,
    pub signal: Vec<Signal>,
}

fn opt(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

impl Indicators {
    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    /// Row `i` as a streaming-style snapshot, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<IndicatorValues> {
        if i >= self.len() {
            return None;
        }
        let macd = opt(self.macd[i]).map(|macd| MacdValue {
            macd,
            signal: self.macd_signal[i],
            histogram: self.macd_histogram[i],
        });
        let bollinger = opt(self.bb_middle[i]).map(|middle| BandsValue {
            upper: self.bb_upper[i],
            middle,
            lower: self.bb_lower[i],
        });
        let stochastic = opt(self.stoch_k[i]).map(|k| StochValue {
            k,
            d: self.stoch_d[i],
        });
        Some(IndicatorValues {
            open_time: self.open_time[i],
            close: self.close[i],
            sma: opt(self.sma[i]),
            ema: opt(self.ema[i]),
            wma: opt(self.wma[i]),
            rsi: opt(self.rsi[i]),
            macd,
            bollinger,
            atr: opt(self.atr[i]),
            adx: opt(self.adx[i]),
            plus_di: opt(self.plus_di[i]),
            minus_di: opt(self.minus_di[i]),
            stochastic,
            obv: opt(self.obv[i]),
            vwap: opt(self.vwap[i]),
            signal: self.signal[i],
        })
    }

    /// The last row, if any.
    pub fn last(&self) -> Option<IndicatorValues> {
        self.len().checked_sub(1).and_then(|i| self.row(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The sliding SMA (reading the leaving value back from the series) is the streaming one,
        /// bit for bit.
        #[test]
        fn sliding_sma_is_bit_identical_to_streaming(
            values in proptest::collection::vec(-1e6f64..1e6, 0..200),
            period in 1usize..40,
        ) {
            let mut ring = Sma::new(period);
            let mut sliding = SlidingSma::new(period);
            for i in 0..values.len() {
                let a = ring.update(values[i]).map(f64::to_bits);
                let b = sliding.update(&values[..=i]).map(f64::to_bits);
                prop_assert_eq!(a, b, "index {}", i);
            }
        }

        /// The batch SMA is the streaming one, bit for bit, warm-up NaNs included.
        #[test]
        fn batch_sma_is_bit_identical_to_streaming(
            values in proptest::collection::vec(-1e6f64..1e6, 0..200),
            period in 1usize..40,
        ) {
            let batch = sma(&values, period);
            let mut s = Sma::new(period);
            prop_assert_eq!(batch.len(), values.len());
            for (i, &x) in values.iter().enumerate() {
                let streamed = s.update(x).unwrap_or(f64::NAN);
                prop_assert_eq!(batch[i].to_bits(), streamed.to_bits(), "index {}", i);
            }
        }
    }

    fn close(v: f64) -> Ohlcv {
        Ohlcv {
            open: v,
            high: v,
            low: v,
            close: v,
            volume: 1.0,
            ..Ohlcv::default()
        }
    }

    fn bar(high: f64, low: f64, close: f64, volume: f64) -> Ohlcv {
        Ohlcv {
            open_time: 0,
            open: close,
            high,
            low,
            close,
            volume,
        }
    }

    #[test]
    fn sma_waits_for_its_window_then_averages_it() {
        assert!(
            sma(&[1.0, 2.0, 3.0, 4.0, 5.0], 3)[..2]
                .iter()
                .all(|v| v.is_nan())
        );
        assert_eq!(sma(&[1.0, 2.0, 3.0, 4.0, 5.0], 3)[2..], [2.0, 3.0, 4.0]);
    }

    #[test]
    fn ema_is_seeded_with_the_sma_then_smooths_with_two_over_n_plus_one() {
        // period 3: seed (1+2+3)/3 = 2, k = 0.5: (5-2)*0.5+2 = 3.5, (3.5-3.5)... on 3.5 -> 3.5
        let out = ema(&[1.0, 2.0, 3.0, 5.0, 3.5], 3);
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(out[2..], [2.0, 3.5, 3.5]);
    }

    #[test]
    fn wma_weights_the_newest_value_most() {
        // (1*1 + 2*2 + 3*6)/6 = 23/6; then (1*2 + 2*6 + 3*0)/6 = 14/6
        let out = wma(&[1.0, 2.0, 6.0, 0.0], 3);
        assert!(out[1].is_nan());
        assert!((out[2] - 23.0 / 6.0).abs() < 1e-12);
        assert!((out[3] - 14.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn rsi_uses_wilder_smoothing_after_a_plain_average_seed() {
        // changes +1, -1 (period 2): gain 0.5, loss 0.5 -> 50; next +2: gain (0.5+2)/2 = 1.25,
        // loss 0.25 -> 100*1.25/1.5
        let out = rsi(&[1.0, 2.0, 1.0, 3.0], 2);
        assert!(out[1].is_nan());
        assert_eq!(out[2], 50.0);
        assert!((out[3] - 100.0 * 1.25 / 1.5).abs() < 1e-12);
        assert_eq!(
            rsi(&[5.0, 5.0, 5.0], 2)[2],
            0.0,
            "a flat series has RSI 0 in TA-Lib"
        );
    }

    #[test]
    fn macd_seeds_the_fast_ema_on_the_bar_where_the_slow_one_completes() {
        // fast 2, slow 3, signal 1 on 1,2,3,4: at bar 2 slow = 2, fast = (2+3)/2 = 2.5 -> 0.5;
        // bar 3: slow = (4-2)*0.5+2 = 3, fast = (4-2.5)*(2/3)+2.5 = 3.5 -> 0.5
        let [line, signal, hist] = macd(&[1.0, 2.0, 3.0, 4.0], 2, 3, 1);
        assert!(line[1].is_nan());
        assert_eq!(line[2], 0.5);
        assert!((line[3] - 0.5).abs() < 1e-12);
        assert_eq!(signal[2], 0.5);
        assert_eq!(hist[2], 0.0);
    }

    #[test]
    fn bollinger_uses_the_population_deviation() {
        // 2, 4, 6: mean 4, population variance 8/3
        let [up, mid, low] = bollinger(&[2.0, 4.0, 6.0], 3, 2.0, 2.0);
        assert_eq!(mid[2], 4.0);
        let sd = (8.0f64 / 3.0).sqrt();
        assert!((up[2] - (4.0 + 2.0 * sd)).abs() < 1e-12);
        assert!((low[2] - (4.0 - 2.0 * sd)).abs() < 1e-12);
        assert!(up[1].is_nan());
    }

    #[test]
    fn atr_seeds_with_the_mean_true_range_from_the_second_candle() {
        let mut atr = Atr::new(2);
        assert_eq!(atr.update(&bar(10.0, 8.0, 9.0, 1.0)), None);
        // TR = max(11-10, |11-9|, |10-9|) = 2
        assert_eq!(atr.update(&bar(11.0, 10.0, 10.5, 1.0)), None);
        // TR = max(1, |9.5-10.5|... ) high 10, low 9: max(1, 0.5, 1.5) = 1.5; seed (2+1.5)/2
        assert_eq!(atr.update(&bar(10.0, 9.0, 9.5, 1.0)), Some(1.75));
        // TR 1.0 -> (1.75*1 + 1)/2
        assert_eq!(atr.update(&bar(10.0, 9.0, 9.5, 1.0)), Some(1.375));
        assert_eq!(atr.lookback(), 2);
    }

    #[test]
    fn stochastic_reads_close_within_the_high_low_range() {
        let mut s = Stochastic::new(2, 1, 1);
        assert_eq!(s.update(&bar(10.0, 0.0, 5.0, 1.0)), None);
        // window high 10, low 0, close 7.5 -> 75
        let v = s.update(&bar(8.0, 2.0, 7.5, 1.0)).unwrap();
        assert_eq!(v.k, 75.0);
        assert_eq!(v.d, 75.0);
        // window [8,2],[4,3]: high 8, low 2, close 2 -> 0
        assert_eq!(s.update(&bar(4.0, 3.0, 2.0, 1.0)).unwrap().k, 0.0);
    }

    #[test]
    fn obv_starts_at_the_first_volume_and_follows_the_close() {
        let mut o = Obv::new();
        assert_eq!(o.update(10.0, 5.0), Some(5.0));
        assert_eq!(o.update(11.0, 2.0), Some(7.0));
        assert_eq!(o.update(11.0, 9.0), Some(7.0));
        assert_eq!(o.update(10.0, 3.0), Some(4.0));
    }

    #[test]
    fn vwap_weights_typical_price_by_volume_and_restarts_each_session() {
        let mut v = Vwap::with_session(1000);
        let mut b = bar(12.0, 6.0, 9.0, 1.0); // typical 9
        assert_eq!(v.update(&b), Some(9.0));
        b = Ohlcv {
            open_time: 500,
            ..bar(3.0, 3.0, 3.0, 2.0)
        };
        assert_eq!(v.update(&b), Some((9.0 + 6.0) / 3.0));
        b = Ohlcv {
            open_time: 1000,
            ..bar(4.0, 4.0, 4.0, 0.0)
        };
        assert_eq!(v.update(&b), None, "new session with no volume yet");
    }

    #[test]
    fn simple_signal_needs_both_conditions() {
        assert_eq!(simple_signal(25.0, 0.1), Signal::Buy);
        assert_eq!(simple_signal(25.0, -0.1), Signal::Hold);
        assert_eq!(simple_signal(75.0, -0.1), Signal::Sell);
        assert_eq!(simple_signal(75.0, 0.1), Signal::Hold);
        assert_eq!(simple_signal(f64::NAN, 1.0), Signal::Hold);
    }

    #[test]
    fn reset_forgets_everything() {
        let params = IndicatorParams::default();
        let mut set = IndicatorSet::new(&params);
        let bars: Vec<Ohlcv> = (0..60).map(|i| close(100.0 + (i % 7) as f64)).collect();
        let first: Vec<_> = bars.iter().map(|b| set.update(b)).collect();
        set.reset();
        let second: Vec<_> = bars.iter().map(|b| set.update(b)).collect();
        assert_eq!(format!("{first:?}"), format!("{second:?}"));
    }

    #[test]
    fn default_params_are_valid_and_bad_ones_are_named() {
        IndicatorParams::default().validate().unwrap();
        let bad = IndicatorParams {
            macd_fast: 30,
            ..IndicatorParams::default()
        };
        assert!(bad.validate().unwrap_err().contains("macd_fast"));
        let bad = IndicatorParams {
            rsi_period: 0,
            ..IndicatorParams::default()
        };
        assert!(bad.validate().unwrap_err().contains("rsi_period"));
    }

    #[test]
    fn calculate_indicators_into_reused_buffers_match_a_fresh_call() {
        let series = |n: usize, seed: f64| {
            let mut cols = CandleColumns::default();
            for i in 0..n {
                let c = 100.0 + seed + (i as f64 * 0.7).sin() * 5.0;
                cols.open_time.push(i as i64 * 60_000);
                cols.open.push(c - 0.3);
                cols.high.push(c + 1.0);
                cols.low.push(c - 1.0);
                cols.close.push(c);
                cols.volume.push(1.0 + (i % 7) as f64);
            }
            cols
        };
        let params = IndicatorParams::default();
        let (long, short) = (series(300, 0.0), series(120, 3.0));
        let mut reused = calculate_indicators(&long, &params);
        calculate_indicators_into(&short, &params, &mut reused);
        // Debug prints every f64 exactly (and NaN as NaN), so equal text is equal bits.
        let fresh = calculate_indicators(&short, &params);
        assert_eq!(format!("{reused:?}"), format!("{fresh:?}"));
        calculate_indicators_into(&long, &params, &mut reused);
        let fresh = calculate_indicators(&long, &params);
        assert_eq!(format!("{reused:?}"), format!("{fresh:?}"));
    }
}
