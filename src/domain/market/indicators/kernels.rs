//! One batch kernel per indicator (`sma`, `ema`, ..., `vwap`): a slice in, columns out, each
//! allocated once and each row written once (no zero or NaN fill first: a fill is one more pass
//! over memory, and `calloc` has to clear memory it recycles), NaN during the lookback as in
//! TA-Lib.
//!
//! Each kernel runs its warm-up rows (at most the lookback plus one) through the streaming state
//! machine's own `update`, so the seeding follows TA-Lib's rules in one place, and then runs
//! a steady-state loop that calls the same step function (`step`, `slide`, `smooth`) that
//! `update` calls once warm: the two faces compute the same operations in the same order and
//! agree bit for bit (the tests below and `tests/it/indicators_parity.rs` check it; where a
//! latency-bound loop copies a step's few lines onto local variables, so that its state stays
//! in registers, the tests are what keeps the copy exact). The steady
//! loop has no `Option`, no warm-up branch and no bounds checks (equal-length zipped slices); the
//! value leaving a window is read back from the input instead of from a ring, and the state is a
//! local the compiler keeps in registers.
//!
//! Each kernel is `#[inline(never)]`: its body is optimised once, in this crate, whatever binary
//! links it, so its speed does not depend on the inlining choices of the caller's crate.

use super::batch::Extremes;
use super::{
    Adx, Atr, CandleColumns, Ema, Macd, Obv, Ohlcv, Rsi, Sma, Stochastic, Vwap, Wma, decay,
    prefetch, rsi_value, split_change, true_range,
};

const NAN: f64 = f64::NAN;

/// Append each row of `rows` to the `N` columns, one value to each, written straight into their
/// spare capacity. `Vec::push` on each column kept a capacity check and a length update per
/// value in the loop, which cost MACD more than its arithmetic.
#[inline(always)]
fn extend_columns<const N: usize>(
    columns: &mut [Vec<f64>; N],
    rows: impl ExactSizeIterator<Item = [f64; N]>,
) {
    let len = rows.len();
    let mut spare = columns.each_mut().map(|c| {
        c.reserve(len);
        &mut c.spare_capacity_mut()[..len]
    });
    let mut written = 0;
    for row in rows.take(len) {
        for (column, value) in spare.iter_mut().zip(row) {
            column[written].write(value);
        }
        written += 1;
    }
    for column in columns.iter_mut() {
        // SAFETY: each pass of the loop above wrote row `written` of every column's spare
        // capacity before counting it, so the first `written` spare rows of each are
        // initialised, and `written <= len <= spare capacity`.
        unsafe { column.set_len(column.len() + written) };
    }
}

/// SMA over a slice (NaN during warm-up).
#[inline(never)]
pub fn sma(values: &[f64], period: usize) -> Vec<f64> {
    // The streaming `Sma`'s arithmetic (`Sma::slide`) without its ring: the value leaving the
    // window is read from the input, `period - 1` places back.
    let period = period.max(1);
    let n = values.len();
    if n < period {
        return vec![NAN; n];
    }
    let mut s = Sma::new(period);
    let mut out = Vec::with_capacity(n);
    out.resize(period - 1, NAN);
    for &x in &values[..period - 1] {
        s.sum += x;
    }
    out.extend(
        values[period - 1..]
            .iter()
            .zip(&values[..n + 1 - period])
            .map(|(&x, &leaving)| s.slide(x, leaving)),
    );
    out
}

/// EMA over a slice (NaN during warm-up).
#[inline(never)]
pub fn ema(values: &[f64], period: usize) -> Vec<f64> {
    let mut s = Ema::new(period);
    let n = values.len();
    let mut out = Vec::with_capacity(n);
    let warm = (s.lookback() + 1).min(n);
    out.extend(values[..warm].iter().map(|&x| s.update(x).unwrap_or(NAN)));
    // `Ema::step` on locals, so the value stays in a register between rows.
    let (k, keep, mut value) = (s.k, s.keep, s.value);
    out.extend(values[warm..].iter().map(move |&x| {
        value = decay(value, keep, x * k);
        value
    }));
    out
}

/// WMA over a slice (NaN during warm-up).
#[inline(never)]
pub fn wma(values: &[f64], period: usize) -> Vec<f64> {
    let mut s = Wma::new(period);
    let n = values.len();
    let mut out = Vec::with_capacity(n);
    let warm = (s.lookback() + 1).min(n);
    out.extend(values[..warm].iter().map(|&x| s.update(x).unwrap_or(NAN)));
    if warm < n {
        // The plain sum drops the value a full period back.
        let leaving = &values[..n - s.period];
        out.extend(
            values[warm..]
                .iter()
                .zip(leaving)
                .map(move |(&x, &gone)| s.slide(x, gone)),
        );
    }
    out
}

/// RSI over a slice (NaN during warm-up).
#[inline(never)]
pub fn rsi(values: &[f64], period: usize) -> Vec<f64> {
    let mut s = Rsi::new(period);
    let n = values.len();
    let mut out = Vec::with_capacity(n);
    let warm = (s.lookback() + 1).min(n);
    out.extend(values[..warm].iter().map(|&x| s.update(x).unwrap_or(NAN)));
    if warm < n {
        // `Rsi::smooth` on locals, so the sums stay in registers between rows.
        let inv_period = s.inv_period;
        let (mut gain, mut loss) = (s.gain_avg, s.loss_avg);
        let prev = &values[warm - 1..n - 1];
        out.extend(values[warm..].iter().zip(prev).map(move |(&x, &p)| {
            let (up, down) = split_change(x - p);
            let down = loss.step(down * inv_period);
            let up = gain.step(up * inv_period);
            rsi_value(up, down)
        }));
    }
    out
}

/// MACD line, signal and histogram over a slice (NaN during warm-up).
#[inline(never)]
pub fn macd(values: &[f64], fast: usize, slow: usize, signal: usize) -> [Vec<f64>; 3] {
    let mut s = Macd::new(fast, slow, signal);
    let n = values.len();
    let [mut line, mut sig, mut hist] = std::array::from_fn(|_| Vec::with_capacity(n));
    let warm = (s.lookback() + 1).min(n);
    for &x in &values[..warm] {
        let v = s.update(x);
        line.push(v.map_or(NAN, |v| v.macd));
        sig.push(v.map_or(NAN, |v| v.signal));
        hist.push(v.map_or(NAN, |v| v.histogram));
    }
    // `Macd::update_seeded` on locals the closure owns, so the three averages stay in
    // registers between rows.
    let (k_fast, k_slow, k_signal) = (s.k_fast, s.k_slow, s.signal.k);
    let (keep_fast, keep_slow, keep_signal) = (s.keep_fast, s.keep_slow, s.signal.keep);
    let (mut fast, mut slow, mut signal) = (s.fast_ema, s.slow_ema, s.signal.value);
    let mut columns = [line, sig, hist];
    extend_columns(
        &mut columns,
        values[warm..].iter().map(move |&x| {
            slow = decay(slow, keep_slow, x * k_slow);
            fast = decay(fast, keep_fast, x * k_fast);
            let macd = fast - slow;
            signal = decay(signal, keep_signal, macd * k_signal);
            [macd, signal, macd - signal]
        }),
    );
    columns
}

/// ATR over candles (NaN during warm-up).
///
/// Wilder's smoothing four rows per link of its chain ([`Quad`](super::Quad)): each group's
/// true ranges, its own average and its four outputs are computed beside the chain (the
/// group's lines of `Quad::step` on locals; the tests keep the copy exact), written straight
/// into the column's spare capacity, with the input and output lines asked for ahead.
#[inline(never)]
pub fn atr(candles: &CandleColumns, period: usize) -> Vec<f64> {
    /// Rows ahead of the group being computed whose input and output lines are asked for.
    const PREFETCH_ROWS: usize = 64;
    let mut s = Atr::new(period);
    let n = candles.len();
    let mut out = Vec::with_capacity(n);
    let warm = (s.lookback() + 1).min(n);
    out.extend((0..warm).map(|i| s.update(&Ohlcv::from_columns(candles, i)).unwrap_or(NAN)));
    if warm == n {
        return out;
    }
    // Whole groups from the seed (`Quad::seed` leaves no group open), then the rest row by row.
    let groups = (n - warm) / 4 * 4;
    let (high, low) = (
        &candles.high[warm..warm + groups],
        &candles.low[warm..warm + groups],
    );
    let prev_close = &candles.close[warm - 1..warm - 1 + groups];
    let (inv_period, q) = (s.inv_period, s.smoothed);
    let (keep, [k1, k2, k3, k4]) = (q.keep, q.powers);
    let mut anchor = q.anchor;
    let rows = high
        .chunks_exact(4)
        .zip(low.chunks_exact(4))
        .zip(prev_close.chunks_exact(4));
    for (o, ((h, l), c)) in out.spare_capacity_mut()[..groups]
        .chunks_exact_mut(4)
        .zip(rows)
    {
        for column in [h, l, c] {
            prefetch::<false>(column.as_ptr().wrapping_add(PREFETCH_ROWS));
        }
        prefetch::<true>(o.as_ptr().wrapping_add(PREFETCH_ROWS).cast());
        let fresh = |j: usize| true_range(h[j], l[j], c[j]) * inv_period;
        let p1 = fresh(0);
        let p2 = decay(p1, keep, fresh(1));
        let p3 = decay(p2, keep, fresh(2));
        let p4 = decay(p3, keep, fresh(3));
        o[0].write(decay(anchor, k1, p1));
        o[1].write(decay(anchor, k2, p2));
        o[2].write(decay(anchor, k3, p3));
        anchor = decay(anchor, k4, p4);
        o[3].write(anchor);
    }
    // SAFETY: the loop wrote every one of the first `groups` spare rows (`groups / 4` chunks
    // of four, one per group of inputs, which are exactly `groups` rows long), and `groups <=
    // n - warm`, within the spare capacity.
    unsafe { out.set_len(warm + groups) };
    s.smoothed.seed(anchor);
    let (high, low, close) = (&candles.high[..n], &candles.low[..n], &candles.close[..n]);
    for i in warm + groups..n {
        out.push(s.smooth(true_range(high[i], low[i], close[i - 1])));
    }
    out
}

/// ADX, +DI and −DI over candles (NaN during warm-up).
#[inline(never)]
pub fn adx(candles: &CandleColumns, period: usize) -> [Vec<f64>; 3] {
    let mut s = Adx::new(period);
    let n = candles.len();
    let [mut adx, mut plus_di, mut minus_di] = std::array::from_fn(|_| Vec::with_capacity(n));
    let warm = (s.lookback() + 1).min(n);
    for i in 0..warm {
        adx.push(s.update(&Ohlcv::from_columns(candles, i)).unwrap_or(NAN));
        plus_di.push(s.plus_di().unwrap_or(NAN));
        minus_di.push(s.minus_di().unwrap_or(NAN));
    }
    if warm < n {
        let (high, low, close) = (&candles.high[..n], &candles.low[..n], &candles.close[..n]);
        let rows = high[warm..]
            .iter()
            .zip(&high[warm - 1..n - 1])
            .zip(low[warm..].iter().zip(&low[warm - 1..n - 1]))
            .zip(&close[warm - 1..n - 1]);
        for (((&h, &prev_h), (&l, &prev_l)), &prev_c) in rows {
            let d = s.smooth(h - prev_h, prev_l - l, true_range(h, l, prev_c));
            plus_di.push(d.plus_di);
            minus_di.push(d.minus_di);
            adx.push(s.smooth_adx(&d));
        }
    }
    [adx, plus_di, minus_di]
}

/// Slow stochastic %K and %D over candles (NaN during warm-up).
#[inline(never)]
pub fn stochastic(
    candles: &CandleColumns,
    fast_k: usize,
    slow_k: usize,
    slow_d: usize,
) -> [Vec<f64>; 2] {
    let mut s = Stochastic::new(fast_k, slow_k, slow_d);
    let n = candles.len();
    let [mut k, mut d] = std::array::from_fn(|_| Vec::with_capacity(n));
    let warm = (s.lookback() + 1).min(n);
    for i in 0..warm {
        let v = s.update(&Ohlcv::from_columns(candles, i));
        k.push(v.map_or(NAN, |v| v.k));
        d.push(v.map_or(NAN, |v| v.d));
    }
    // The window extremes a chunk at a time (kept in L1), then the smoothing over the chunk.
    let mut extremes = Extremes::new(s.fast_k);
    let (high, low, close) = (&candles.high[..n], &candles.low[..n], &candles.close[..n]);
    let mut start = warm;
    while start < n {
        let end = (start + super::batch::CHUNK).min(n);
        let (highest, lowest) = extremes.compute(&mut s, high, low, start, end);
        let rows = close[start..end].iter().zip(highest.iter().zip(lowest));
        for (&x, (&hh, &ll)) in rows {
            let v = s.update_full(x, hh, ll);
            k.push(v.k);
            d.push(v.d);
        }
        start = end;
    }
    [k, d]
}

/// OBV over candles.
#[inline(never)]
pub fn obv(candles: &CandleColumns) -> Vec<f64> {
    let mut s = Obv::new();
    let n = candles.len();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let (close, volume) = (&candles.close[..n], &candles.volume[..n]);
    out.push(s.update(close[0], volume[0]).unwrap_or(NAN));
    let rows = close[1..].iter().zip(&close[..n - 1]).zip(&volume[1..]);
    out.extend(rows.map(move |((&x, &prev), &v)| s.step(x, prev, v)));
    out
}

/// Cumulative VWAP over candles (NaN until some volume has traded).
#[inline(never)]
pub fn vwap(candles: &CandleColumns) -> Vec<f64> {
    let mut s = Vwap::new();
    let n = candles.len();
    let rows = candles.open_time[..n]
        .iter()
        .zip(&candles.high[..n])
        .zip(&candles.low[..n])
        .zip(&candles.close[..n])
        .zip(&candles.volume[..n]);
    rows.map(move |((((&t, &h), &l), &c), &v)| s.step(t, h, l, c, v))
        .collect()
}

#[cfg(test)]
mod tests;
