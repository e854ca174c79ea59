//! `backtest --engine llm|rules`: the decision engines run on every closed candle through the
//! backtest engine, with a cost estimate checked against `--max-cost` before the first call and
//! a progress bar that counts calls, cache hits and dollars.

use anyhow::{Context as _, Result};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::Context;
use super::backtest::{ctrl_c_flag, print_summary, progress_bar, usage};
use crate::app::backtest::{BacktestRequest, BacktestRunError, load_candles};
use crate::app::decide::{
    AnyEngine, EngineError, build_engine_with, rules_engine, template_version,
};
use crate::app::llm_backtest::{
    CostEstimate, CutoffSplit, EngineRun, RunTally, estimate_cost, run_engine_backtest,
    split_at_cutoff,
};
use crate::domain::Symbol;
use crate::domain::backtest::report::render_html;
use crate::domain::backtest::{StrategySpec, TradeRecord};
use crate::domain::decision::DecisionInput;
use crate::domain::market::candle::{Candle, TimestampMs};
use crate::domain::money::Quote;
use crate::services::llm::{PromptParts, SYSTEM_PROMPT, build_prompt, load_template};

/// Closed candles each snapshot's indicators are computed over (as `decide` uses at most 500).
const LOOKBACK: usize = 300;
/// Prompt characters allowed for the news block in the estimate: a full Tavily page of titles,
/// URLs and 600-character snippets.
const NEWS_CHARS_PER_ITEM: usize = 900;

#[derive(Serialize)]
struct EngineRunOutput<'a> {
    id: Option<i64>,
    engine: &'a str,
    model: Option<&'a str>,
    strategy: &'a str,
    symbol: &'a str,
    interval: crate::domain::market::Interval,
    sizing: crate::app::backtest::SizingChoice,
    final_equity: Quote,
    metrics: &'a crate::domain::backtest::Metrics,
    trades: &'a [TradeRecord],
    estimate: Option<&'a CostEstimate>,
    max_cost_usd: Option<Decimal>,
    llm: &'a RunTally,
    /// Metrics before and after the model's `llm.knowledge_cutoff`, when one is configured.
    knowledge_cutoff: Option<&'a CutoffSplit>,
}

/// The prompt length of a decision on the run's last candle, for the estimate.
fn sample_prompt_chars(
    template: &str,
    req: &BacktestRequest,
    candles: &[Candle],
    max_position_pct: f64,
    news_items: u32,
) -> usize {
    let Ok(symbol) = Symbol::new(&req.symbol) else {
        return 0;
    };
    let window = &candles[candles.len().saturating_sub(LOOKBACK)..];
    let at = candles
        .last()
        .map_or(0, |c: &Candle| c.close_time(req.interval));
    let Some(input) = DecisionInput::from_candles(symbol, req.interval, window, at) else {
        return 0;
    };
    let prompt = build_prompt(
        template,
        &input,
        &PromptParts {
            news: &[],
            max_position_pct,
        },
    );
    prompt.len() + SYSTEM_PROMPT.len() + news_items as usize * NEWS_CHARS_PER_ITEM
}

pub(crate) async fn run_engine_cmd(
    args: super::backtest::RunArgs,
    mut req: BacktestRequest,
    engine_name: &str,
    ctx: &Context,
) -> Result<()> {
    if !args.sweep.is_empty() || args.walk_forward.is_some() {
        return Err(usage(
            "--engine runs one backtest: it cannot be combined with --sweep or --walk-forward",
        ));
    }
    let mut settings = ctx.settings().clone();
    if let Some(model) = &args.model {
        settings.llm.model = model.clone();
    }
    if let Some(prompt) = &args.prompt {
        settings.llm.prompt_template = Some(prompt.clone());
    }
    let max_cost = args.max_cost.unwrap_or(settings.llm.backtest_max_cost_usd);
    if max_cost < Decimal::ZERO {
        return Err(usage(format!(
            "--max-cost {max_cost}: must not be negative"
        )));
    }
    let llm = engine_name == "llm";
    let label = if llm {
        format!("llm:{}", settings.llm.model)
    } else {
        "rules".to_string()
    };
    req.strategy = StrategySpec {
        name: label.clone(),
        params: BTreeMap::new(),
    };
    let store = ctx.open_store()?;
    let candles = load_candles(Some(&store), &req).map_err(|e| match e {
        e @ BacktestRunError::NoStoredCandles { .. } => usage(e.to_string()),
        other => other.into(),
    })?;
    if candles.is_empty() {
        return Err(usage("no candles in that period"));
    }
    let shared = Arc::new(Mutex::new(ctx.open_store()?));
    let mut estimate = None;
    let mut version = None;
    let engine = if llm {
        let key = super::decide::grok_key(ctx).await?;
        let engine = match build_engine_with(
            &settings,
            Some("llm"),
            shared.clone(),
            // A backtest raises no budget alerts: its cap is --max-cost.
            std::future::ready(None),
            key,
        )
        .await
        {
            Ok((engine, _)) => engine,
            Err(e @ EngineError::NoGrokKey) => {
                return Err(usage(format!("--engine llm: {e}")));
            }
            Err(e) => return Err(e.into()),
        };
        let template =
            load_template(settings.llm.prompt_template.as_deref()).with_context(|| {
                format!(
                    "cannot read the prompt template {:?}",
                    settings.llm.prompt_template
                )
            })?;
        version = Some(template_version(&template));
        let news_items = if settings.llm.tavily.enabled {
            settings.llm.tavily.max_results
        } else {
            0
        };
        let chars = sample_prompt_chars(
            &template,
            &req,
            &candles,
            settings.llm.max_position_pct,
            news_items,
        );
        let e = estimate_cost(&settings.llm, candles.len() as u64, chars);
        match e.usd {
            Some(usd) if usd > max_cost => {
                return Err(usage(format!(
                    "this run may cost up to ${} ({} calls of ~{} + {} tokens with {}), more than --max-cost ${max_cost}: raise --max-cost, shorten the period with --from/--to, or pick a cheaper --model (cached decisions cost nothing)",
                    usd.round_dp(4),
                    e.calls,
                    e.prompt_tokens_per_call,
                    e.completion_tokens_per_call,
                    settings.llm.model
                )));
            }
            Some(usd) if !ctx.json => eprintln!(
                "estimate: up to {} calls, ~{} + {} tokens each, at most ${} (cap ${max_cost}; cached decisions cost nothing)",
                e.calls,
                e.prompt_tokens_per_call,
                e.completion_tokens_per_call,
                usd.round_dp(4)
            ),
            Some(_) => {}
            None if !ctx.json => eprintln!(
                "estimate: up to {} calls; no price is configured for {} (llm.prices), so only the server's reported cost counts against the ${max_cost} cap",
                e.calls, settings.llm.model
            ),
            None => {}
        }
        estimate = Some(e);
        engine.for_backtest(max_cost)
    } else {
        AnyEngine::Rules(rules_engine(&settings))
    };
    let parameters = serde_json::json!({
        "request": &req,
        "engine": engine_name,
        "model": llm.then_some(&settings.llm.model),
        "prompt_template_version": version,
        "max_cost_usd": llm.then_some(max_cost),
    });
    let run = EngineRun {
        engine,
        label: label.clone(),
        lookback: LOOKBACK,
        recent_decisions: settings.llm.recent_decisions,
        max_position_pct: settings.llm.max_position_pct,
    };
    let bar = progress_bar(candles.len() as u64, ctx.json);
    bar.set_message(format!("{label} {}", req.symbol));
    let ticker = bar.clone();
    let tick_label = label.clone();
    let on_decision = Box::new(move |t: &RunTally| {
        ticker.set_position(t.decisions);
        ticker.set_message(format!(
            "{tick_label}: {} calls · {} cache hits · ${}",
            t.llm_calls,
            t.cache_hits,
            t.cost_usd.round_dp(4)
        ));
    });
    let handle = tokio::runtime::Handle::current();
    let (cancel, watcher) = ctrl_c_flag();
    let no_save = args.no_save;
    let job_req = req.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let now = || chrono::Utc::now().timestamp_millis();
        let db = (!no_save).then_some((&store, shared));
        let result = run_engine_backtest(
            db,
            &job_req,
            &parameters,
            run,
            handle,
            &candles,
            &cancel,
            on_decision,
            &now,
        );
        result.map(|(id, r, t)| (id, r, t, candles))
    })
    .await;
    watcher.abort();
    bar.finish_and_clear();
    let (id, result, tally, candles) = outcome.context("the backtest worker stopped")??;
    let title = format!(
        "{label} {} {} (fill {}, fees {} bps, slippage {} bps, sizing {:?})",
        req.symbol,
        req.interval,
        req.fill,
        (req.costs.taker_fee * Decimal::new(10_000, 0)).normalize(),
        (req.costs.slippage * Decimal::new(10_000, 0)).normalize(),
        req.sizing,
    );
    if let Some(path) = &args.report {
        let closes: Vec<(TimestampMs, f64)> = candles
            .iter()
            .map(|c| (c.open_time, c.close.to_f64()))
            .collect();
        let html = render_html(&title, &result, &closes)?;
        std::fs::write(path, html)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    let cutoff = llm
        .then(|| settings.llm.knowledge_cutoff.get(&settings.llm.model))
        .flatten()
        .and_then(|date| split_at_cutoff(&result, &candles, req.interval, req.initial_cash, date));
    if let Some(split) = &cutoff
        && split.whole_run_before_cutoff
    {
        // On stderr so that --json output stays one document.
        eprintln!(
            "warning: the whole run lies before {}'s knowledge cutoff ({}): the model may know what happened, so these results do not measure its skill",
            settings.llm.model, split.knowledge_cutoff
        );
    }
    let out = EngineRunOutput {
        id,
        engine: engine_name,
        model: llm.then_some(settings.llm.model.as_str()),
        strategy: &label,
        symbol: &req.symbol,
        interval: req.interval,
        sizing: req.sizing,
        final_equity: result.final_equity,
        metrics: &result.metrics,
        trades: &result.trades,
        estimate: estimate.as_ref(),
        max_cost_usd: llm.then_some(max_cost),
        llm: &tally,
        knowledge_cutoff: cutoff.as_ref(),
    };
    ctx.emit(&out, || {
        print_summary(&title, &req.symbol, id, &result);
        println!(
            "  {:<20} {} decisions, {} LLM calls, {} cache hits, {} failed",
            "Engine", tally.decisions, tally.llm_calls, tally.cache_hits, tally.failed
        );
        if llm {
            println!(
                "  {:<20} ${} spent now; ${} at live prices (cached decisions included)",
                "LLM cost",
                tally.cost_usd,
                tally.cost_usd + tally.cached_cost_usd
            );
        }
        if let Some(split) = &cutoff {
            let ret = |m: &Option<crate::domain::backtest::Metrics>| {
                m.as_ref().map_or("-".to_string(), |m| {
                    format!(
                        "{:.2} % over {} candles, sharpe {:.3}",
                        m.total_return_pct, m.candles, m.sharpe
                    )
                })
            };
            println!(
                "  {:<20} before {}: {}",
                "Knowledge cutoff",
                split.knowledge_cutoff,
                ret(&split.before)
            );
            println!("  {:<20} after: {}", "", ret(&split.after));
        }
        if let Some(path) = &args.report {
            println!("  report written to {}", path.display());
        }
    })
}

pub(crate) fn run_compare(ids: &[i64], seed: u64, resamples: usize, ctx: &Context) -> Result<()> {
    use crate::app::backtest_compare::{RunToCompare, compare, initial_cash};
    let store = ctx.open_store()?;
    let mut runs = Vec::new();
    for &id in ids {
        let run = crate::store::backtests::get(store.conn(), id)?
            .ok_or_else(|| usage(format!("there is no backtest {id}: see `backtest list`")))?;
        let Some(metrics) = run.metrics.clone() else {
            return Err(usage(format!(
                "backtest {id} is {} and has no results to compare",
                run.status
            )));
        };
        let cost = crate::store::decisions::backtest_cost(store.conn(), id)?;
        runs.push((run, metrics, cost.full_cost_usd()));
    }
    let inputs: Vec<RunToCompare> = runs
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
    let comparison = compare(&inputs, seed, resamples).map_err(|e| usage(e.to_string()))?;
    let (compared, pairs) = (&comparison.runs, &comparison.differences);
    let value = serde_json::to_value(&comparison)?;
    ctx.emit(&value, || {
        println!(
            "{:>5}  {:<22} {:>9} {:>8} {:>9} {:>6} {:>11} {:>12} {:>10}",
            "id", "strategy", "return %", "sharpe", "max dd %", "trades", "LLM cost $", "net of cost %", "$/trade"
        );
        for c in compared {
            println!(
                "{:>5}  {:<22} {:>9.2} {:>8.3} {:>9.2} {:>6} {:>11} {:>12.2} {:>10}",
                c.id,
                c.strategy,
                c.total_return_pct,
                c.sharpe,
                c.max_drawdown_pct,
                c.trades,
                c.llm_cost_usd.round_dp(4),
                c.return_net_of_cost_pct,
                c.cost_per_trade_usd
                    .map_or("-".to_string(), |d| d.round_dp(4).to_string())
            );
        }
        if let Some(c) = compared.first() {
            println!(
                "       {:<22} {:>9.2}   (baseline over the same candles)",
                "buy-and-hold", c.buy_and_hold_return_pct
            );
        }
        for p in pairs {
            println!(
                "backtest {} minus {} over {} candles: return net of cost {:+.2} points (95 % CI {:+.2} .. {:+.2}), Sharpe {:+.3} (95 % CI {:+.3} .. {:+.3}); block bootstrap, {} resamples of {}-candle blocks, seed {}",
                p.run,
                p.against,
                p.common_candles,
                p.return_net_diff_pct.estimate,
                p.return_net_diff_pct.low,
                p.return_net_diff_pct.high,
                p.sharpe_diff.estimate,
                p.sharpe_diff.low,
                p.sharpe_diff.high,
                p.resamples,
                p.block_len,
                p.seed
            );
        }
        if compared.iter().any(|c| c.strategy.starts_with("llm:"))
            && !compared.iter().any(|c| c.strategy == "rules")
        {
            println!(
                "baseline: run `trademind backtest --engine rules` on the same period and add its id to compare the LLM with the rules engine"
            );
        }
    })
}
