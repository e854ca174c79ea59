//! The leaderboard's read model: the recorded backtest runs of the `llm` and `rules` engines
//! and the strategies' shadow books, read from the rows the engine wrote and ranked by
//! [`crate::domain::decision::leaderboard`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::app::decide::template_version;
use crate::app::shadow::{Challenger, SHADOW_OUTCOME, book_terms};
use crate::config::Settings;
use crate::domain::backtest::RunStatus;
use crate::domain::decision::leaderboard::{
    BookCycle, BookSample, EngineKey, LeaderboardRow, RowKind, RunSample, champion_cycles,
    rank_backtests, rank_books,
};
use crate::domain::decision::{DecisionInput, TradingDecision};
use crate::domain::market::Interval;
use crate::services::llm::load_template;
use crate::store::decisions::{DecisionRow, backtest_cost, full_cost, of_strategy};
use crate::store::strategies::list_strategies;
use crate::store::{Store, StoreResult, backtests, shadow};

/// Both tables, best first, and the bootstrap that drew their intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    /// Backtest runs per engine, model and prompt, and buy-and-hold over their periods.
    pub backtests: Vec<LeaderboardRow>,
    /// Each strategy with a challenger: its champion and its challenger on virtual books.
    pub shadow: Vec<LeaderboardRow>,
    pub resamples: usize,
    pub seed: u64,
}

impl Leaderboard {
    pub fn is_empty(&self) -> bool {
        self.backtests.is_empty() && self.shadow.is_empty()
    }
}

pub use crate::app::backtest_compare::initial_cash;

fn text(v: &serde_json::Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Completed runs of the decision engines (`backtest --engine llm|rules`).
fn run_samples(store: &Store) -> StoreResult<Vec<RunSample>> {
    let mut out = Vec::new();
    for run in backtests::list_full(store.conn(), usize::MAX)? {
        let p = &run.parameters;
        let engine = match p["engine"].as_str() {
            Some(e @ ("llm" | "rules")) => e.to_string(),
            _ => continue,
        };
        let (RunStatus::Completed, Some(metrics)) = (run.status, &run.metrics) else {
            continue;
        };
        let Some(initial) = initial_cash(p).filter(|c| *c > 0.0) else {
            continue;
        };
        let mut equity = Vec::with_capacity(run.equity_curve.len() + 1);
        equity.push(initial);
        equity.extend(run.equity_curve.iter().map(|(_, e)| *e));
        out.push(RunSample {
            key: EngineKey {
                engine,
                model: text(&p["model"]),
                prompt: text(&p["prompt_template_version"]),
            },
            equity,
            total_return_pct: metrics.total_return_pct,
            buy_and_hold_return_pct: metrics.buy_and_hold_return_pct,
            period: (
                run.symbol.clone(),
                run.interval.clone(),
                metrics.start,
                metrics.end,
            ),
            cost_usd: backtest_cost(store.conn(), run.id)?.full_cost_usd(),
            sharpe: metrics.sharpe,
            trades: metrics.trades,
        });
    }
    Ok(out)
}

/// A prompt template as the leaderboard names it: its version, as a backtest records it, or
/// the path when the file cannot be read any more.
fn prompt_label(path: Option<&Path>) -> String {
    match load_template(path) {
        Ok(t) => template_version(&t),
        Err(_) => path.map_or_else(|| "built-in".into(), |p| p.display().to_string()),
    }
}

/// The price a decision saw, read back through its input type.
fn price_of(row: &DecisionRow) -> Option<crate::domain::Price> {
    serde_json::from_str::<DecisionInput>(&row.fields.input_snapshot)
        .ok()
        .map(|i| i.price)
}

fn last_model(rows: &[&DecisionRow]) -> Option<String> {
    rows.iter().rev().find_map(|r| r.fields.model.clone())
}

/// The champion and challenger books of every strategy whose challenger has decided.
fn book_samples(store: &Store, settings: &Settings) -> StoreResult<Vec<BookSample>> {
    let (starting_cash, fee_rate) = book_terms(settings);
    let mut out = Vec::new();
    for strategy in list_strategies(store.conn())? {
        let rows = of_strategy(store.conn(), strategy.id)?;
        let (shadows, primaries): (Vec<&DecisionRow>, Vec<&DecisionRow>) = rows
            .iter()
            .partition(|r| r.fields.outcome == SHADOW_OUTCOME);
        if shadows.is_empty() {
            continue;
        }
        let fills: BTreeMap<i64, _> = shadow::fills_of(store.conn(), strategy.id)?
            .into_iter()
            .map(|f| (f.decision_id, f.fill))
            .collect();
        let mut challenger_cycles = Vec::new();
        for r in &shadows {
            let Some(price) = price_of(r) else { continue };
            challenger_cycles.push(BookCycle {
                symbol: r.fields.symbol.clone(),
                price,
                fill: fills.get(&r.id).cloned(),
                cost_usd: full_cost(r)?,
            });
        }
        // The champion's decisions that an engine stood behind: invalid and failed ones
        // never traded, as the challenger's never fill.
        let mut decisions = Vec::new();
        for r in primaries
            .iter()
            .filter(|r| !matches!(r.fields.outcome.as_str(), "invalid" | "error"))
        {
            let decision = r
                .fields
                .decision
                .as_deref()
                .and_then(|d| serde_json::from_str::<TradingDecision>(d).ok());
            if let (Some(d), Some(price)) = (decision, price_of(r)) {
                decisions.push((d, price, full_cost(r)?));
            }
        }
        let periods_per_year = strategy
            .interval
            .parse::<Interval>()
            .map_or(8760.0, Interval::periods_per_year);
        let challenger = Challenger::of(&strategy.parameters).unwrap_or_default();
        let champion_prompt = settings.llm.prompt_template.as_deref();
        let champion_llm = strategy.decision_engine == "llm";
        out.push(BookSample {
            kind: RowKind::Champion,
            key: EngineKey {
                engine: strategy.decision_engine.clone(),
                model: champion_llm.then(|| last_model(&primaries)).flatten(),
                prompt: champion_llm.then(|| prompt_label(champion_prompt)),
            },
            strategy: strategy.name.clone(),
            starting_cash,
            cycles: champion_cycles(starting_cash, fee_rate, &decisions),
            periods_per_year,
        });
        out.push(BookSample {
            kind: RowKind::Challenger,
            key: EngineKey {
                engine: "llm".into(),
                model: last_model(&shadows),
                prompt: Some(prompt_label(
                    challenger.prompt.as_deref().or(champion_prompt),
                )),
            },
            strategy: strategy.name.clone(),
            starting_cash,
            cycles: challenger_cycles,
            periods_per_year,
        });
    }
    Ok(out)
}

/// The leaderboard, with intervals from `resamples` block-bootstrap resamples seeded `seed`.
pub fn leaderboard(
    store: &Store,
    settings: &Settings,
    resamples: usize,
    seed: u64,
) -> StoreResult<Leaderboard> {
    Ok(Leaderboard {
        backtests: rank_backtests(&run_samples(store)?, resamples, seed),
        shadow: rank_books(&book_samples(store, settings)?, resamples, seed),
        resamples,
        seed,
    })
}
