//! One batch kernel per indicator (`sma`, `ema`, ..., `vwap`): a slice in, columns out, each
//! allocated once, NaN during the lookback as in TA-Lib.
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
    Adx, Atr, Bollinger, CandleColumns, Ema, Macd, Obv, Ohlcv, Rsi, Sma, Stochastic, Vwap, Wma,
    is_zero, true_range,
};

const NAN: f64 = f64::NAN;

/// A column of `n` rows for a kernel to overwrite. Zeroed memory comes from the allocator as
/// untouched pages, so writing each row once is the only pass over it.
pub(super) fn column(n: usize) -> Vec<f64> {
    let column = vec![0.0; n];
    advise_huge_pages(&column);
    column
}

/// Ask Linux to back a large column with 2 MiB pages (transparent huge pages, where enabled),
/// as numpy does for its arrays of 4 MiB and more. The first write to a fresh page is a page
/// fault, and faults, not arithmetic, were most of a multi-column kernel's time: 1.5 µs each on
/// the project's 2-core machines, 2048 for each 8 MB column (3 ms, more than MACD's loop). With
/// huge pages most of a column takes one fault per 2 MiB. Whether the allocator hands out fresh
/// pages or recycled ones depends on what the process freed before, which is why the fused
/// batch's speed swung with the binary that called it. Only a hint: the contents, the mapping
/// and the results are the same with or without it.
fn advise_huge_pages(column: &[f64]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = column.as_ptr() as usize;
        let end = start + std::mem::size_of_val(column);
        let (first, last) = (start.next_multiple_of(HUGE), end & !(HUGE - 1));
        if last > first {
            // SAFETY: `[first, last)` lies inside the allocation `column` owns, page-aligned;
            // MADV_HUGEPAGE changes how its pages are backed, never their contents, permissions
            // or address, so no reference into it is affected. A failure is harmless (no THP).
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = column;
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
    let mut out = column(values.len());
    let warm = (s.lookback() + 1).min(values.len());
    for (o, &x) in out[..warm].iter_mut().zip(&values[..warm]) {
        *o = s.update(x).unwrap_or(NAN);
    }
    // `Ema::step` on locals, so the value stays in a register between rows.
    let (k, mut value) = (s.k, s.value);
    for (o, &x) in out[warm..].iter_mut().zip(&values[warm..]) {
        value = (x - value) * k + value;
        *o = value;
    }
    out
}

/// WMA over a slice (NaN during warm-up).
#[inline(never)]
pub fn wma(values: &[f64], period: usize) -> Vec<f64> {
    let mut s = Wma::new(period);
    let n = values.len();
    let mut out = column(n);
    let warm = (s.lookback() + 1).min(n);
    for (o, &x) in out[..warm].iter_mut().zip(&values[..warm]) {
        *o = s.update(x).unwrap_or(NAN);
    }
    if warm < n {
        // The plain sum drops the value a full period back.
        let leaving = &values[..n - s.period];
        for ((o, &x), &gone) in out[warm..].iter_mut().zip(&values[warm..]).zip(leaving) {
            *o = s.slide(x, gone);
        }
    }
    out
}

/// RSI over a slice (NaN during warm-up).
#[inline(never)]
pub fn rsi(values: &[f64], period: usize) -> Vec<f64> {
    let mut s = Rsi::new(period);
    let n = values.len();
    let mut out = column(n);
    let warm = (s.lookback() + 1).min(n);
    for (o, &x) in out[..warm].iter_mut().zip(&values[..warm]) {
        *o = s.update(x).unwrap_or(NAN);
    }
    if warm < n {
        // `Rsi::smooth` on locals, so the sums stay in registers between rows.
        let (decay, inv_period) = (s.decay, s.inv_period);
        let (mut gain, mut loss) = (s.gain, s.loss);
        let prev = &values[warm - 1..n - 1];
        for ((o, &x), &p) in out[warm..].iter_mut().zip(&values[warm..]).zip(prev) {
            loss *= decay;
            gain *= decay;
            let change = x - p;
            let fell = change < 0.0;
            loss += if fell { -change } else { 0.0 };
            gain += if fell { 0.0 } else { change };
            loss *= inv_period;
            gain *= inv_period;
            let total = gain + loss;
            let rsi = 100.0 * (gain / total);
            *o = if is_zero(total) { 0.0 } else { rsi };
        }
    }
    out
}

/// MACD line, signal and histogram over a slice (NaN during warm-up).
#[inline(never)]
pub fn macd(values: &[f64], fast: usize, slow: usize, signal: usize) -> [Vec<f64>; 3] {
    let mut s = Macd::new(fast, slow, signal);
    let n = values.len();
    let [mut line, mut sig, mut hist] = [column(n), column(n), column(n)];
    let warm = (s.lookback() + 1).min(n);
    for (i, &x) in values[..warm].iter().enumerate() {
        let v = s.update(x);
        line[i] = v.map_or(NAN, |v| v.macd);
        sig[i] = v.map_or(NAN, |v| v.signal);
        hist[i] = v.map_or(NAN, |v| v.histogram);
    }
    let rows = line[warm..]
        .iter_mut()
        .zip(&mut sig[warm..])
        .zip(&mut hist[warm..])
        .zip(&values[warm..]);
    // `Macd::update_seeded` on locals, so the three averages stay in registers between rows.
    let (k_fast, k_slow, k_signal) = (s.k_fast, s.k_slow, s.signal.k);
    let (mut fast, mut slow, mut signal) = (s.fast_ema, s.slow_ema, s.signal.value);
    for (((l, g), h), &x) in rows {
        slow = (x - slow) * k_slow + slow;
        fast = (x - fast) * k_fast + fast;
        let line = fast - slow;
        signal = (line - signal) * k_signal + signal;
        *l = line;
        *g = signal;
        *h = line - signal;
    }
    [line, sig, hist]
}

/// Bollinger upper, middle and lower bands over a slice (NaN during warm-up).
#[inline(never)]
pub fn bollinger(values: &[f64], period: usize, dev_up: f64, dev_down: f64) -> [Vec<f64>; 3] {
    let mut s = Bollinger::new(period, dev_up, dev_down);
    let n = values.len();
    let [mut upper, mut middle, mut lower] = [column(n), column(n), column(n)];
    let warm = (s.lookback() + 1).min(n);
    for (i, &x) in values[..warm].iter().enumerate() {
        let v = s.update(x);
        upper[i] = v.map_or(NAN, |v| v.upper);
        middle[i] = v.map_or(NAN, |v| v.middle);
        lower[i] = v.map_or(NAN, |v| v.lower);
    }
    if warm < n {
        // The oldest value still in the window leaves it after the output.
        let leaving = &values[warm + 1 - s.period..n + 1 - s.period];
        let rows = upper[warm..]
            .iter_mut()
            .zip(&mut middle[warm..])
            .zip(&mut lower[warm..])
            .zip(&values[warm..])
            .zip(leaving);
        for ((((u, m), l), &x), &gone) in rows {
            let v = s.slide(x, gone);
            *u = v.upper;
            *m = v.middle;
            *l = v.lower;
        }
    }
    [upper, middle, lower]
}

/// ATR over candles (NaN during warm-up).
#[inline(never)]
pub fn atr(candles: &CandleColumns, period: usize) -> Vec<f64> {
    let mut s = Atr::new(period);
    let n = candles.len();
    let mut out = column(n);
    let warm = (s.lookback() + 1).min(n);
    for (i, o) in out[..warm].iter_mut().enumerate() {
        *o = s.update(&Ohlcv::from_columns(candles, i)).unwrap_or(NAN);
    }
    if warm < n {
        let rows = out[warm..]
            .iter_mut()
            .zip(&candles.high[warm..n])
            .zip(&candles.low[warm..n])
            .zip(&candles.close[warm - 1..n - 1]);
        // `Atr::smooth` on locals, so the average stays in a register between rows.
        let (decay, inv_period, mut value) = (s.decay, s.inv_period, s.value);
        for (((o, &high), &low), &prev_close) in rows {
            value *= decay;
            value += true_range(high, low, prev_close);
            value *= inv_period;
            *o = value;
        }
    }
    out
}

/// ADX, +DI and −DI over candles (NaN during warm-up).
#[inline(never)]
pub fn adx(candles: &CandleColumns, period: usize) -> [Vec<f64>; 3] {
    let mut s = Adx::new(period);
    let n = candles.len();
    let [mut adx, mut plus_di, mut minus_di] = [column(n), column(n), column(n)];
    let warm = (s.lookback() + 1).min(n);
    for i in 0..warm {
        adx[i] = s.update(&Ohlcv::from_columns(candles, i)).unwrap_or(NAN);
        plus_di[i] = s.plus_di().unwrap_or(NAN);
        minus_di[i] = s.minus_di().unwrap_or(NAN);
    }
    if warm < n {
        let (high, low, close) = (&candles.high[..n], &candles.low[..n], &candles.close[..n]);
        let rows = adx[warm..]
            .iter_mut()
            .zip(&mut plus_di[warm..])
            .zip(&mut minus_di[warm..])
            .zip(high[warm..].iter().zip(&high[warm - 1..n - 1]))
            .zip(low[warm..].iter().zip(&low[warm - 1..n - 1]))
            .zip(&close[warm - 1..n - 1]);
        for (((((a, p), m), (&h, &prev_h)), (&l, &prev_l)), &prev_c) in rows {
            let d = s.smooth(h - prev_h, prev_l - l, true_range(h, l, prev_c));
            *p = d.plus_di;
            *m = d.minus_di;
            *a = s.smooth_adx(&d);
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
    let [mut k, mut d] = [column(n), column(n)];
    let warm = (s.lookback() + 1).min(n);
    for i in 0..warm {
        let v = s.update(&Ohlcv::from_columns(candles, i));
        k[i] = v.map_or(NAN, |v| v.k);
        d[i] = v.map_or(NAN, |v| v.d);
    }
    // The window extremes a chunk at a time (kept in L1), then the smoothing over the chunk.
    let mut extremes = Extremes::new(s.fast_k);
    let (high, low, close) = (&candles.high[..n], &candles.low[..n], &candles.close[..n]);
    let mut start = warm;
    while start < n {
        let end = (start + super::batch::CHUNK).min(n);
        let (highest, lowest) = extremes.compute(&mut s, high, low, start, end);
        let rows = k[start..end]
            .iter_mut()
            .zip(&mut d[start..end])
            .zip(&close[start..end])
            .zip(highest.iter().zip(lowest));
        for (((k, d), &x), (&hh, &ll)) in rows {
            let v = s.update_full(x, hh, ll);
            *k = v.k;
            *d = v.d;
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
    let mut out = column(n);
    if n == 0 {
        return out;
    }
    let (close, volume) = (&candles.close[..n], &candles.volume[..n]);
    out[0] = s.update(close[0], volume[0]).unwrap_or(NAN);
    let rows = out[1..]
        .iter_mut()
        .zip(&close[1..])
        .zip(&close[..n - 1])
        .zip(&volume[1..]);
    for (((o, &x), &prev), &v) in rows {
        *o = s.step(x, prev, v);
    }
    out
}

/// Cumulative VWAP over candles (NaN until some volume has traded).
#[inline(never)]
pub fn vwap(candles: &CandleColumns) -> Vec<f64> {
    let mut s = Vwap::new();
    let n = candles.len();
    let mut out = column(n);
    let rows = out
        .iter_mut()
        .zip(&candles.open_time[..n])
        .zip(&candles.high[..n])
        .zip(&candles.low[..n])
        .zip(&candles.close[..n])
        .zip(&candles.volume[..n]);
    for (((((o, &t), &h), &l), &c), &v) in rows {
        *o = s.step(t, h, l, c, v);
    }
    out
}

#[cfg(test)]
mod tests;
