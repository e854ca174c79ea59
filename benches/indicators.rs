//! The full indicator set over 1,000,000 synthetic one-minute candles: batch
//! (`calculate_indicators`) against TA-Lib's 35 ms for its nine indicators, and the streaming
//! `IndicatorSet` in ns per candle against a 100 ns target. Run with
//! `cargo bench --bench indicators`. With `TRADEMIND_BENCH_CSV` (the anchors' 1M-candle series,
//! `../shared/bench/README.md`) the columns are that file's, and under `run_anchors.sh ... --
//! cargo bench --bench indicators` the batch is printed with its ratio to TA-Lib in the same run.

mod common;
use common::{anchor_candles, ratio_to_anchor, thread_cpu};

use std::hint::black_box;
use std::time::{Duration, Instant};
use trademind::domain::market::CandleColumns;
use trademind::domain::market::indicators::{
    IndicatorParams, IndicatorSet, Indicators, Ohlcv, calculate_indicators,
    calculate_indicators_into,
};

const BUILTIN_CANDLES: usize = 1_000_000;
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

/// Wall and CPU time of `f`.
fn timed(f: impl FnOnce()) -> (Duration, Duration) {
    let cpu0 = thread_cpu();
    let start = Instant::now();
    f();
    let wall = start.elapsed();
    let cpu = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall,
    };
    (wall, cpu)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    // The built-in series is generated as columns; the anchors' file goes through the loader.
    let data = anchor_candles("TRADEMIND_BENCH_CSV", Vec::new);
    let cols = if data.anchored {
        CandleColumns::from_candles(&data.data)
    } else {
        synthetic(BUILTIN_CANDLES)
    };
    let candles = cols.len();
    println!("indicators, n={candles}, {}:", data.label);
    let params = IndicatorParams::default();

    let batch: Vec<_> = (0..RUNS)
        .map(|_| {
            timed(|| {
                black_box(calculate_indicators(black_box(&cols), &params));
            })
        })
        .collect();

    let mut reused = Indicators::default();
    calculate_indicators_into(&cols, &params, &mut reused);
    let batch_into: Vec<_> = (0..RUNS)
        .map(|_| {
            timed(|| {
                calculate_indicators_into(black_box(&cols), &params, &mut reused);
                black_box(&reused);
            })
        })
        .collect();

    let bars: Vec<Ohlcv> = (0..cols.len())
        .map(|i| Ohlcv::from_columns(&cols, i))
        .collect();
    let streaming: Vec<_> = (0..RUNS)
        .map(|_| {
            let mut set = IndicatorSet::new(&params);
            timed(|| {
                for bar in &bars {
                    black_box(set.update(black_box(bar)));
                }
            })
        })
        .collect();

    let per_candle = |d: Duration| d.as_nanos() as f64 / candles as f64;
    let report = |name: &str, runs: &[(Duration, Duration)], target: &str, batch: bool| {
        let wall = median(runs.iter().map(|r| r.0).collect());
        let cpu = median(runs.iter().map(|r| r.1).collect());
        let best = runs.iter().map(|r| r.1).min().unwrap_or_default();
        println!(
            "{name}, {candles} candles: median wall {:.2} ms, median CPU {:.2} ms ({:.1} ns/candle), best CPU {:.2} ms ({:.1} ns/candle); target {target}",
            wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3,
            per_candle(cpu),
            best.as_secs_f64() * 1e3,
            per_candle(best),
        );
        if !batch {
            return;
        }
        let cpu_ms = cpu.as_secs_f64() * 1e3;
        println!(
            "    median CPU against TA-Lib: {}; {}",
            ratio_to_anchor(
                cpu_ms,
                data.anchored,
                "talib",
                candles,
                "all9_wma_di_vwap_ms"
            ),
            ratio_to_anchor(cpu_ms, data.anchored, "talib", candles, "all9_ms")
        );
    };
    report(
        "batch calculate_indicators (full set)",
        &batch,
        "< 35 ms",
        true,
    );
    report(
        "batch calculate_indicators_into (buffers reused)",
        &batch_into,
        "< 35 ms",
        true,
    );
    report(
        "streaming IndicatorSet::update (full set)",
        &streaming,
        "< 100 ns/candle",
        false,
    );
}
