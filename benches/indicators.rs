//! Indicators over 1,000,000 synthetic one-minute candles: each single-indicator kernel
//! (`indicators::sma`, `ema`, ...) against TA-Lib's function with the same parameters, the fused
//! batch (`calculate_indicators`) against TA-Lib's nine back to back, and the streaming
//! `IndicatorSet` in ns per candle against a 100 ns target. Run with
//! `cargo bench --bench indicators`. With `TRADEMIND_BENCH_CSV` (the anchors' 1M-candle series,
//! `../shared/bench/README.md`) the columns are that file's, and under `run_anchors.sh ... --
//! cargo bench --bench indicators` each figure is printed with its ratio to the TA-Lib figure of
//! the same run (`sma20_ms`, ..., `all9_ms`). Times are the median thread CPU time (page faults
//! included), which a shared machine does not inflate; minor page faults per call are printed
//! beside the fused batch, whose time depends on whether its columns land on fresh pages.
//! `TRADEMIND_BENCH_KERNELS=bollinger,atr` (names' prefixes, comma-separated) runs only those
//! kernels and skips the fused batch and the streaming set.

mod common;
use common::{anchor_candles, ratio_to_anchor, thread_cpu};

use std::hint::black_box;
use std::time::{Duration, Instant};
use trademind::domain::market::CandleColumns;
use trademind::domain::market::indicators::{
    self as ind, IndicatorParams, IndicatorSet, Indicators, Ohlcv, calculate_indicators,
    calculate_indicators_into,
};

// The `trademind` binary's allocator (`trademind::memory`), so the bench measures the kernels as
// that binary runs them.
#[global_allocator]
static ALLOC: trademind::memory::ColumnAllocator = trademind::memory::ColumnAllocator;

const BUILTIN_CANDLES: usize = 1_000_000;
const RUNS: usize = 11;
/// Runs per single-indicator kernel (TA-Lib's anchor takes the median of 21).
const KERNEL_RUNS: usize = 21;

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

/// Minor page faults this thread has taken so far.
fn minor_faults() -> i64 {
    // SAFETY: `getrusage` writes one `rusage` through the valid pointer it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if rc == 0 { usage.ru_minflt } else { 0 }
}

/// Each single-indicator kernel, with TA-Lib's parameters (`bench_talib.py`): one warm-up call,
/// then the median thread CPU time of [`KERNEL_RUNS`], beside its anchor field. Returns the sum
/// of the nine anchored medians, in ms.
fn kernels(cols: &CandleColumns, anchored: bool) -> f64 {
    let c = &cols.close;
    type Run<'a> = Box<dyn Fn() + 'a>;
    let kernels: [(&str, Option<&str>, Run); 11] = [
        (
            "sma(20)",
            Some("sma20_ms"),
            Box::new(|| drop(black_box(ind::sma(black_box(c), 20)))),
        ),
        (
            "ema(20)",
            Some("ema20_ms"),
            Box::new(|| drop(black_box(ind::ema(black_box(c), 20)))),
        ),
        (
            "rsi(14)",
            Some("rsi14_ms"),
            Box::new(|| drop(black_box(ind::rsi(black_box(c), 14)))),
        ),
        (
            "macd(12,26,9)",
            Some("macd_ms"),
            Box::new(|| drop(black_box(ind::macd(black_box(c), 12, 26, 9)))),
        ),
        (
            "bollinger(20,2,2)",
            Some("bbands_ms"),
            Box::new(|| drop(black_box(ind::bollinger(black_box(c), 20, 2.0, 2.0)))),
        ),
        (
            "atr(14)",
            Some("atr14_ms"),
            Box::new(|| drop(black_box(ind::atr(black_box(cols), 14)))),
        ),
        (
            "adx(14) with +DI, -DI",
            Some("adx14_ms"),
            Box::new(|| drop(black_box(ind::adx(black_box(cols), 14)))),
        ),
        (
            "stochastic(14,3,3)",
            Some("stoch_ms"),
            Box::new(|| drop(black_box(ind::stochastic(black_box(cols), 14, 3, 3)))),
        ),
        (
            "obv",
            Some("obv_ms"),
            Box::new(|| drop(black_box(ind::obv(black_box(cols))))),
        ),
        (
            "wma(20)",
            None,
            Box::new(|| drop(black_box(ind::wma(black_box(c), 20)))),
        ),
        (
            "vwap",
            None,
            Box::new(|| drop(black_box(ind::vwap(black_box(cols))))),
        ),
    ];
    let candles = cols.len();
    let only = std::env::var("TRADEMIND_BENCH_KERNELS").ok();
    let selected = |name: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|p| name.starts_with(p.trim())))
    };
    let mut sum_ms = 0.0;
    for (name, field, run) in kernels.iter().filter(|k| selected(k.0)) {
        run();
        let faults0 = minor_faults();
        let runs: Vec<Duration> = (0..KERNEL_RUNS).map(|_| timed(run).1).collect();
        let faults = (minor_faults() - faults0) / KERNEL_RUNS as i64;
        let cpu_ms = median(runs).as_secs_f64() * 1e3;
        let ratio = match field {
            Some(field) => {
                sum_ms += cpu_ms;
                ratio_to_anchor(cpu_ms, anchored, "talib", candles, field)
            }
            None => "no TA-Lib anchor field".to_string(),
        };
        println!(
            "kernel {name}: median CPU {cpu_ms:.2} ms ({:.2} ns/candle, {faults} minor faults/call); target <= 1.0x: {ratio}",
            cpu_ms * 1e6 / candles as f64
        );
    }
    println!(
        "kernels, the nine TA-Lib ones one after another: {sum_ms:.2} ms; {}",
        ratio_to_anchor(sum_ms, anchored, "talib", candles, "all9_ms")
    );
    sum_ms
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

    kernels(&cols, data.anchored);
    if std::env::var_os("TRADEMIND_BENCH_KERNELS").is_some() {
        return;
    }

    let faults0 = minor_faults();
    let batch: Vec<_> = (0..RUNS)
        .map(|_| {
            timed(|| {
                black_box(calculate_indicators(black_box(&cols), &params));
            })
        })
        .collect();
    let batch_faults = (minor_faults() - faults0) / RUNS as i64;

    let mut reused = Indicators::default();
    calculate_indicators_into(&cols, &params, &mut reused);
    let faults0 = minor_faults();
    let batch_into: Vec<_> = (0..RUNS)
        .map(|_| {
            timed(|| {
                calculate_indicators_into(black_box(&cols), &params, &mut reused);
                black_box(&reused);
            })
        })
        .collect();
    let into_faults = (minor_faults() - faults0) / RUNS as i64;

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
    println!(
        "fused batch: {batch_faults} minor page faults per fresh call, {into_faults} per call into reused buffers"
    );
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
