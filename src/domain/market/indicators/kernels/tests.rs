//! Every kernel against its streaming state machine stepped value by value, bit for bit (NaN
//! for "no value"), on random series with flat stretches, across the stochastic's chunk
//! boundaries and its wide (monotonic-queue) windows.

use super::super::{
    Adx, Atr, Bollinger, CandleColumns, Ema, Macd, Obv, Ohlcv, Rsi, Sma, Stochastic, Vwap, Wma,
    bollinger,
};
use super::*;
use proptest::prelude::*;

/// Random candles, about one in five a repeat of the one before (flat closes, zero ranges and
/// zero volume take the "no change" and "divide by ~0" paths).
fn candles(len: std::ops::Range<usize>) -> impl Strategy<Value = CandleColumns> {
    prop::collection::vec(
        (
            1.0f64..1000.0,
            0.0f64..0.05,
            0.0f64..1.0,
            0.0f64..50.0,
            0u8..5,
        ),
        len,
    )
    .prop_map(|rows| {
        let mut cols = CandleColumns::default();
        for (i, (mid, spread, at, volume, repeat)) in rows.into_iter().enumerate() {
            let (low, high) = (mid * (1.0 - spread), mid * (1.0 + spread));
            let flat = repeat == 0 && i > 0;
            let close = if flat {
                cols.close[i - 1]
            } else {
                low + (high - low) * at
            };
            cols.open_time.push(i as i64 * 60_000);
            cols.open.push(close);
            cols.high.push(if flat { close } else { high });
            cols.low.push(if flat { close } else { low });
            cols.close.push(close);
            cols.volume.push(if flat { 0.0 } else { volume });
        }
        cols
    })
}

fn bars(cols: &CandleColumns) -> Vec<Ohlcv> {
    (0..cols.len())
        .map(|i| Ohlcv::from_columns(cols, i))
        .collect()
}

/// The first row where two columns differ in their bits, if any.
fn first_difference(kernel: &[f64], streamed: &[f64]) -> Option<(usize, f64, f64)> {
    assert_eq!(kernel.len(), streamed.len(), "row count");
    (0..kernel.len())
        .find(|&i| kernel[i].to_bits() != streamed[i].to_bits())
        .map(|i| (i, kernel[i], streamed[i]))
}

/// Each column of `kernel` against the state machine's values, one `Option` per output.
fn check<const N: usize>(
    name: &str,
    kernel: &[Vec<f64>; N],
    streamed: impl Iterator<Item = [Option<f64>; N]>,
) -> Result<(), TestCaseError> {
    let mut columns: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for row in streamed {
        for (c, v) in columns.iter_mut().zip(row) {
            c.push(v.unwrap_or(f64::NAN));
        }
    }
    for (j, (k, s)) in kernel.iter().zip(&columns).enumerate() {
        let diff = first_difference(k, s);
        prop_assert!(
            diff.is_none(),
            "{name} output {j}: (row, kernel, streaming) {diff:?}"
        );
    }
    Ok(())
}

fn kernels_equal_state_machines(
    cols: &CandleColumns,
    period: usize,
    (fast, slow, signal): (usize, usize, usize),
    (fast_k, slow_k, slow_d): (usize, usize, usize),
) -> Result<(), TestCaseError> {
    let close = &cols.close;
    let bars = bars(cols);
    let mut s = Sma::new(period);
    check(
        "sma",
        &[sma(close, period)],
        close.iter().map(|&x| [s.update(x)]),
    )?;
    let mut s = Ema::new(period);
    check(
        "ema",
        &[ema(close, period)],
        close.iter().map(|&x| [s.update(x)]),
    )?;
    let mut s = Wma::new(period);
    check(
        "wma",
        &[wma(close, period)],
        close.iter().map(|&x| [s.update(x)]),
    )?;
    let mut s = Rsi::new(period);
    check(
        "rsi",
        &[rsi(close, period)],
        close.iter().map(|&x| [s.update(x)]),
    )?;
    let mut s = Macd::new(fast, slow, signal);
    check(
        "macd",
        &macd(close, fast, slow, signal),
        close.iter().map(|&x| {
            let v = s.update(x);
            [
                v.map(|v| v.macd),
                v.map(|v| v.signal),
                v.map(|v| v.histogram),
            ]
        }),
    )?;
    let mut s = Bollinger::new(period, 2.0, 1.5);
    check(
        "bollinger",
        &bollinger(close, period, 2.0, 1.5),
        close.iter().map(|&x| {
            let v = s.update(x);
            [v.map(|v| v.upper), v.map(|v| v.middle), v.map(|v| v.lower)]
        }),
    )?;
    let mut s = Atr::new(period);
    check(
        "atr",
        &[atr(cols, period)],
        bars.iter().map(|b| [s.update(b)]),
    )?;
    let mut s = Adx::new(period);
    check(
        "adx",
        &adx(cols, period),
        bars.iter()
            .map(|b| [s.update(b), s.plus_di(), s.minus_di()]),
    )?;
    let mut s = Stochastic::new(fast_k, slow_k, slow_d);
    check(
        "stochastic",
        &stochastic(cols, fast_k, slow_k, slow_d),
        bars.iter().map(|b| {
            let v = s.update(b);
            [v.map(|v| v.k), v.map(|v| v.d)]
        }),
    )?;
    let mut s = Obv::new();
    check(
        "obv",
        &[obv(cols)],
        bars.iter().map(|b| [s.update(b.close, b.volume)]),
    )?;
    let mut s = Vwap::new();
    check("vwap", &[vwap(cols)], bars.iter().map(|b| [s.update(b)]))
}

proptest! {
    /// Short series: warm-up only, a handful of steady rows, degenerate periods (0 and 1).
    #[test]
    fn kernels_equal_stepping_the_state_machines(
        cols in candles(0..120),
        period in 0usize..25,
        macd in (0usize..15, 0usize..30, 0usize..10),
        stoch in (0usize..20, 0usize..5, 0usize..5),
    ) {
        kernels_equal_state_machines(&cols, period, macd, stoch)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Long series cross the stochastic's chunks (1024 rows); windows over 64 take the
    /// monotonic queues instead of doubling.
    #[test]
    fn kernels_equal_stepping_the_state_machines_across_chunks(
        cols in candles(900..2600),
        period in 1usize..40,
        fast_k in prop_oneof![1usize..20, 60usize..140],
    ) {
        kernels_equal_state_machines(&cols, period, (12, 26, 9), (fast_k, 3, 3))?;
    }
}
