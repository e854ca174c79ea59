//! Stored runs on the same candles side by side (`backtest compare`): the typed comparison the
//! CLI prints, `--json` serialises and the HTML report's comparison section draws.

use rust_decimal::Decimal;
use serde::Serialize;
use std::fmt::Write;

use crate::domain::decision::edge::Interval95;

/// One run in a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedRun {
    pub id: i64,
    pub strategy: String,
    pub symbol: String,
    pub interval: String,
    pub candles: usize,
    pub total_return_pct: f64,
    pub sharpe: f64,
    pub max_drawdown_pct: f64,
    pub trades: usize,
    pub buy_and_hold_return_pct: f64,
    /// What the run's LLM decisions cost at live prices (cached ones at their first price).
    pub llm_cost_usd: Decimal,
    pub return_net_of_cost_pct: f64,
    pub cost_per_trade_usd: Option<Decimal>,
}

/// A run against the first one of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedPair {
    pub run: i64,
    pub against: i64,
    pub common_candles: usize,
    /// Difference in return net of LLM cost, percentage points, with its 95 % interval.
    pub return_net_diff_pct: Interval95,
    pub sharpe_diff: Interval95,
    pub block_len: usize,
    pub resamples: usize,
    pub seed: u64,
}

/// The whole comparison: every run, and each later run against the first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub runs: Vec<ComparedRun>,
    pub differences: Vec<ComparedPair>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report's comparison section: the runs' metrics side by side, their LLM cost and return
/// net of it, and each difference with its interval. Every figure sits in a cell with a
/// `data-field` naming the JSON field it shows, at the precision the CLI prints.
pub fn render_section(c: &Comparison) -> String {
    let mut h = String::from(
        "<h2 id=\"comparison\">Comparison</h2>\n<table id=\"compared-runs\">\n<tr><th>Run</th>\
         <th>Strategy</th><th>Return %</th><th>Sharpe</th><th>Max drawdown %</th>\
         <th>Trades</th><th>LLM cost $</th><th>Net of cost %</th><th>Cost per trade $</th></tr>\n",
    );
    for r in &c.runs {
        let _ = writeln!(
            h,
            "<tr data-run=\"{id}\"><td data-field=\"id\">{id}</td><td>{strategy}</td>\
             <td data-field=\"total_return_pct\">{ret:.2}</td>\
             <td data-field=\"sharpe\">{sharpe:.3}</td>\
             <td data-field=\"max_drawdown_pct\">{dd:.2}</td>\
             <td data-field=\"trades\">{trades}</td>\
             <td data-field=\"llm_cost_usd\">{cost}</td>\
             <td data-field=\"return_net_of_cost_pct\">{net:.2}</td>\
             <td data-field=\"cost_per_trade_usd\">{per}</td></tr>",
            id = r.id,
            strategy = esc(&r.strategy),
            ret = r.total_return_pct,
            sharpe = r.sharpe,
            dd = r.max_drawdown_pct,
            trades = r.trades,
            cost = r.llm_cost_usd.round_dp(4),
            net = r.return_net_of_cost_pct,
            per = r
                .cost_per_trade_usd
                .map_or("-".to_string(), |d| d.round_dp(4).to_string()),
        );
    }
    if let Some(first) = c.runs.first() {
        let _ = writeln!(
            h,
            "<tr data-run=\"buy-and-hold\"><td>-</td><td>buy-and-hold</td>\
             <td data-field=\"buy_and_hold_return_pct\">{:.2}</td><td colspan=\"6\">baseline over \
             the same candles</td></tr>",
            first.buy_and_hold_return_pct
        );
    }
    h.push_str(
        "</table>\n<table id=\"compared-differences\">\n<tr><th>Run</th><th>Minus run</th>\
         <th>Common candles</th><th>Net return difference (points)</th><th>95 % CI</th>\
         <th>Sharpe difference</th><th>95 % CI</th></tr>\n",
    );
    for p in &c.differences {
        let _ = writeln!(
            h,
            "<tr data-run=\"{run}\" data-against=\"{against}\"><td>{run}</td><td>{against}</td>\
             <td data-field=\"common_candles\">{n}</td>\
             <td data-field=\"return_net_diff_pct.estimate\">{re:+.2}</td>\
             <td><span data-field=\"return_net_diff_pct.low\">{rl:+.2}</span> .. \
             <span data-field=\"return_net_diff_pct.high\">{rh:+.2}</span></td>\
             <td data-field=\"sharpe_diff.estimate\">{se:+.3}</td>\
             <td><span data-field=\"sharpe_diff.low\">{sl:+.3}</span> .. \
             <span data-field=\"sharpe_diff.high\">{sh:+.3}</span></td></tr>",
            run = p.run,
            against = p.against,
            n = p.common_candles,
            re = p.return_net_diff_pct.estimate,
            rl = p.return_net_diff_pct.low,
            rh = p.return_net_diff_pct.high,
            se = p.sharpe_diff.estimate,
            sl = p.sharpe_diff.low,
            sh = p.sharpe_diff.high,
        );
    }
    h.push_str("</table>\n");
    if let Some(p) = c.differences.first() {
        let _ = writeln!(
            h,
            "<p>95 % intervals: paired block bootstrap of the per-candle returns, {} resamples of \
             {}-candle blocks, seed {}. The LLM's cost is known exactly: it shifts the return \
             difference, not its spread.</p>",
            p.resamples, p.block_len, p.seed
        );
    }
    h
}
