//! `trademind bench-indicators`: the fused indicator batch (`calculate_indicators`) timed in
//! this binary, as it is linked here, on a candle CSV (the speed anchors' 1M-candle series,
//! `../shared/bench/README.md`). `cargo bench --bench indicators` times the same function
//! linked into the bench; the two should agree, and did not before the hot loops were pinned
//! out of line (CHANGELOG).

use super::Context;
use crate::app::backtest::read_candles_csv;
use crate::domain::market::indicators::{
    IndicatorParams, Indicators, calculate_indicators, calculate_indicators_into,
};
use crate::domain::market::{CandleColumns, Interval};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BenchIndicatorsArgs {
    /// Candle CSV (`open_time,open,high,low,close,volume` or a Binance kline dump).
    #[arg(long)]
    pub data: PathBuf,
    /// Timed runs of each variant, after one untimed warm-up run; the median is shown.
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
}

/// Median wall times of the full default indicator set over the file's candles.
#[derive(Debug, Serialize)]
struct BenchReport {
    candles: usize,
    runs: u32,
    /// `calculate_indicators`: fresh output columns each run.
    fresh_median_ms: f64,
    /// `calculate_indicators_into`: the same output columns reused.
    reused_median_ms: f64,
}

fn median_ms(runs: u32, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

pub fn run(args: BenchIndicatorsArgs, ctx: &Context) -> Result<()> {
    // The indicators do not depend on the interval.
    let candles = read_candles_csv(&args.data, Interval::M1)?;
    let cols = CandleColumns::from_candles(&candles);
    drop(candles);
    let params = IndicatorParams::default();
    let fresh_median_ms = median_ms(args.runs, || {
        black_box(calculate_indicators(black_box(&cols), &params));
    });
    let mut reused = Indicators::default();
    let reused_median_ms = median_ms(args.runs, || {
        calculate_indicators_into(black_box(&cols), &params, &mut reused);
        black_box(&reused);
    });
    let report = BenchReport {
        candles: cols.len(),
        runs: args.runs,
        fresh_median_ms,
        reused_median_ms,
    };
    ctx.emit(&report, || {
        println!(
            "full indicator set over {} candles, median of {} runs (wall time): {:.2} ms with fresh columns, {:.2} ms into reused columns",
            report.candles, report.runs, report.fresh_median_ms, report.reused_median_ms
        );
    })
}
