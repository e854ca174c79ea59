//! The full indicator set over 1,000,000 synthetic one-minute candles: batch
//! (`calculate_indicators`) against TA-Lib's 35 ms for its nine indicators, and the streaming
//! `IndicatorSet` in ns per candle against a 100 ns target. Run with
//! `cargo bench --bench indicators`.

use std::hint::black_box;
use std::time::{Duration, Instant};
use trademind::domain::market::CandleColumns;
use trademind::domain::market::indicators::{
    IndicatorParams, IndicatorSet, Ohlcv, calculate_indicators,
};

const CANDLES: usize = 1_000_000;
const RUNS: usize = 11;

/// A deterministic random walk (xorshift), so every run measures the same data.
fn synthetic(n: usize) -> CandleColumns {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut cols = CandleColumns::default();
    let mut price = 30_000.0;
    for i in 0..n {
        let open = price;
        price *= 1.0 + (next() - 0.5) * 0.004;
        let close = price;
        let high = open.max(close) * (1.0 + next() * 0.001);
        let low = open.min(close) * (1.0 - next() * 0.001);
        cols.open_time.push(i as i64 * 60_000);
        cols.open.push(open);
        cols.high.push(high);
        cols.low.push(low);
        cols.close.push(close);
        cols.volume.push(next() * 10.0);
    }
    cols
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let cols = synthetic(CANDLES);
    let params = IndicatorParams::default();

    let batch = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let out = calculate_indicators(black_box(&cols), &params);
                let took = start.elapsed();
                black_box(out);
                took
            })
            .collect(),
    );

    let bars: Vec<Ohlcv> = (0..cols.len())
        .map(|i| Ohlcv::from_columns(&cols, i))
        .collect();
    let streaming = median(
        (0..RUNS)
            .map(|_| {
                let mut set = IndicatorSet::new(&params);
                let start = Instant::now();
                for bar in &bars {
                    black_box(set.update(black_box(bar)));
                }
                start.elapsed()
            })
            .collect(),
    );

    let per_candle = |d: Duration| d.as_nanos() as f64 / CANDLES as f64;
    println!(
        "batch calculate_indicators, full set, {CANDLES} candles: median {:.2} ms ({:.1} ns/candle; target < 35 ms)",
        batch.as_secs_f64() * 1e3,
        per_candle(batch)
    );
    println!(
        "streaming IndicatorSet::update, full set: median {:.2} ms total, {:.1} ns/candle (target < 100 ns)",
        streaming.as_secs_f64() * 1e3,
        per_candle(streaming)
    );
}
