//! `backtest compare`: stored runs on the same candles, read from the rows the backtests and
//! their decisions wrote, put side by side with the block bootstrap of their difference; and the
//! stored run's HTML report with that comparison as a section.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::app::leaderboard::initial_cash;
use crate::domain::backtest::compare::{ComparedPair, ComparedRun, Comparison, render_section};
use crate::domain::backtest::report::{ReportError, render_html_with};
use crate::domain::backtest::{BacktestResult, Times};
use crate::domain::decision::edge::{Interval95, bootstrap_difference, returns};
use crate::domain::market::Interval;
use crate::domain::market::candle::TimestampMs;
use crate::domain::money::Quote;
use crate::store::backtests::{self, BacktestRun};
use crate::store::{Store, StoreError, decisions};

/// Why runs cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("there is no backtest {0}: see `backtest list`")]
    NoRun(i64),
    #[error("backtest {id} is {status} and has no results to compare")]
    NoResults { id: i64, status: String },
    #[error(
        "backtest {run} is {run_candles} and backtest {base} is {base_candles}: compare runs on the same candles"
    )]
    DifferentCandles {
        run: i64,
        run_candles: String,
        base: i64,
        base_candles: String,
    },
    #[error(
        "backtests {run} and {base} share fewer than 3 candles: compare runs on the same period"
    )]
    TooFewCommon { run: i64, base: i64 },
    #[error("backtest {id}: {message}")]
    Interval { id: i64, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl CompareError {
    /// Whether the user asked for something that cannot be compared (not a failure to read).
    pub fn is_usage(&self) -> bool {
        !matches!(self, CompareError::Store(_) | CompareError::Report(_))
    }
}

/// The runs `ids` side by side, each after the first measured against it.
pub fn compare_runs(
    store: &Store,
    ids: &[i64],
    seed: u64,
    resamples: usize,
) -> Result<(Comparison, Vec<BacktestRun>), CompareError> {
    let mut runs = Vec::new();
    for &id in ids {
        let run = backtests::get(store.conn(), id)?.ok_or(CompareError::NoRun(id))?;
        let Some(metrics) = run.metrics.clone() else {
            return Err(CompareError::NoResults {
                id,
                status: run.status.to_string(),
            });
        };
        let cost = decisions::backtest_cost(store.conn(), id)?;
        let initial = initial_cash(&run.parameters).unwrap_or(0.0);
        let cost_usd = cost.full_cost_usd();
        let cost_f = cost_usd.to_f64().unwrap_or(0.0);
        let net = if initial > 0.0 {
            metrics.total_return_pct - cost_f / initial * 100.0
        } else {
            metrics.total_return_pct
        };
        let compared = ComparedRun {
            id,
            strategy: run.strategy.clone(),
            symbol: run.symbol.clone(),
            interval: run.interval.clone(),
            candles: metrics.candles,
            total_return_pct: metrics.total_return_pct,
            sharpe: metrics.sharpe,
            max_drawdown_pct: metrics.max_drawdown_pct,
            trades: metrics.trades,
            buy_and_hold_return_pct: metrics.buy_and_hold_return_pct,
            llm_cost_usd: cost_usd,
            return_net_of_cost_pct: net,
            cost_per_trade_usd: (metrics.trades > 0)
                .then(|| (cost_usd / Decimal::from(metrics.trades)).round_dp(6)),
        };
        runs.push((compared, run, initial, cost_f));
    }
    let Some((_, base, base_initial, base_cost)) = runs.first() else {
        return Ok((
            Comparison {
                runs: Vec::new(),
                differences: Vec::new(),
            },
            Vec::new(),
        ));
    };
    let interval: Interval =
        base.interval
            .parse()
            .map_err(|e: crate::domain::market::candle::InvalidInterval| {
                CompareError::Interval {
                    id: base.id,
                    message: e.to_string(),
                }
            })?;
    let mut pairs = Vec::new();
    for (_, run, initial, cost) in runs.iter().skip(1) {
        if run.symbol != base.symbol || run.interval != base.interval {
            return Err(CompareError::DifferentCandles {
                run: run.id,
                run_candles: format!("{} {}", run.symbol, run.interval),
                base: base.id,
                base_candles: format!("{} {}", base.symbol, base.interval),
            });
        }
        // The candles both curves hold, in time order.
        let theirs: BTreeMap<TimestampMs, f64> = run.equity_curve.iter().copied().collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (t, e) in &base.equity_curve {
            if let Some(o) = theirs.get(t) {
                a.push(*o);
                b.push(*e);
            }
        }
        if a.len() < 3 {
            return Err(CompareError::TooFewCommon {
                run: run.id,
                base: base.id,
            });
        }
        let Some(edge) = bootstrap_difference(
            &returns(&a),
            &returns(&b),
            interval.periods_per_year(),
            resamples,
            seed,
        ) else {
            continue;
        };
        // The LLM's cost is known exactly: it shifts the return difference, not its spread.
        let cost_shift = |c: f64, init: f64| if init > 0.0 { c / init } else { 0.0 };
        let shift = cost_shift(*cost, *initial) - cost_shift(*base_cost, *base_initial);
        let pct = |v: f64| (v - shift) * 100.0;
        pairs.push(ComparedPair {
            run: run.id,
            against: base.id,
            common_candles: a.len(),
            return_net_diff_pct: Interval95 {
                estimate: pct(edge.return_diff.estimate),
                low: pct(edge.return_diff.low),
                high: pct(edge.return_diff.high),
            },
            sharpe_diff: edge.sharpe_diff,
            block_len: edge.block_len,
            resamples: edge.resamples,
            seed: edge.seed,
        });
    }
    let (compared, stored): (Vec<ComparedRun>, Vec<BacktestRun>) =
        runs.into_iter().map(|(c, r, ..)| (c, r)).unzip();
    Ok((
        Comparison {
            runs: compared,
            differences: pairs,
        },
        stored,
    ))
}

/// A stored run as the report draws it: its metrics, trades and (possibly thinned) curve.
fn stored_result(run: &BacktestRun) -> Option<BacktestResult> {
    let metrics = run.metrics.clone()?;
    let times: Vec<TimestampMs> = run.equity_curve.iter().map(|(t, _)| *t).collect();
    let sizer = run
        .parameters
        .get("request")
        .unwrap_or(&run.parameters)
        .get("sizing")
        .map_or_else(String::new, |s| s.to_string().trim_matches('"').to_string());
    Some(BacktestResult {
        strategy: run.strategy.clone(),
        sizer,
        final_equity: Quote(Decimal::try_from(metrics.final_equity).unwrap_or_default()),
        metrics,
        trades: run.trades.clone(),
        equity: run.equity_curve.iter().map(|(_, e)| *e).collect(),
        times: Times::of(&times),
        rejections: Vec::new(),
    })
}

/// The HTML report of the comparison's first run (the one the others are measured against),
/// with the comparison as its last section. The price chart uses the candles the database
/// holds for the run's period (none for a run on a CSV file).
pub fn comparison_report(
    store: &Store,
    comparison: &Comparison,
    runs: &[BacktestRun],
) -> Result<String, CompareError> {
    let Some(base) = runs.first() else {
        return Ok(String::new());
    };
    let result = stored_result(base).ok_or_else(|| CompareError::NoResults {
        id: base.id,
        status: base.status.to_string(),
    })?;
    let closes: Vec<(TimestampMs, f64)> = match (
        base.interval.parse::<Interval>(),
        result.metrics.start,
        result.metrics.end,
    ) {
        (Ok(interval), Some(from), Some(to)) => crate::app::backtest::load_stored_candles(
            store,
            &base.symbol,
            interval,
            Some(from),
            Some(to + 1),
        )
        .unwrap_or_default()
        .iter()
        .map(|c| (c.open_time, c.close.to_f64()))
        .collect(),
        _ => Vec::new(),
    };
    let title = format!(
        "backtest {} {} {} {} compared with {}",
        base.id,
        base.strategy,
        base.symbol,
        base.interval,
        runs.iter()
            .skip(1)
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(render_html_with(
        &title,
        &result,
        &closes,
        Some(&render_section(comparison)),
    )?)
}
