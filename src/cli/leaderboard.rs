//! `trademind decisions leaderboard`: prints the leaderboard read model (`app::leaderboard`).

use anyhow::Result;

use super::Context;
use crate::app::leaderboard::leaderboard;
use crate::domain::decision::leaderboard::{LeaderboardRow, RowKind};

fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

fn print_table(rows: &[LeaderboardRow], count_label: &str) {
    println!(
        "{:>3}  {:<12} {:<12} {:<20} {:<16} {:>7} {:>9} {:>10} {:>9} {:>21} {:>7} {:>6}",
        "#",
        "book",
        "engine",
        "model",
        "prompt",
        count_label,
        "return %",
        "LLM cost $",
        "net %",
        "95 % CI of net %",
        "sharpe",
        "trades"
    );
    for (i, r) in rows.iter().enumerate() {
        let book = match (&r.kind, &r.strategy) {
            (RowKind::Backtest, _) => "backtest".to_string(),
            (RowKind::BuyAndHold, _) => "baseline".to_string(),
            (RowKind::Champion, s) => format!("{}:champ", or_dash(s.as_deref())),
            (RowKind::Challenger, s) => format!("{}:chall", or_dash(s.as_deref())),
        };
        println!(
            "{:>3}  {:<12} {:<12} {:<20} {:<16} {:>7} {:>9.2} {:>10} {:>9.2} {:>21} {:>7} {:>6}",
            i + 1,
            book,
            r.key.engine,
            or_dash(r.key.model.as_deref()),
            or_dash(r.key.prompt.as_deref()),
            r.count,
            r.return_pct,
            r.cost_usd.round_dp(4),
            r.return_net_of_cost_pct,
            r.interval_pct.map_or("-".to_string(), |c| format!(
                "{:+.2} .. {:+.2}",
                c.low, c.high
            )),
            r.sharpe.map_or("-".to_string(), |s| format!("{s:.3}")),
            r.trades.map_or("-".to_string(), |t| t.to_string()),
        );
    }
}

pub(crate) fn run(seed: u64, resamples: usize, ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let board = leaderboard(&store, ctx.settings(), resamples, seed)?;
    ctx.emit(&board, || {
        if board.is_empty() {
            println!(
                "nothing to rank yet: no completed `backtest --engine llm|rules` run and no strategy whose challenger has decided. Run `trademind backtest --engine rules` (and `--engine llm`) on the same period, or give a strategy a challenger with `trademind strategy add ... --challenger-model MODEL`."
            );
            return;
        }
        if board.backtests.is_empty() {
            println!("Backtests: none yet (`trademind backtest --engine llm|rules`).");
        } else {
            println!(
                "Backtests, best first by return net of LLM cost (mean over runs; cost as a share of each run's starting cash):"
            );
            print_table(&board.backtests, "runs");
        }
        println!();
        if board.shadow.is_empty() {
            println!(
                "Shadow books: none yet (`trademind strategy add ... --challenger-model MODEL`, then run the daemon)."
            );
        } else {
            println!(
                "Shadow books, best first: each strategy's champion and challenger, both filled on a virtual book at the decision's price:"
            );
            print_table(&board.shadow, "cycles");
        }
        println!(
            "95 % CI: block bootstrap of the per-candle (per-cycle) returns, {} resamples, seed {} (the one `backtest compare` uses).",
            board.resamples, board.seed
        );
    })
}
