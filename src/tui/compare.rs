//! The Backtests screen's comparison: runs marked with space are put side by side with `c`,
//! by the arithmetic of `trademind backtest compare` (`app::backtest_compare`), on the runs the
//! snapshot holds. Pure, like the rest of `update`.

use crate::app::backtest_compare::{
    DEFAULT_RESAMPLES, DEFAULT_SEED, RunToCompare, compare, compared_run,
};

use super::action::Screen;
use super::state::{App, StatusKind, StatusLine};

fn warn(app: &mut App, text: String) {
    app.status = Some(StatusLine {
        kind: StatusKind::Warning,
        text,
    });
}

/// Mark the selected run for a comparison, or unmark it.
pub(super) fn toggle_mark(app: &mut App) {
    let Some(run) = app.snapshot.backtests.get(app.selected(Screen::Backtests)) else {
        return;
    };
    let id = run.id;
    match app.backtest_marked.iter().position(|m| *m == id) {
        Some(i) => {
            app.backtest_marked.remove(i);
        }
        None => app.backtest_marked.push(id),
    }
}

/// Open the comparison of the marked runs, the first marked as the baseline; say why not when
/// it cannot be made.
pub(super) fn open(app: &mut App) {
    let runs: Vec<_> = app
        .backtest_marked
        .iter()
        .filter_map(|id| app.snapshot.backtests.iter().find(|b| b.id == *id))
        .collect();
    if runs.len() < 2 {
        warn(
            app,
            "mark two or more runs with space, then press c to compare them".into(),
        );
        return;
    }
    if let Some(b) = runs.iter().find(|b| b.metrics.is_none()) {
        let text = format!(
            "backtest #{} is {} and has no results to compare",
            b.id, b.status
        );
        warn(app, text);
        return;
    }
    let curves: Vec<Vec<(i64, f64)>> = runs
        .iter()
        .map(|b| {
            b.curve_times
                .iter()
                .copied()
                .zip(b.equity_curve.iter().copied())
                .collect()
        })
        .collect();
    let inputs: Vec<RunToCompare> = runs
        .iter()
        .zip(&curves)
        .filter_map(|(b, curve)| {
            Some(RunToCompare {
                id: b.id,
                strategy: &b.strategy,
                symbol: &b.symbol,
                interval: &b.interval,
                metrics: b.metrics.as_ref()?,
                initial_cash: b.initial_cash,
                llm_cost_usd: b.llm_cost_usd,
                equity_curve: curve,
            })
        })
        .collect();
    match compare(&inputs, DEFAULT_SEED, DEFAULT_RESAMPLES) {
        Ok(comparison) => {
            app.backtest_comparison = Some(comparison);
            app.backtest_detail = false;
        }
        Err(e) => {
            // Still worth a look side by side: the rows without the bootstrap differences.
            let rows = inputs.iter().map(compared_run).collect();
            app.backtest_comparison = Some(crate::app::backtest_compare::Comparison {
                runs: rows,
                differences: Vec::new(),
            });
            app.backtest_detail = false;
            warn(app, format!("no differences with intervals: {e}"));
        }
    }
}
