//! The batch face of the indicator set (`calculate_indicators`): the streaming [`IndicatorSet`]
//! runs the warm-up rows, where each indicator seeds itself by TA-Lib's rules, and hands its
//! state to one fused loop over column slices for the rest. That loop calls the very step
//! functions `update` calls in its steady state (`slide`, `step`, `smooth`, ...), so both faces
//! compute the same operations in the same order and agree bit for bit.
//!
//! Why it is fast: the loop runs in chunks of [`CHUNK`] rows over re-sliced columns of equal
//! length (no bounds checks, inputs hot in L1); it has no `Option` and no warm-up branch; the
//! coin-toss branches (rise or fall) are selects; the many short dependency chains (one per
//! running sum) overlap in one loop body instead of each waiting on its own latency; windows
//! read the value leaving them from the input column instead of a ring buffer; and the
//! stochastic's rolling highest/lowest is computed per chunk by doubling (vectorisable
//! `max`/`min`) instead of a branchy monotonic queue.

use super::{
    CandleColumns, IndicatorParams, IndicatorSet, IndicatorValues, Indicators, Ohlcv, Signal,
    Stochastic, simple_signal, true_range,
};

/// Rows per chunk of the fused loop: its inputs and the chunk's window extremes stay in L1.
pub(super) const CHUNK: usize = 1024;

/// Widest stochastic window whose extremes are computed by doubling (log2 passes over the
/// chunk plus the window); wider ones reuse the streaming monotonic queues.
const DOUBLING_MAX: usize = 64;

/// The full set over a candle series, in batch; the same numbers, bit for bit, as feeding the
/// candles one by one to [`IndicatorSet::update`], so a backtest sees exactly what live trading
/// sees. NaN where an indicator has no value yet.
pub fn calculate_indicators(candles: &CandleColumns, params: &IndicatorParams) -> Indicators {
    let n = candles.len();
    // Zeroed columns are lazily mapped pages when fresh: every row is written exactly once
    // below, so a NaN pre-fill would only write each page twice. (Huge pages and the reuse of
    // freed columns are the binary's allocator's business: `crate::memory`.)
    let column = || vec![0.0; n];
    let mut out = Indicators {
        open_time: Vec::with_capacity(n),
        close: Vec::with_capacity(n),
        sma: column(),
        ema: column(),
        wma: column(),
        rsi: column(),
        macd: column(),
        macd_signal: column(),
        macd_histogram: column(),
        bb_upper: column(),
        bb_middle: column(),
        bb_lower: column(),
        atr: column(),
        adx: column(),
        plus_di: column(),
        minus_di: column(),
        stoch_k: column(),
        stoch_d: column(),
        obv: column(),
        vwap: column(),
        signal: vec![Signal::Hold; n],
    };
    calculate_indicators_into(candles, params, &mut out);
    out
}

/// `buf` resized to exactly `n` rows, as a slice of length `n`. Rows already there are kept as
/// they are: the caller overwrites every one.
fn sized<T: Copy>(buf: &mut Vec<T>, n: usize, fill: T) -> &mut [T] {
    buf.truncate(n);
    buf.resize(n, fill);
    &mut buf[..n]
}

/// The output columns, each exactly one row per candle.
struct Columns<'a> {
    sma: &'a mut [f64],
    ema: &'a mut [f64],
    wma: &'a mut [f64],
    rsi: &'a mut [f64],
    macd: &'a mut [f64],
    macd_signal: &'a mut [f64],
    macd_histogram: &'a mut [f64],
    bb_upper: &'a mut [f64],
    bb_middle: &'a mut [f64],
    bb_lower: &'a mut [f64],
    atr: &'a mut [f64],
    adx: &'a mut [f64],
    plus_di: &'a mut [f64],
    minus_di: &'a mut [f64],
    stoch_k: &'a mut [f64],
    stoch_d: &'a mut [f64],
    obv: &'a mut [f64],
    vwap: &'a mut [f64],
    signal: &'a mut [Signal],
}

impl Columns<'_> {
    /// Row `i` from a streaming result (warm-up rows only: a few dozen per call).
    fn put(&mut self, i: usize, v: &IndicatorValues) {
        const NAN: f64 = f64::NAN;
        self.sma[i] = v.sma.unwrap_or(NAN);
        self.ema[i] = v.ema.unwrap_or(NAN);
        self.wma[i] = v.wma.unwrap_or(NAN);
        self.rsi[i] = v.rsi.unwrap_or(NAN);
        self.macd[i] = v.macd.map_or(NAN, |m| m.macd);
        self.macd_signal[i] = v.macd.map_or(NAN, |m| m.signal);
        self.macd_histogram[i] = v.macd.map_or(NAN, |m| m.histogram);
        self.bb_upper[i] = v.bollinger.map_or(NAN, |b| b.upper);
        self.bb_middle[i] = v.bollinger.map_or(NAN, |b| b.middle);
        self.bb_lower[i] = v.bollinger.map_or(NAN, |b| b.lower);
        self.atr[i] = v.atr.unwrap_or(NAN);
        self.adx[i] = v.adx.unwrap_or(NAN);
        self.plus_di[i] = v.plus_di.unwrap_or(NAN);
        self.minus_di[i] = v.minus_di.unwrap_or(NAN);
        self.stoch_k[i] = v.stochastic.map_or(NAN, |s| s.k);
        self.stoch_d[i] = v.stochastic.map_or(NAN, |s| s.d);
        self.obv[i] = v.obv.unwrap_or(NAN);
        self.vwap[i] = v.vwap.unwrap_or(NAN);
        self.signal[i] = v.signal;
    }
}

/// [`calculate_indicators`] into `out`, reusing its column buffers: every column is resized to
/// the candle count and every row overwritten, so the numbers are the same as a fresh call.
///
/// Never inlined, nor is [`steady`]: each is compiled once, in this crate, so that a caller in
/// another crate cannot re-optimise the fused loop in its own context (thin LTO may inline
/// across crates). The 2.2x swing between binaries was page faults, not this (`kernels::column`);
/// pinning them changed neither path's measured time.
#[inline(never)]
pub fn calculate_indicators_into(
    candles: &CandleColumns,
    params: &IndicatorParams,
    out: &mut Indicators,
) {
    let n = candles.len();
    let input = Inputs {
        open_time: &candles.open_time[..n],
        high: &candles.high[..n],
        low: &candles.low[..n],
        close: &candles.close[..n],
        volume: &candles.volume[..n],
    };

    out.open_time.clear();
    out.open_time.extend_from_slice(input.open_time);
    out.close.clear();
    out.close.extend_from_slice(input.close);
    let mut cols = Columns {
        sma: sized(&mut out.sma, n, 0.0),
        ema: sized(&mut out.ema, n, 0.0),
        wma: sized(&mut out.wma, n, 0.0),
        rsi: sized(&mut out.rsi, n, 0.0),
        macd: sized(&mut out.macd, n, 0.0),
        macd_signal: sized(&mut out.macd_signal, n, 0.0),
        macd_histogram: sized(&mut out.macd_histogram, n, 0.0),
        bb_upper: sized(&mut out.bb_upper, n, 0.0),
        bb_middle: sized(&mut out.bb_middle, n, 0.0),
        bb_lower: sized(&mut out.bb_lower, n, 0.0),
        atr: sized(&mut out.atr, n, 0.0),
        adx: sized(&mut out.adx, n, 0.0),
        plus_di: sized(&mut out.plus_di, n, 0.0),
        minus_di: sized(&mut out.minus_di, n, 0.0),
        stoch_k: sized(&mut out.stoch_k, n, 0.0),
        stoch_d: sized(&mut out.stoch_d, n, 0.0),
        obv: sized(&mut out.obv, n, 0.0),
        vwap: sized(&mut out.vwap, n, 0.0),
        signal: sized(&mut out.signal, n, Signal::Hold),
    };

    let mut set = IndicatorSet::new(params);
    let warm = set.warmup().min(n);
    for i in 0..warm {
        cols.put(i, &set.update(&Ohlcv::from_columns(candles, i)));
    }

    let mut extremes = Extremes::new(set.stochastic.fast_k);
    let mut start = warm;
    while start < n {
        let end = (start + CHUNK).min(n);
        extremes.compute(&mut set.stochastic, input.high, input.low, start, end);
        steady(&mut set, &input, &extremes, &mut cols, start, end);
        start = end;
    }
}

/// The input columns, each exactly one row per candle.
struct Inputs<'a> {
    open_time: &'a [i64],
    high: &'a [f64],
    low: &'a [f64],
    close: &'a [f64],
    volume: &'a [f64],
}

/// Rows `start..end` (all past the warm-up, so `start >= 1` and every window is full) of
/// every column, continuing the state `set` reached on the rows before.
#[inline(never)]
fn steady(
    set: &mut IndicatorSet,
    input: &Inputs,
    extremes: &Extremes,
    cols: &mut Columns,
    start: usize,
    end: usize,
) {
    let len = end - start;
    let rows = start..end;
    // Each window's leaving value comes from the input column: the SMA and the bands drop
    // the oldest value still in the window after their output, the WMA's plain sum the one a
    // period back.
    let lagged = |period: usize, lag: usize| &input.close[start + lag - period..end + lag - period];
    let sma_leaving = lagged(set.sma.period, 1);
    let wma_leaving = lagged(set.wma.period, 0);
    let prev_close = &input.close[start - 1..end - 1];
    let prev_high = &input.high[start - 1..end - 1];
    let prev_low = &input.low[start - 1..end - 1];
    let (close, high, low) = (
        &input.close[rows.clone()],
        &input.high[rows.clone()],
        &input.low[rows.clone()],
    );
    let (volume, open_time) = (&input.volume[rows.clone()], &input.open_time[rows.clone()]);
    let (highest, lowest) = (&extremes.highest[..len], &extremes.lowest[..len]);

    let sma = &mut cols.sma[rows.clone()];
    let ema = &mut cols.ema[rows.clone()];
    let wma = &mut cols.wma[rows.clone()];
    let rsi = &mut cols.rsi[rows.clone()];
    let macd = &mut cols.macd[rows.clone()];
    let macd_signal = &mut cols.macd_signal[rows.clone()];
    let macd_histogram = &mut cols.macd_histogram[rows.clone()];
    let bb_upper = &mut cols.bb_upper[rows.clone()];
    let bb_middle = &mut cols.bb_middle[rows.clone()];
    let bb_lower = &mut cols.bb_lower[rows.clone()];
    let atr = &mut cols.atr[rows.clone()];
    let adx = &mut cols.adx[rows.clone()];
    let plus_di = &mut cols.plus_di[rows.clone()];
    let minus_di = &mut cols.minus_di[rows.clone()];
    let stoch_k = &mut cols.stoch_k[rows.clone()];
    let stoch_d = &mut cols.stoch_d[rows.clone()];
    let obv = &mut cols.obv[rows.clone()];
    let vwap = &mut cols.vwap[rows.clone()];
    let signal = &mut cols.signal[rows];

    // Three loops, not one: each still overlaps several independent running sums, and each
    // keeps most of its state in registers (one loop over everything spills).
    for j in 0..len {
        let x = close[j];
        sma[j] = set.sma.slide(x, sma_leaving[j]);
        ema[j] = set.ema.step(x);
        wma[j] = set.wma.slide(x, wma_leaving[j]);
        let m = set.macd.update_seeded(x);
        macd[j] = m.macd;
        macd_signal[j] = m.signal;
        macd_histogram[j] = m.histogram;
        let bands = set.bollinger.step(x);
        bb_upper[j] = bands.upper;
        bb_middle[j] = bands.middle;
        bb_lower[j] = bands.lower;
    }
    // RSI alone, on a copy that stays in registers: in the loop above its paired averages
    // spilled and cost the whole loop more than the RSI itself.
    let mut rsi_state = set.rsi.clone();
    for j in 0..len {
        let r = rsi_state.smooth(close[j], prev_close[j]);
        rsi[j] = r;
        signal[j] = simple_signal(r, macd_histogram[j]);
    }
    set.rsi = rsi_state;
    for j in 0..len {
        let x = close[j];
        let tr = true_range(high[j], low[j], prev_close[j]);
        atr[j] = set.atr.smooth(tr);
        let directional = set
            .adx
            .smooth(high[j] - prev_high[j], prev_low[j] - low[j], tr);
        plus_di[j] = directional.plus_di;
        minus_di[j] = directional.minus_di;
        adx[j] = set.adx.smooth_adx(&directional);
        let s = set.stochastic.update_full(x, highest[j], lowest[j]);
        stoch_k[j] = s.k;
        stoch_d[j] = s.d;
        obv[j] = set.obv.step(x, prev_close[j], volume[j]);
        vwap[j] = set.vwap.step(open_time[j], high[j], low[j], x, volume[j]);
    }
}

/// The stochastic's highest high and lowest low over its window, for the rows of one chunk.
pub(super) struct Extremes {
    period: usize,
    highest: Vec<f64>,
    lowest: Vec<f64>,
    /// Doubling work space: the chunk plus the window before it.
    scratch: [Vec<f64>; 2],
}

impl Extremes {
    pub(super) fn new(period: usize) -> Extremes {
        let doubling = period <= DOUBLING_MAX;
        let scratch = if doubling { CHUNK + period } else { 0 };
        Extremes {
            period,
            highest: vec![0.0; CHUNK],
            lowest: vec![0.0; CHUNK],
            scratch: [vec![0.0; scratch], vec![0.0; scratch]],
        }
    }

    /// Rows `start..end` (`end - start <= CHUNK`, `start + 1 >= period`) of the highest high
    /// and the lowest low; `stochastic` is the state the rows before `start` left (its queues
    /// serve windows too wide for doubling).
    pub(super) fn compute(
        &mut self,
        stochastic: &mut Stochastic,
        high: &[f64],
        low: &[f64],
        start: usize,
        end: usize,
    ) -> (&[f64], &[f64]) {
        let len = end - start;
        if self.period <= DOUBLING_MAX {
            let from = start + 1 - self.period;
            let [a, b] = &mut self.scratch;
            let max = |earlier, later| if earlier > later { earlier } else { later };
            let min = |earlier, later| if earlier < later { earlier } else { later };
            let (high, low) = (&high[from..end], &low[from..end]);
            window_extreme(high, self.period, &mut self.highest[..len], a, b, max);
            window_extreme(low, self.period, &mut self.lowest[..len], a, b, min);
        } else {
            // Wide windows: the streaming queues, which the warm-up rows have filled.
            for (j, i) in (start..end).enumerate() {
                self.highest[j] = stochastic.highest.push(i as u64, high[i]);
                self.lowest[j] = stochastic.lowest.push(i as u64, low[i]);
            }
        }
        (&self.highest[..len], &self.lowest[..len])
    }
}

/// The extreme of every `period`-wide window of `src`, into `out` (`src.len() + 1 - period`
/// of them), by doubling: after pass `k` each value is the extreme of `2^k` consecutive ones,
/// and two overlapping windows of the largest power of two not above `period` cover any width.
/// Each pass reads one buffer and writes the other (`a`, `b`: at least `src.len()` each).
/// `pick(earlier, later)` keeps `later` on ties, as the streaming monotonic queue keeps the
/// newest of equal values, so the two agree on which of two equal values (say 0.0 and -0.0)
/// they return.
fn window_extreme<'a>(
    src: &[f64],
    period: usize,
    out: &mut [f64],
    mut a: &'a mut [f64],
    mut b: &'a mut [f64],
    pick: impl Fn(f64, f64) -> f64 + Copy,
) {
    let m = src.len();
    let mut width = 1;
    let mut doubled = false;
    while width * 2 <= period {
        let valid = m + 1 - width * 2;
        let current: &[f64] = if doubled { a } else { src };
        for ((out, &earlier), &later) in b[..valid]
            .iter_mut()
            .zip(&current[..valid])
            .zip(&current[width..width + valid])
        {
            *out = pick(earlier, later);
        }
        std::mem::swap(&mut a, &mut b);
        doubled = true;
        width *= 2;
    }
    let current: &[f64] = if doubled { a } else { src };
    let shift = period - width;
    let windows = m + 1 - period;
    for ((out, &earlier), &later) in out[..windows]
        .iter_mut()
        .zip(&current[..windows])
        .zip(&current[shift..shift + windows])
    {
        *out = pick(earlier, later);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_periods_give_the_same_rows_in_both_faces() {
        // Periods of 0 (taken as 1) and a MACD fast period above the slow one (swapped) are
        // not valid settings, but the batch face must still clamp them as the streaming one.
        let mut cols = CandleColumns::default();
        for i in 0..80i64 {
            let c = if i % 9 == 0 {
                100.0
            } else {
                100.0 + (i % 7) as f64 - 3.0
            };
            cols.open_time.push(i * 60_000);
            cols.open.push(c);
            cols.high.push(c + (i % 3) as f64);
            cols.low.push(c - (i % 2) as f64);
            cols.close.push(c);
            cols.volume.push((i % 4) as f64);
        }
        let params = IndicatorParams {
            sma_period: 0,
            ema_period: 1,
            wma_period: 0,
            rsi_period: 1,
            macd_fast: 30,
            macd_slow: 5,
            macd_signal: 0,
            bb_period: 1,
            atr_period: 0,
            adx_period: 1,
            stoch_fast_k: 0,
            stoch_slow_k: 1,
            stoch_slow_d: 0,
            vwap_session_ms: Some(600_000),
            ..IndicatorParams::default()
        };
        let batch = calculate_indicators(&cols, &params);
        let mut set = IndicatorSet::new(&params);
        for i in 0..cols.len() {
            let streamed = set.update(&Ohlcv::from_columns(&cols, i));
            // Debug prints every f64 exactly, so equal text is equal bits.
            assert_eq!(
                format!("{:?}", batch.row(i)),
                format!("{:?}", Some(streamed)),
                "row {i}"
            );
        }
    }

    #[test]
    fn window_extreme_by_doubling_matches_a_scan_for_every_width() {
        let src: Vec<f64> = (0..97).map(|i| ((i * 37) % 23) as f64 - 11.0).collect();
        for period in 1..=40 {
            let (mut a, mut b) = (vec![0.0; src.len()], vec![0.0; src.len()]);
            let mut out = vec![f64::NAN; src.len() + 1 - period];
            let max = |x, y| if x > y { x } else { y };
            window_extreme(&src, period, &mut out, &mut a, &mut b, max);
            for (j, got) in out.iter().enumerate() {
                let want = src[j..j + period].iter().cloned().fold(f64::MIN, f64::max);
                assert_eq!(*got, want, "period {period}, window {j}");
            }
        }
    }

    #[test]
    fn window_extreme_keeps_the_newest_of_equal_values() {
        // max(-0.0, 0.0): the later one wins, as in the streaming queue.
        let src = [-0.0, 0.0, -0.0];
        let (mut a, mut b, mut out) = ([0.0; 3], [0.0; 3], [f64::NAN; 2]);
        window_extreme(
            &src,
            2,
            &mut out,
            &mut a,
            &mut b,
            |x, y| if x > y { x } else { y },
        );
        assert_eq!(
            [out[0].to_bits(), out[1].to_bits()],
            [0.0f64.to_bits(), (-0.0f64).to_bits()]
        );
    }
}
