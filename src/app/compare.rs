//! `backtest compare`: stored runs on the same candles, read from the rows the backtests and
//! their decisions wrote, put side by side with the block bootstrap of their difference; and the
//! stored run's HTML report with that comparison as a section.

use rust_decimal::Decimal;

use crate::app::backtest_compare::{RunToCompare, compare, initial_cash};
use crate::domain::backtest::compare::{Comparison, render_section};
use crate::domain::backtest::report::{ReportError, render_html_with};
use crate::domain::backtest::{BacktestResult, EquityCurve, Times};
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
    #[error(transparent)]
    Runs(#[from] crate::app::backtest_compare::CompareError),
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

/// The runs `ids` side by side, each after the first measured against it: read from the
/// store, computed by `backtest_compare::compare` (the TUI's comparison computes with it too).
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
        let cost = decisions::backtest_cost(store.conn(), id)?.full_cost_usd();
        runs.push((run, metrics, cost));
    }
    let inputs: Vec<RunToCompare<'_>> = runs
        .iter()
        .map(|(run, metrics, cost)| RunToCompare {
            id: run.id,
            strategy: &run.strategy,
            symbol: &run.symbol,
            interval: &run.interval,
            metrics,
            initial_cash: initial_cash(&run.parameters).unwrap_or(0.0),
            llm_cost_usd: *cost,
            equity_curve: &run.equity_curve,
        })
        .collect();
    let comparison = compare(&inputs, seed, resamples)?;
    Ok((comparison, runs.into_iter().map(|(run, ..)| run).collect()))
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
        equity: EquityCurve::from(run.equity_curve.iter().map(|(_, e)| *e).collect::<Vec<_>>()),
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
