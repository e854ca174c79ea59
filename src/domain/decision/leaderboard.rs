//! `decisions leaderboard`: engines, models and prompt templates ranked by return net of LLM
//! cost, from the recorded backtest runs (with buy-and-hold as the baseline) and from the
//! shadow books (a strategy's champion against its challenger). Every interval comes from the
//! block bootstrap in [`super::edge`], the one `backtest compare` uses. Pure: the rows the
//! engine wrote come in, ranked rows go out.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use super::TradingDecision;
use super::edge::{CostedSeries, Interval95, bootstrap_mean_net_return, returns, sharpe};
use super::shadow::{ShadowBook, ShadowFill};
use crate::domain::{Price, Quote};

/// What a leaderboard row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// Backtest runs of one engine, model and prompt.
    Backtest,
    /// Buying at the first candle and holding, over the periods of those runs.
    BuyAndHold,
    /// A strategy's primary engine, its decisions filled on a virtual book like the challenger's.
    Champion,
    /// A strategy's challenger on its shadow book.
    Challenger,
}

/// Who decided: the engine, its model and its prompt template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EngineKey {
    /// `llm`, `rules` or `buy-and-hold`.
    pub engine: String,
    pub model: Option<String>,
    /// The prompt template's version (a backtest) or the template a strategy names (a shadow
    /// book; `built-in` for the bundled one).
    pub prompt: Option<String>,
}

/// One recorded backtest run of an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSample {
    pub key: EngineKey,
    /// Starting cash, then the equity at each candle's close.
    pub equity: Vec<f64>,
    pub total_return_pct: f64,
    pub buy_and_hold_return_pct: f64,
    /// The candles it ran on (symbol, interval, first and last candle), so that buy-and-hold
    /// counts each period once.
    pub period: (String, String, Option<i64>, Option<i64>),
    /// What its LLM decisions cost at live prices (cached ones at their first price).
    pub cost_usd: Decimal,
    pub sharpe: f64,
    pub trades: usize,
}

/// A row of the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderboardRow {
    pub kind: RowKind,
    #[serde(flatten)]
    pub key: EngineKey,
    /// The strategy of a shadow book.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Backtest runs (or buy-and-hold periods) averaged in the row, or a book's decision cycles.
    pub count: usize,
    /// Mean total return, percent.
    pub return_pct: f64,
    /// LLM cost over all the row's runs or cycles.
    pub cost_usd: Decimal,
    /// Mean total return net of each run's cost as a share of its starting cash, percent.
    pub return_net_of_cost_pct: f64,
    /// 95 % block-bootstrap interval of the net return, percent (`None`: too few periods, or a
    /// baseline without an equity curve).
    pub interval_pct: Option<Interval95>,
    /// Mean annualised Sharpe ratio (`None` for buy-and-hold).
    pub sharpe: Option<f64>,
    /// Entries and exits (`None` for buy-and-hold).
    pub trades: Option<usize>,
}

fn cost_fraction(cost: Decimal, initial: f64) -> f64 {
    if initial > 0.0 {
        cost.to_f64().unwrap_or(0.0) / initial
    } else {
        0.0
    }
}

fn to_pct(i: Interval95) -> Interval95 {
    Interval95 {
        estimate: i.estimate * 100.0,
        low: i.low * 100.0,
        high: i.high * 100.0,
    }
}

/// Best first by return net of cost; ties keep a stable order by key.
fn rank(rows: &mut [LeaderboardRow]) {
    rows.sort_by(|a, b| {
        b.return_net_of_cost_pct
            .total_cmp(&a.return_net_of_cost_pct)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.strategy.cmp(&b.strategy))
    });
}

/// Backtest runs grouped by engine, model and prompt, plus one buy-and-hold row over the
/// distinct periods they ran on; ranked.
pub fn rank_backtests(samples: &[RunSample], resamples: usize, seed: u64) -> Vec<LeaderboardRow> {
    let mut groups: BTreeMap<&EngineKey, Vec<&RunSample>> = BTreeMap::new();
    for s in samples {
        groups.entry(&s.key).or_default().push(s);
    }
    let mut rows = Vec::new();
    for (key, runs) in groups {
        let n = runs.len() as f64;
        let rets: Vec<Vec<f64>> = runs.iter().map(|r| returns(&r.equity)).collect();
        let fractions: Vec<f64> = runs
            .iter()
            .map(|r| cost_fraction(r.cost_usd, r.equity.first().copied().unwrap_or(0.0)))
            .collect();
        let series: Vec<CostedSeries<'_>> = rets
            .iter()
            .zip(&fractions)
            .map(|(r, &cost_fraction)| CostedSeries {
                returns: r,
                cost_fraction,
            })
            .collect();
        let return_pct = runs.iter().map(|r| r.total_return_pct).sum::<f64>() / n;
        let net = runs
            .iter()
            .zip(&fractions)
            .map(|(r, f)| r.total_return_pct - f * 100.0)
            .sum::<f64>()
            / n;
        rows.push(LeaderboardRow {
            kind: RowKind::Backtest,
            key: key.clone(),
            strategy: None,
            count: runs.len(),
            return_pct,
            cost_usd: runs.iter().map(|r| r.cost_usd).sum(),
            return_net_of_cost_pct: net,
            interval_pct: bootstrap_mean_net_return(&series, resamples, seed).map(to_pct),
            sharpe: Some(runs.iter().map(|r| r.sharpe).sum::<f64>() / n),
            trades: Some(runs.iter().map(|r| r.trades).sum()),
        });
    }
    let periods: BTreeMap<_, f64> = samples
        .iter()
        .map(|s| (&s.period, s.buy_and_hold_return_pct))
        .collect();
    if !periods.is_empty() {
        let mean = periods.values().sum::<f64>() / periods.len() as f64;
        rows.push(LeaderboardRow {
            kind: RowKind::BuyAndHold,
            key: EngineKey {
                engine: "buy-and-hold".into(),
                model: None,
                prompt: None,
            },
            strategy: None,
            count: periods.len(),
            return_pct: mean,
            cost_usd: Decimal::ZERO,
            return_net_of_cost_pct: mean,
            interval_pct: None,
            sharpe: None,
            trades: None,
        });
    }
    rank(&mut rows);
    rows
}

/// One decision cycle of a virtual book: the price the decision saw, and the fill it got.
#[derive(Debug, Clone, PartialEq)]
pub struct BookCycle {
    pub symbol: String,
    pub price: Price,
    pub fill: Option<ShadowFill>,
    pub cost_usd: Decimal,
}

/// The cycles of a champion's decisions filled on a virtual book by the rule the challenger's
/// book follows ([`ShadowBook::fill_for`], no risk gate on either), so the two compare like
/// for like. `decisions` are the champion's valid decisions, oldest first, each with the price
/// it saw and its cost.
pub fn champion_cycles(
    starting_cash: Quote,
    fee_rate: Decimal,
    decisions: &[(TradingDecision, Price, Decimal)],
) -> Vec<BookCycle> {
    let mut book = ShadowBook::new(starting_cash);
    decisions
        .iter()
        .map(|(decision, price, cost)| {
            let fill = book.fill_for(decision, *price, fee_rate);
            if let Some(f) = &fill {
                book.apply(f);
            }
            BookCycle {
                symbol: decision.symbol.clone(),
                price: *price,
                fill,
                cost_usd: *cost,
            }
        })
        .collect()
}

/// Starting cash, then the book's equity after each cycle, each symbol marked at the last
/// price a cycle saw for it.
pub fn book_equity(starting_cash: Quote, cycles: &[BookCycle]) -> Vec<f64> {
    let mut book = ShadowBook::new(starting_cash);
    let mut marks = BTreeMap::new();
    let mut out = Vec::with_capacity(cycles.len() + 1);
    out.push(starting_cash.0.to_f64().unwrap_or(0.0));
    for c in cycles {
        marks.insert(c.symbol.clone(), c.price);
        if let Some(f) = &c.fill {
            book.apply(f);
        }
        out.push(book.equity(&marks).0.to_f64().unwrap_or(0.0));
    }
    out
}

/// A shadow book's row: the strategy's champion or challenger over its decision cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct BookSample {
    pub kind: RowKind,
    pub key: EngineKey,
    pub strategy: String,
    pub starting_cash: Quote,
    pub cycles: Vec<BookCycle>,
    /// The strategy's candle interval in periods per year, for the Sharpe ratio.
    pub periods_per_year: f64,
}

/// Shadow books, ranked.
pub fn rank_books(books: &[BookSample], resamples: usize, seed: u64) -> Vec<LeaderboardRow> {
    let mut rows: Vec<LeaderboardRow> = books
        .iter()
        .map(|b| {
            let equity = book_equity(b.starting_cash, &b.cycles);
            let r = returns(&equity);
            let initial = equity.first().copied().unwrap_or(0.0);
            let last = equity.last().copied().unwrap_or(initial);
            let cost: Decimal = b.cycles.iter().map(|c| c.cost_usd).sum();
            let fraction = cost_fraction(cost, initial);
            let return_pct = if initial > 0.0 {
                (last / initial - 1.0) * 100.0
            } else {
                0.0
            };
            let series = [CostedSeries {
                returns: &r,
                cost_fraction: fraction,
            }];
            LeaderboardRow {
                kind: b.kind,
                key: b.key.clone(),
                strategy: Some(b.strategy.clone()),
                count: b.cycles.len(),
                return_pct,
                cost_usd: cost,
                return_net_of_cost_pct: return_pct - fraction * 100.0,
                interval_pct: bootstrap_mean_net_return(&series, resamples, seed).map(to_pct),
                sharpe: Some(sharpe(&r, b.periods_per_year)),
                trades: Some(b.cycles.iter().filter(|c| c.fill.is_some()).count()),
            }
        })
        .collect();
    rank(&mut rows);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::Action;
    use rust_decimal_macros::dec;

    fn key(engine: &str, model: Option<&str>) -> EngineKey {
        EngineKey {
            engine: engine.into(),
            model: model.map(str::to_string),
            prompt: None,
        }
    }

    fn run(engine: &str, step: f64, periods: usize, cost: Decimal) -> RunSample {
        // 1 000 starting cash growing by `step` a candle.
        let equity: Vec<f64> = (0..=periods)
            .map(|i| 1000.0 * (1.0 + step).powi(i as i32))
            .collect();
        RunSample {
            key: key(engine, (engine == "llm").then_some("m")),
            total_return_pct: (equity[periods] / 1000.0 - 1.0) * 100.0,
            equity,
            buy_and_hold_return_pct: 5.0,
            period: ("BTCUSDT".into(), "1h".into(), Some(0), Some(1)),
            cost_usd: cost,
            sharpe: 1.0,
            trades: 2,
        }
    }

    #[test]
    fn backtests_rank_by_return_net_of_cost_with_buy_and_hold_counted_once_per_period() {
        // llm: +1 % a candle over 10 candles (10.4622 %) less $20 on 1 000 (2 points);
        // rules: +0.5 % a candle (5.1140 %), free; buy-and-hold 5 % on the one shared period.
        let rows = rank_backtests(
            &[
                run("llm", 0.01, 10, dec!(20)),
                run("rules", 0.005, 10, dec!(0)),
            ],
            200,
            7,
        );
        let names: Vec<&str> = rows.iter().map(|r| r.key.engine.as_str()).collect();
        assert_eq!(names, ["llm", "rules", "buy-and-hold"]);
        let llm = &rows[0];
        let gross = (1.01f64.powi(10) - 1.0) * 100.0;
        assert!((llm.return_pct - gross).abs() < 1e-9);
        assert!((llm.return_net_of_cost_pct - (gross - 2.0)).abs() < 1e-9);
        // A constant return resamples to itself: the interval is the point.
        let i = llm.interval_pct.unwrap();
        for v in [i.estimate, i.low, i.high] {
            assert!((v - (gross - 2.0)).abs() < 1e-9, "{i:?}");
        }
        assert_eq!(rows[2].count, 1);
        assert_eq!(rows[2].return_net_of_cost_pct, 5.0);
        assert_eq!(rows[2].interval_pct, None);
    }

    fn decision(action: Action) -> TradingDecision {
        let mut d = TradingDecision::hold("BTCUSDT", "test");
        d.action = action;
        d.position_size_pct = 50.0;
        d
    }

    #[test]
    fn a_champion_replayed_on_a_virtual_book_gains_what_its_fills_gain() {
        // BUY half of 1 000 at 100 without fees, mark at 110, sell at 120: +10 % on 500.
        let cycles = champion_cycles(
            Quote(dec!(1000)),
            dec!(0),
            &[
                (decision(Action::Buy), Price(dec!(100)), dec!(0.5)),
                (decision(Action::Hold), Price(dec!(110)), dec!(0.5)),
                (decision(Action::Sell), Price(dec!(120)), dec!(0)),
            ],
        );
        assert_eq!(
            book_equity(Quote(dec!(1000)), &cycles),
            [1000.0, 1000.0, 1050.0, 1100.0]
        );
        let rows = rank_books(
            &[BookSample {
                kind: RowKind::Champion,
                key: key("llm", Some("m")),
                strategy: "s".into(),
                starting_cash: Quote(dec!(1000)),
                cycles,
                periods_per_year: 8760.0,
            }],
            100,
            1,
        );
        let row = &rows[0];
        assert_eq!((row.count, row.trades, row.cost_usd), (3, Some(2), dec!(1)));
        assert!((row.return_pct - 10.0).abs() < 1e-9);
        assert!((row.return_net_of_cost_pct - 9.9).abs() < 1e-9);
        let i = row.interval_pct.unwrap();
        assert!((i.estimate - 9.9).abs() < 1e-9 && i.low <= i.high, "{i:?}");
    }
}
