//! Ranked sweeps: every combination is run for its ranking metric alone, and only the best few
//! are run again for their full metrics (unless every run's are asked for). A sweep ranked by
//! return keeps no per-candle statistics for most of its runs: only their last equity point.

use super::backtest::{
    BacktestRequest, BacktestRunError, SweepRun, build_with, rank_value, run_metrics_shared,
};
use crate::domain::backtest::{BacktestService, Metrics, SharedColumns};
use crate::domain::market::candle::{Candle, CandleColumns};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many of a ranked sweep's best runs get their full metrics by default: the table shows as
/// many.
pub const FULL_METRICS_TOP: usize = 20;

/// How a sweep ranks its runs, and which of them keep full metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRanking<'a> {
    /// The metric runs are ranked by (see [`rank_value`]).
    pub rank_by: &'a str,
    /// Full metrics for the best this many runs; `None`: for every run.
    pub full_metrics_top: Option<usize>,
}

/// The key a run is ranked by (higher first): its score, or minus infinity when it has none (it
/// did not run, or its metric is undefined).
pub fn rank_key(run: &SweepRun) -> f64 {
    run.score.unwrap_or(f64::NEG_INFINITY)
}

/// Grid positions best first: by key, equal keys in grid order (a stable sort). The one order a
/// sweep, its shards and their merge all rank by.
pub fn rank_order(keys: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]));
    order
}

/// Drop the metrics of every run after the first `top` of `ranked` (best first): what a ranked
/// sweep reports, and what a merge of its shards reduces them to.
pub fn keep_metrics_of_top(ranked: &mut [SweepRun], top: usize) {
    for run in ranked.iter_mut().skip(top) {
        run.metrics = None;
    }
}

/// Run `f` over `0..count` on `threads` workers (each takes the next index from a shared
/// counter), results in index order; stops taking new indices once `cancel` is set (the result
/// then misses the indices not run).
pub(crate) fn par_map<T: Send>(
    count: usize,
    threads: usize,
    cancel: &AtomicBool,
    f: &(dyn Fn(usize) -> T + Sync),
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let out = f(i);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(out);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// `base` with the combination's parameters.
pub(crate) fn combination(base: &BacktestRequest, params: &[(String, f64)]) -> BacktestRequest {
    let mut req = base.clone();
    for (k, v) in params {
        req.strategy.params.insert(k.clone(), *v);
    }
    req
}

/// The ranking metric of one run, with the full metrics when they came with it: a run ranked by
/// return keeps only its last equity point; any other metric needs the curve's statistics,
/// which give every metric.
fn score_run(
    req: &BacktestRequest,
    rank_by: &str,
    candles: &[Candle],
    columns: &CandleColumns,
    shared: &SharedColumns<'_>,
    cancel: &AtomicBool,
) -> Result<(Option<f64>, Option<Metrics>), BacktestRunError> {
    if matches!(rank_by, "total_return" | "return") {
        let (config, engine) = build_with(req, Some(shared))?;
        let total_return =
            BacktestService::run_builtin_total_return(&config, engine, candles, columns, cancel)?;
        return Ok((Some(total_return), None));
    }
    let metrics = run_metrics_shared(req, candles, columns, Some(shared), cancel)?;
    Ok((rank_value(rank_by, &metrics), Some(metrics)))
}

/// Run every combination of `grid` for its score by `ranking.rank_by`, then the best
/// `ranking.full_metrics_top` again for their full metrics (every run keeps its full metrics
/// when that is `None`). Results in grid order, each with its `score`; the metrics of the runs
/// after the top are dropped, so that the result does not depend on the metric ranked by.
/// Indicator columns are computed once per distinct period and shared by all the runs.
/// `on_done` is told how many combinations have been scored.
#[allow(clippy::too_many_arguments)]
pub fn run_sweep_ranked(
    base: &BacktestRequest,
    grid: &[Vec<(String, f64)>],
    ranking: SweepRanking<'_>,
    candles: &[Candle],
    columns: &CandleColumns,
    threads: usize,
    cancel: &AtomicBool,
    on_done: &(dyn Fn(usize) + Sync),
) -> Vec<SweepRun> {
    let shared = SharedColumns::new(&columns.close);
    let done = AtomicUsize::new(0);
    let rank_by = ranking.rank_by;
    let mut runs = par_map(grid.len(), threads, cancel, &|i| {
        let req = combination(base, &grid[i]);
        let run = match ranking.full_metrics_top {
            // Every run's metrics asked for: the full run, scored from its metrics.
            None => run_metrics_shared(&req, candles, columns, Some(&shared), cancel)
                .map(|m| (rank_value(rank_by, &m), Some(m))),
            Some(_) => score_run(&req, rank_by, candles, columns, &shared, cancel),
        };
        let run = match run {
            Ok((score, metrics)) => SweepRun {
                params: grid[i].clone(),
                error: None,
                score,
                metrics,
            },
            Err(e) => SweepRun {
                params: grid[i].clone(),
                error: Some(e.to_string()),
                score: None,
                metrics: None,
            },
        };
        on_done(done.fetch_add(1, Ordering::Relaxed) + 1);
        run
    });
    let Some(top) = ranking.full_metrics_top else {
        return runs;
    };
    if runs.len() < grid.len() {
        // Cancelled part way: what ran, scored.
        return runs;
    }
    let keys: Vec<f64> = runs.iter().map(rank_key).collect();
    let order = rank_order(&keys);
    let (best, rest) = order.split_at(top.min(order.len()));
    for &i in rest {
        runs[i].metrics = None;
    }
    // The best runs without their metrics yet (they were ranked by return) run again in full.
    let missing: Vec<usize> = best
        .iter()
        .copied()
        .filter(|&i| runs[i].error.is_none() && runs[i].metrics.is_none())
        .collect();
    let full = par_map(missing.len(), threads, cancel, &|k| {
        let req = combination(base, &grid[missing[k]]);
        run_metrics_shared(&req, candles, columns, Some(&shared), cancel).ok()
    });
    for (&i, metrics) in missing.iter().zip(full) {
        runs[i].metrics = metrics;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::backtest::{CandleSource, SizingChoice, run_sweep, sweep_grid};
    use crate::domain::backtest::{Costs, FillModel, StrategySpec};
    use crate::domain::market::Interval;
    use crate::domain::money::{Price, Qty, Quote};
    use crate::domain::risk::RiskConfig;
    use rust_decimal::Decimal;

    fn candles(n: usize) -> Vec<Candle> {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut price: i64 = 2_000_000;
        (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let open = price;
                price = (price + (state % 2001) as i64 - 1000).max(10_000);
                Candle {
                    open_time: 1_700_000_000_000 + i as i64 * 60_000,
                    open: Price(Decimal::new(open, 2)),
                    high: Price(Decimal::new(open.max(price) + 300, 2)),
                    low: Price(Decimal::new(open.min(price) - 300, 2)),
                    close: Price(Decimal::new(price, 2)),
                    volume: Qty(Decimal::ONE),
                }
            })
            .collect()
    }

    fn base() -> BacktestRequest {
        BacktestRequest {
            strategy: StrategySpec {
                name: "sma-cross".into(),
                params: Default::default(),
            },
            symbol: "BTCUSDT".into(),
            interval: Interval::M1,
            from: None,
            to: None,
            source: CandleSource::Store,
            initial_cash: Quote(Decimal::new(100_000, 0)),
            costs: Costs::default(),
            fill: FillModel::Close,
            sizing: SizingChoice::AllIn,
            risk: RiskConfig::default(),
        }
    }

    /// Ranked by return (the last equity point alone) or by sharpe (the curve's statistics):
    /// every run's score is its full metrics' value bit for bit, the best `top` keep their full
    /// metrics (the full runs' own), the rest none; with no top every run keeps them.
    #[test]
    fn a_ranked_sweep_scores_every_run_and_keeps_the_full_metrics_of_the_best_only() {
        let data = candles(3_000);
        let columns = CandleColumns::from_candles(&data);
        let axes: Vec<_> = ["fast=2..12:2", "slow=8..40:8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let grid = sweep_grid(&axes);
        let never = AtomicBool::new(false);
        let full = run_sweep(&base(), &grid, &data, &columns, 2, &never, &|_| {});
        assert!(
            full.iter().any(|r| r.error.is_some()),
            "fast >= slow is skipped"
        );
        for rank_by in ["total_return", "sharpe"] {
            let top = 4;
            let ranking = SweepRanking {
                rank_by,
                full_metrics_top: Some(top),
            };
            // No decimal candles: the columns hold them exactly.
            let runs = run_sweep_ranked(&base(), &grid, ranking, &[], &columns, 2, &never, &|_| {});
            assert_eq!(runs.len(), grid.len());
            let keys: Vec<f64> = full
                .iter()
                .map(|r| {
                    r.metrics
                        .as_ref()
                        .and_then(|m| rank_value(rank_by, m))
                        .unwrap_or(f64::NEG_INFINITY)
                })
                .collect();
            let order = rank_order(&keys);
            for (k, &i) in order.iter().enumerate() {
                let (run, whole) = (&runs[i], &full[i]);
                assert_eq!(run.params, whole.params);
                assert_eq!(run.error, whole.error);
                assert_eq!(rank_key(run).to_bits(), keys[i].to_bits(), "{rank_by} {i}");
                let kept = k < top && whole.error.is_none();
                assert_eq!(run.metrics.is_some(), kept, "{rank_by} rank {k}");
                if kept {
                    assert_eq!(format!("{:?}", run.metrics), format!("{:?}", whole.metrics));
                }
            }
            let all = SweepRanking {
                rank_by,
                full_metrics_top: None,
            };
            let every = run_sweep_ranked(&base(), &grid, all, &data, &columns, 1, &never, &|_| {});
            for (run, whole) in every.iter().zip(&full) {
                assert_eq!(format!("{:?}", run.metrics), format!("{:?}", whole.metrics));
            }
        }
    }
}
