//! Stored backtest runs side by side: the arithmetic of `trademind backtest compare`, shared with
//! the TUI's comparison so both faces show the same numbers. Each run's return net of its LLM
//! cost and cost per trade, and each later run against the first with 95 % block-bootstrap
//! intervals of the difference in return (net of cost) and Sharpe.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::collections::BTreeMap;

use crate::domain::backtest::Metrics;
pub use crate::domain::backtest::compare::{ComparedPair, ComparedRun, Comparison};
use crate::domain::decision::edge::{Interval95, bootstrap_difference, returns};
use crate::domain::market::Interval;
use crate::domain::market::candle::TimestampMs;

/// The bootstrap's default seed and draws (`backtest compare --seed --resamples`).
pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_RESAMPLES: usize = 2000;

/// What a comparison needs of one stored run.
#[derive(Debug, Clone)]
pub struct RunToCompare<'a> {
    pub id: i64,
    pub strategy: &'a str,
    pub symbol: &'a str,
    pub interval: &'a str,
    pub metrics: &'a Metrics,
    /// The starting cash the run's parameters name (0 when they name none).
    pub initial_cash: f64,
    /// What its LLM decisions cost at live prices (cached ones at their first price).
    pub llm_cost_usd: Decimal,
    /// (open time, equity) per candle.
    pub equity_curve: &'a [(TimestampMs, f64)],
}

/// Why runs cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    #[error("compare two or more runs")]
    TooFewRuns,
    #[error("backtest {id} has interval {interval:?}, which is not one the backtester knows")]
    BadInterval { id: i64, interval: String },
    #[error(
        "backtest {run} is {run_market} and backtest {base} is {base_market}: compare runs on the same candles"
    )]
    DifferentMarkets {
        run: i64,
        run_market: String,
        base: i64,
        base_market: String,
    },
    #[error(
        "backtests {run} and {base} share fewer than 3 candles: compare runs on the same period"
    )]
    TooFewCommonCandles { run: i64, base: i64 },
}

/// The starting cash a stored run's parameters name (a plain run stores the request; an
/// engine run nests it under `request`).
pub fn initial_cash(parameters: &serde_json::Value) -> Option<f64> {
    let req = parameters.get("request").unwrap_or(parameters);
    match &req["initial_cash"] {
        serde_json::Value::String(s) => s.parse().ok(),
        v => v.as_f64(),
    }
}

/// One run's row: its metrics and its return net of LLM cost.
pub fn compared_run(run: &RunToCompare<'_>) -> ComparedRun {
    let m = run.metrics;
    let cost = run.llm_cost_usd.to_f64().unwrap_or(0.0);
    let net = if run.initial_cash > 0.0 {
        m.total_return_pct - cost / run.initial_cash * 100.0
    } else {
        m.total_return_pct
    };
    ComparedRun {
        id: run.id,
        strategy: run.strategy.to_string(),
        symbol: run.symbol.to_string(),
        interval: run.interval.to_string(),
        candles: m.candles,
        total_return_pct: m.total_return_pct,
        sharpe: m.sharpe,
        max_drawdown_pct: m.max_drawdown_pct,
        trades: m.trades,
        buy_and_hold_return_pct: m.buy_and_hold_return_pct,
        llm_cost_usd: run.llm_cost_usd,
        return_net_of_cost_pct: net,
        cost_per_trade_usd: (m.trades > 0)
            .then(|| (run.llm_cost_usd / Decimal::from(m.trades)).round_dp(6)),
    }
}

/// Every run's row and each later run against the first (`resamples` bootstrap draws from
/// `seed`: the same seed gives the same intervals).
pub fn compare(
    runs: &[RunToCompare<'_>],
    seed: u64,
    resamples: usize,
) -> Result<Comparison, CompareError> {
    let Some(base) = runs.first().filter(|_| runs.len() >= 2) else {
        return Err(CompareError::TooFewRuns);
    };
    let interval: Interval = base
        .interval
        .parse()
        .map_err(|_| CompareError::BadInterval {
            id: base.id,
            interval: base.interval.to_string(),
        })?;
    let share = |cost: Decimal, initial: f64| {
        let cost = cost.to_f64().unwrap_or(0.0);
        if initial > 0.0 { cost / initial } else { 0.0 }
    };
    let mut differences = Vec::new();
    for run in runs.iter().skip(1) {
        if run.symbol != base.symbol || run.interval != base.interval {
            return Err(CompareError::DifferentMarkets {
                run: run.id,
                run_market: format!("{} {}", run.symbol, run.interval),
                base: base.id,
                base_market: format!("{} {}", base.symbol, base.interval),
            });
        }
        // The candles both curves hold, in time order.
        let theirs: BTreeMap<TimestampMs, f64> = run.equity_curve.iter().copied().collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (t, e) in base.equity_curve {
            if let Some(o) = theirs.get(t) {
                a.push(*o);
                b.push(*e);
            }
        }
        if a.len() < 3 {
            return Err(CompareError::TooFewCommonCandles {
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
        let shift =
            share(run.llm_cost_usd, run.initial_cash) - share(base.llm_cost_usd, base.initial_cash);
        let pct = |v: f64| (v - shift) * 100.0;
        differences.push(ComparedPair {
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
    Ok(Comparison {
        runs: runs.iter().map(compared_run).collect(),
        differences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(ret: f64, trades: usize) -> Metrics {
        Metrics {
            total_return_pct: ret,
            trades,
            candles: 10,
            ..crate::tui::fixture::metrics()
        }
    }

    #[test]
    fn the_return_net_of_cost_takes_the_llm_cost_off_the_starting_cash() {
        let m = metrics(5.0, 4);
        let curve: Vec<(TimestampMs, f64)> = Vec::new();
        let run = RunToCompare {
            id: 1,
            strategy: "llm:grok",
            symbol: "BTCUSDT",
            interval: "1h",
            metrics: &m,
            initial_cash: 10_000.0,
            llm_cost_usd: Decimal::new(100, 0),
            equity_curve: &curve,
        };
        let row = compared_run(&run);
        // $100 of $10,000 is one point of return.
        assert!((row.return_net_of_cost_pct - 4.0).abs() < 1e-9);
        assert_eq!(row.cost_per_trade_usd, Some(Decimal::new(25, 0)));
    }

    #[test]
    fn runs_on_other_candles_are_refused_by_name() {
        let m = metrics(1.0, 1);
        let curve = vec![(0, 1.0), (1, 1.1), (2, 1.2), (3, 1.3)];
        let run = |id, symbol| RunToCompare {
            id,
            strategy: "sma-cross",
            symbol,
            interval: "1h",
            metrics: &m,
            initial_cash: 0.0,
            llm_cost_usd: Decimal::ZERO,
            equity_curve: &curve,
        };
        let err = compare(&[run(1, "BTCUSDT"), run(2, "ETHUSDT")], 42, 100).unwrap_err();
        assert!(err.to_string().contains("ETHUSDT 1h"), "{err}");
        assert_eq!(
            compare(&[run(1, "BTCUSDT")], 42, 100),
            Err(CompareError::TooFewRuns)
        );
        let ok = compare(&[run(1, "BTCUSDT"), run(2, "BTCUSDT")], 42, 100).unwrap();
        assert_eq!(ok.runs.len(), 2);
        assert_eq!(ok.differences.len(), 1);
        assert_eq!(ok.differences[0].common_candles, 4);
    }
}
