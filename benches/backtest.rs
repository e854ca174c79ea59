//! Backtest throughput: SMA(10)/SMA(30) crossover over 1,000,000 synthetic one-minute candles
//! through the same engine live trading uses (indicators + simulation + metrics), and a
//! 1,000-combination sweep over 100,000 candles on all cores (wall and process CPU time, with and
//! without the shared SMA columns). Run: `cargo bench --bench backtest`;
//! `TRADEMIND_BENCH_PROFILE=60 target/release/deps/backtest-*` repeats only the main run (for
//! `perf record`).
//!
//! On the anchors' data (`../shared/bench/README.md`): `TRADEMIND_BENCH_CSV` (1M candles) and
//! `TRADEMIND_BENCH_CSV_100K` (the sweep's) replace the built-in series, the runs fill at the
//! close as the anchors do, and under `run_anchors.sh ... -- cargo bench --bench backtest` each
//! figure is printed with its ratio to the anchor measured in the same run.

// The `trademind` binary's allocator (`trademind::memory`), so the bench measures what that
// binary does (its heap policy changes page faults and peak memory).
#[global_allocator]
static ALLOC: trademind::memory::ColumnAllocator = trademind::memory::ColumnAllocator;

mod common;
use common::{anchor_candles, ratio_to_anchor, thread_cpu};

use rust_decimal::Decimal;
use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use trademind::app::backtest::{
    BacktestRequest, CandleSource, FULL_METRICS_TOP, SizingChoice, SweepAxis, SweepRanking, run_on,
    run_sweep, run_sweep_ranked, sweep_grid,
};
use trademind::domain::backtest::{
    AllIn, BacktestConfig, BacktestService, BuiltinStrategy, Costs, Engine, FillModel, History,
    Signal, Strategy, StrategyContext, StrategySpec, build_strategy,
};
use trademind::domain::market::{Candle, CandleColumns, Interval};
use trademind::domain::money::{Price, Qty, Quote};
use trademind::domain::risk::RiskConfig;

/// A deterministic random walk (xorshift), prices on a 0.01 tick.
fn synthetic(n: usize) -> Vec<Candle> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut price: i64 = 3_000_000; // cents
    (0..n)
        .map(|i| {
            let open = price;
            let step = ((next() - 0.5) * 2000.0) as i64;
            price = (price + step).max(100_000);
            let close = price;
            let high = open.max(close) + (next() * 500.0) as i64;
            let low = (open.min(close) - (next() * 500.0) as i64).max(1);
            Candle {
                open_time: 1_700_000_000_000 + i as i64 * 60_000,
                open: Price(Decimal::new(open, 2)),
                high: Price(Decimal::new(high, 2)),
                low: Price(Decimal::new(low, 2)),
                close: Price(Decimal::new(close, 2)),
                volume: Qty(Decimal::ONE),
            }
        })
        .collect()
}

/// The SMA cross itself with its signals dropped: the same averages, the same quiet scan (the
/// engine skips the candles between crosses as in the real run), never an order. What the run
/// costs per candle before its round trips and the marking of a held position (for the
/// breakdown).
struct Muted(BuiltinStrategy);
impl Strategy for Muted {
    fn name(&self) -> &str {
        "sma-cross, muted"
    }
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        black_box(self.0.on_candle(ctx));
        None
    }
    fn quiet_until(&mut self, history: History<'_>, from: usize) -> usize {
        self.0.quiet_until(history, from)
    }
}

fn sma_spec(fast: f64, slow: f64) -> StrategySpec {
    StrategySpec {
        name: "sma-cross".into(),
        params: [("fast".to_string(), fast), ("slow".to_string(), slow)].into(),
    }
}

/// CPU time of the whole process so far, exited threads included (`/proc/self/stat` utime +
/// stime, in clock ticks of 10 ms): for the multi-threaded sweep.
fn process_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = text.rsplit_once(") ")?.1;
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let data = anchor_candles("TRADEMIND_BENCH_CSV", || synthetic(1_000_000));
    let (candles, anchored) = (data.data, data.anchored);
    let n = candles.len();
    // The anchors fill at the signal bar's close; the built-in series keeps the default.
    let fill = if anchored {
        FillModel::Close
    } else {
        FillModel::NextOpen
    };
    let mut config = BacktestConfig::new(Interval::M1);
    // The muted run fills (never) as the main run would: the same loop.
    config.fill_model = fill;
    let never = AtomicBool::new(false);

    let request = |fast: f64, slow: f64| BacktestRequest {
        strategy: sma_spec(fast, slow),
        symbol: "BTCUSDT".into(),
        interval: Interval::M1,
        from: None,
        to: None,
        source: CandleSource::Store,
        initial_cash: Quote(Decimal::new(100_000, 0)),
        costs: Costs::default(),
        fill,
        sizing: SizingChoice::AllIn,
        risk: RiskConfig::default(),
    };
    // The command line's path: sliding averages over the history, the engine loop specialised
    // for the strategy, fills, equity and metrics. Like the command line, the run is handed no
    // decimal candles when the columns hold them exactly.
    let main_run = |columns: &CandleColumns| {
        let run_candles: &[Candle] = if columns.holds_exact_candles() {
            &[]
        } else {
            &candles
        };
        run_on(
            &request(10.0, 30.0),
            run_candles,
            columns,
            &never,
            &mut |_, _| {},
        )
        .unwrap()
    };
    // The same run with its signals dropped (see `Muted`).
    let muted_run = |columns: &CandleColumns| {
        let engine = Engine::new(
            Box::new(Muted(build_strategy(&sma_spec(10.0, 30.0)).unwrap())),
            Box::new(AllIn),
            config.initial_cash,
        );
        BacktestService::run(&config, engine, &candles, columns, &never, &mut |_, _| {}).unwrap()
    };
    // `TRADEMIND_BENCH_PROFILE=N`: only repeat the main run N times (for `perf record`);
    // `TRADEMIND_BENCH_PROFILE_MUTED=N`, the run with its signals dropped.
    let reps = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(reps) = reps("TRADEMIND_BENCH_PROFILE") {
        let columns = CandleColumns::from_candles(&candles);
        let mut cpu = Vec::with_capacity(reps);
        for _ in 0..reps {
            let cpu0 = thread_cpu();
            black_box(main_run(&columns));
            if let (Some(a), Some(b)) = (cpu0, thread_cpu()) {
                cpu.push(b.saturating_sub(a));
            }
        }
        // On stderr, out of the way of `perf`: the repeated run's CPU time (warm columns, so
        // lower than the bench's figure; for comparing two builds on a noisy machine).
        if let Some(&min) = cpu.iter().min() {
            eprintln!(
                "main run x{reps}: min {:.3} ms, median {:.3} ms (CPU time of this thread)",
                min.as_secs_f64() * 1e3,
                median(cpu).as_secs_f64() * 1e3
            );
        }
        return;
    }
    if let Some(reps) = reps("TRADEMIND_BENCH_PROFILE_MUTED") {
        let columns = CandleColumns::from_candles(&candles);
        for _ in 0..reps {
            black_box(muted_run(&columns));
        }
        return;
    }
    let mut convert = Vec::new();
    let mut engine_runs = Vec::new();
    let mut engine_cpu = Vec::new();
    let mut trades = 0;
    let mut final_equity = Quote(Decimal::ZERO);
    for _ in 0..11 {
        let t = Instant::now();
        let columns = CandleColumns::from_candles(&candles);
        convert.push(t.elapsed());
        let cpu0 = thread_cpu();
        let t = Instant::now();
        let r = main_run(&columns);
        let wall = t.elapsed();
        engine_runs.push(wall);
        engine_cpu.push(match (cpu0, thread_cpu()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        });
        trades = black_box(r.metrics.trades);
        final_equity = r.final_equity;
    }
    let mut quiet_cpu = Vec::new();
    let columns = CandleColumns::from_candles(&candles);
    for _ in 0..7 {
        let cpu0 = thread_cpu();
        let t = Instant::now();
        let r = muted_run(&columns);
        let wall = t.elapsed();
        black_box(r);
        quiet_cpu.push(match (cpu0, thread_cpu()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        });
    }
    let conv = median(convert);
    let run = median(engine_runs);
    let run_cpu = median(engine_cpu);
    let mcps = |d: Duration| n as f64 / d.as_secs_f64() / 1e6;
    println!(
        "sma-cross, n={n} one-minute candles, fill {fill}, trades={trades} final_equity={final_equity} (median of 11), {}:",
        data.label
    );
    println!(
        "  run (averages + strategy + sizing + fills + equity + metrics):    {:>8.2} ms  {:>7.1} M candles/s",
        run.as_secs_f64() * 1e3,
        mcps(run)
    );
    println!(
        "  engine run, CPU time of this thread:                     {:>8.2} ms  {:>7.1} M candles/s  {:.2} ns/candle (target <= 8)",
        run_cpu.as_secs_f64() * 1e3,
        mcps(run_cpu),
        run_cpu.as_secs_f64() * 1e9 / n as f64
    );
    println!(
        "    CPU time against the compiled reference loop: {}; {}",
        ratio_to_anchor(
            run_cpu.as_secs_f64() * 1e3,
            anchored,
            "numba-reference",
            n,
            "median_ms"
        ),
        ratio_to_anchor(
            run_cpu.as_secs_f64() * 1e3,
            anchored,
            "numba-reference",
            n,
            "runsum_median_ms"
        )
    );
    let quiet = median(quiet_cpu);
    println!(
        "  of which the same run with its signals dropped, CPU time: {:>8.2} ms  {:>7.1} M candles/s ({:.0} ns per round trip traded, a held position's marking included)",
        quiet.as_secs_f64() * 1e3,
        mcps(quiet),
        run_cpu.saturating_sub(quiet).as_secs_f64() * 1e9 / trades.max(1) as f64
    );
    println!(
        "  decimal -> f64 column view (once per data set):         {:>8.2} ms  {:>7.1} M candles/s",
        conv.as_secs_f64() * 1e3,
        mcps(conv)
    );
    println!(
        "  end to end (both):                                       {:>8.2} ms  {:>7.1} M candles/s",
        (run + conv).as_secs_f64() * 1e3,
        mcps(run + conv)
    );

    // Sweep: 50 fast x 20 slow = 1,000 combinations over 100,000 candles.
    let sweep_data = anchor_candles("TRADEMIND_BENCH_CSV_100K", || {
        candles[..100_000.min(candles.len())].to_vec()
    });
    let small = &sweep_data.data[..];
    let m = small.len();
    let columns = CandleColumns::from_candles(small);
    let base = request(10.0, 30.0);
    let axes: Vec<SweepAxis> = ["fast=2..51:1", "slow=60..250:10"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let grid = sweep_grid(&axes);
    assert_eq!(grid.len(), 1000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut sweeps = Vec::new();
    let mut sweep_cpu = Vec::new();
    let mut sweep_trades = 0;
    let mut best_equity = f64::NEG_INFINITY;
    for _ in 0..3 {
        let cpu0 = process_cpu();
        let t = Instant::now();
        let runs = run_sweep(&base, &grid, small, &columns, threads, &never, &|_| {});
        sweeps.push(t.elapsed());
        if let (Some(a), Some(b)) = (cpu0, process_cpu()) {
            sweep_cpu.push(b.saturating_sub(a));
        }
        assert!(runs.iter().all(|r| r.metrics.is_some()));
        sweep_trades = runs
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .map(|m| m.trades)
            .sum::<usize>();
        best_equity = runs
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .map(|m| m.final_equity)
            .fold(f64::NEG_INFINITY, f64::max);
        black_box(runs);
    }
    let s = median(sweeps);
    println!(
        "sweep: {} combinations x n={m} candles on {threads} threads, trades={sweep_trades} best final_equity={best_equity}, {}: {:.3} s wall ({:.1} M candle-steps/s)",
        grid.len(),
        sweep_data.label,
        s.as_secs_f64(),
        (grid.len() * m) as f64 / s.as_secs_f64() / 1e6
    );
    if !sweep_cpu.is_empty() {
        let cpu = median(sweep_cpu).as_secs_f64();
        println!(
            "  every run's full metrics (--all-metrics), process CPU time (all threads): {cpu:.3} s; {} (the anchor runs on one thread)",
            ratio_to_anchor(cpu, sweep_data.anchored, "sweep", m, "warm_median_s")
        );
    }
    // What `backtest --sweep` does by default: every run for its ranking metric alone (here the
    // return, the anchor's final equity), then the best 20 again for their full metrics.
    let ranking = SweepRanking {
        rank_by: "total_return",
        full_metrics_top: Some(FULL_METRICS_TOP),
    };
    let mut ranked_cpu = Vec::new();
    let mut ranked_wall = Vec::new();
    let mut best_ranked = f64::NEG_INFINITY;
    for _ in 0..3 {
        let cpu0 = process_cpu();
        let t = Instant::now();
        let runs = run_sweep_ranked(
            &base,
            &grid,
            ranking,
            small,
            &columns,
            threads,
            &never,
            &|_| {},
        );
        ranked_wall.push(t.elapsed());
        if let (Some(a), Some(b)) = (cpu0, process_cpu()) {
            ranked_cpu.push(b.saturating_sub(a));
        }
        assert_eq!(
            runs.iter().filter(|r| r.metrics.is_some()).count(),
            FULL_METRICS_TOP
        );
        best_ranked = runs
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .map(|m| m.final_equity)
            .fold(f64::NEG_INFINITY, f64::max);
        black_box(runs);
    }
    assert_eq!(best_ranked.to_bits(), best_equity.to_bits());
    println!(
        "  ranked by total_return (full metrics for the best {FULL_METRICS_TOP}), best final_equity={best_ranked}: {:.3} s wall",
        median(ranked_wall).as_secs_f64()
    );
    if !ranked_cpu.is_empty() {
        let cpu = median(ranked_cpu).as_secs_f64();
        println!(
            "  ranked, process CPU time (all threads): {cpu:.3} s; {} (the anchor runs on one thread; target <= 1)",
            ratio_to_anchor(cpu, sweep_data.anchored, "sweep", m, "warm_median_s")
        );
    }
    // For comparison: the same grid on one thread with every run computing its own averages
    // (what the sweep did before it shared SMA columns), on the first 100 combinations.
    let cpu0 = thread_cpu();
    let t = Instant::now();
    for combo in grid.iter().take(100) {
        let mut req = base.clone();
        req.strategy.params.extend(combo.iter().cloned());
        black_box(run_on(&req, small, &columns, &never, &mut |_, _| {}).unwrap());
    }
    let wall = t.elapsed();
    let cpu = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall,
    };
    println!(
        "  unshared averages, 100 combinations on 1 thread: {:.3} s CPU (x10 = {:.2} s CPU for 1,000)",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 10.0
    );
}
