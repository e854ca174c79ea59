//! `trademind decide SYMBOL` (runs the flow up to the decision, executes nothing) and
//! `trademind decisions` (the flight recorder, with cost totals).

use crate::services::llm::ApiKey;
use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;
use std::sync::{Arc, Mutex};

use super::{Context, UsageError};
use crate::app::decide::{
    AnyEngine, DecisionEngine, EngineError, EngineOutput, api_key, build_engine_with, engine_named,
    record,
};
pub use crate::app::decide::{GROK_KEY_ENV, rules_engine};
use crate::app::trading::{build_risk_context, intent_for};
use crate::domain::Symbol;
use crate::domain::decision::{DecisionInput, Verdict};
use crate::domain::market::Interval;
use crate::domain::risk::{RiskManagementService, RiskVerdict};
use crate::services::exchange::any::AnyExchange;
use crate::services::market_data::import::parse_candles;
use crate::store::Store;
use crate::store::candles::{insert_candles, last_candles};
use crate::store::decisions as recorder;

/// Bundled candles for the offline default (Binance BTCUSDT 1h, January 2025).
const BUNDLED_CSV: &str = include_str!("../../assets/btcusdt_1h_2025-01_binance.csv");
/// Candles fed to the indicators (enough for MACD and the next interval up).
const CANDLES: usize = 500;

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Symbol to decide on, e.g. BTCUSDT.
    pub symbol: String,
    /// Decision engine: llm (needs a Grok key) or rules. Default: llm when a key is configured.
    #[arg(long, value_parser = ["llm", "rules"])]
    pub engine: Option<String>,
    /// Candle interval (default: trading.interval).
    #[arg(long)]
    pub interval: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DecisionsArgs {
    #[command(subcommand)]
    pub command: Option<DecisionsCommand>,
    /// How many of the most recent decisions to list.
    #[arg(long, default_value_t = 20)]
    pub last: usize,
    /// Also show LLM cost totals per day and per strategy.
    #[arg(long)]
    pub costs: bool,
    /// List the decisions of this backtest run instead (they are left out of the default list).
    #[arg(long, value_name = "ID")]
    pub backtest: Option<i64>,
}

#[derive(Debug, clap::Subcommand)]
pub enum DecisionsCommand {
    /// One decision in full: its input, the prompt, the news with their dates, the raw reply,
    /// tokens, cost, validation and every risk check.
    Show { id: i64 },
    /// Re-run one recorded LLM decision on its recorded input and news, from the LLM cache
    /// (free) or with --live against the model (paid), and show what changed.
    Replay {
        id: i64,
        /// Ask the model again instead of answering from the cache.
        #[arg(long)]
        live: bool,
    },
    /// Engines, models and prompt templates ranked by return net of LLM cost: the recorded
    /// `backtest --engine llm|rules` runs (buy-and-hold as the baseline) and the strategies'
    /// shadow books (champion against challenger), each with a 95 % block-bootstrap interval.
    Leaderboard {
        /// Bootstrap seed (the same seed prints the same intervals).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
    },
}

/// Where candles may come from when none are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Import the bundled January 2025 file (BTCUSDT 1h only): paper `execute`/`close`, which
    /// price the paper exchange from it.
    ImportBundled,
    /// Fail with the command that fetches them: `decide` decides on the market as it is, and
    /// month-old bundled data must not land in a user's database.
    AskToFetch,
}

/// Stored candles, or per `missing` the bundled file imported on first use.
pub(crate) fn candles(
    store: &Store,
    symbol: &Symbol,
    interval: Interval,
    missing: Missing,
    now_ms: i64,
) -> Result<(Vec<crate::domain::market::Candle>, bool)> {
    let stored = last_candles(store.conn(), symbol, interval, CANDLES)?;
    if !stored.is_empty() {
        return Ok((stored, false));
    }
    if missing == Missing::AskToFetch {
        let lookback = interval.millis().saturating_mul(CANDLES as i64);
        let from = chrono::DateTime::from_timestamp_millis(now_ms.saturating_sub(lookback))
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "2025-01-01".into());
        return Err(UsageError(format!(
            "no {interval} candles for {symbol} in the database; fetch them first:\n  \
             trademind data fetch {symbol} {interval} --from {from}"
        ))
        .into());
    }
    if symbol.as_str() == "BTCUSDT" && interval == Interval::H1 {
        let parsed = parse_candles(BUNDLED_CSV, Interval::H1, false)
            .context("the bundled BTCUSDT candles are unreadable")?;
        insert_candles(store.conn(), symbol, interval, &parsed.candles)?;
        return Ok((last_candles(store.conn(), symbol, interval, CANDLES)?, true));
    }
    Err(UsageError(format!(
        "no {interval} candles for {symbol} in the database; import some first \
         (the bundled offline data covers BTCUSDT 1h only)"
    ))
    .into())
}

/// Pick and build the decision engine (`--engine`, else llm when a Grok key is stored, else
/// rules); the notice says when it decides offline with rules.
pub(crate) async fn choose_engine(
    ctx: &Context,
    requested: Option<&str>,
    store: Arc<Mutex<Store>>,
) -> Result<(AnyEngine, Option<String>)> {
    let grok_key = grok_key(ctx).await?;
    choose_engine_with(ctx, requested, store, grok_key).await
}

/// The Grok key (environment, then keyring), read once and handed to `choose_engine_with`.
pub(crate) async fn grok_key(ctx: &Context) -> Result<Option<ApiKey>> {
    Ok(api_key(ctx.settings(), crate::secrets::SecretKind::Grok).await?)
}

/// `choose_engine` with the Grok key already read.
pub(crate) async fn choose_engine_with(
    ctx: &Context,
    requested: Option<&str>,
    store: Arc<Mutex<Store>>,
    grok_key: Option<ApiKey>,
) -> Result<(AnyEngine, Option<String>)> {
    let settings = ctx.settings();
    let secrets = ctx.secrets();
    let mailer = crate::app::venue::mailer(&settings.notifications, &secrets);
    match build_engine_with(settings, requested, store, mailer, grok_key).await {
        Err(e @ EngineError::NoGrokKey) => Err(UsageError(format!("--engine llm: {e}")).into()),
        other => Ok(other?),
    }
}

/// The snapshot to decide on from the stored (or bundled) closed candles, with recent
/// decisions; position and risk parts are the caller's.
pub(crate) fn stored_input(
    ctx: &Context,
    store: &Store,
    symbol: &Symbol,
    interval: Interval,
    now_ms: i64,
    missing: Missing,
) -> Result<(DecisionInput, Vec<crate::domain::market::Candle>, bool)> {
    let settings = ctx.settings();
    let (candles, imported) = candles(store, symbol, interval, missing, now_ms)?;
    let mut input = DecisionInput::from_candles(symbol.clone(), interval, &candles, now_ms)
        .ok_or_else(|| UsageError(format!("no candles for {symbol}")))?;
    input.risk.max_position_pct = settings.llm.max_position_pct;
    input.recent_decisions = recorder::past_decisions(
        store.conn(),
        symbol.as_str(),
        now_ms,
        settings.llm.recent_decisions,
    )?;
    Ok((input, candles, imported))
}

/// The risk verdict the decision would get on the trading connection (nothing is sent): the
/// same context builder and intent as `trademind execute`. The paper exchange is priced from
/// the snapshot. `Err` text when the exchange cannot be asked.
async fn risk_verdict(
    ctx: &Context,
    store: &Arc<Mutex<Store>>,
    input: &DecisionInput,
    out: &EngineOutput,
) -> Result<Option<RiskVerdict>, String> {
    let crate::app::venue::ConnectedExchange {
        connection,
        exchange,
        ..
    } = super::exchange::open_for_trading(ctx, None)
        .await
        .map_err(|e| format!("{e:#}"))?;
    if let AnyExchange::Paper(p) = &exchange {
        p.on_price(&input.symbol, input.price)
            .map_err(|e| e.to_string())?;
    }
    let mut context = build_risk_context(
        &exchange,
        store,
        ctx.settings(),
        &connection,
        &input.symbol,
        None,
        input.indicators.atr,
        input.now_ms,
    )
    .await
    .map_err(|e| e.to_string())?;
    let position = {
        let db = store
            .lock()
            .map_err(|_| "database lock poisoned".to_string())?;
        // The default book's cooldown and lock after stops, as the entry path judges them.
        context.stop_exits = crate::app::trading::book_stop_exits(
            db.conn(),
            &connection,
            &input.symbol,
            None,
            input.now_ms,
            input.interval,
        )
        .map_err(|e| e.to_string())?;
        // A dry run decides as a trade without a strategy would: on the default book.
        crate::store::positions::open_position(db.conn(), &connection, input.symbol.as_str(), None)
            .map_err(|e| e.to_string())?
    };
    Ok(intent_for(
        &out.validated.decision,
        input,
        context.market.price,
        position.as_ref().map(|r| &r.position),
        None,
    )
    .map(|intent| RiskManagementService::validate(&intent, &context)))
}

pub async fn run_decide(args: DecideArgs, ctx: &Context) -> Result<()> {
    let settings = ctx.settings();
    let symbol = Symbol::new(&args.symbol).map_err(|e| UsageError(e.to_string()))?;
    let interval: Interval = args
        .interval
        .as_deref()
        .unwrap_or(&settings.trading.interval)
        .parse()
        .map_err(|e: crate::domain::market::candle::InvalidInterval| UsageError(e.to_string()))?;
    let store = Arc::new(Mutex::new(ctx.open_store()?));
    let (engine, offline_notice) =
        choose_engine(ctx, args.engine.as_deref(), store.clone()).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (input, candles, imported) = {
        let db = store
            .lock()
            .map_err(|_| anyhow::anyhow!("the database lock was poisoned"))?;
        let (mut input, candles, imported) =
            stored_input(ctx, &db, &symbol, interval, now_ms, Missing::AskToFetch)?;
        // The account `execute` would see: the open position, today's PnL, the trading state.
        let connection = &settings.trading.connection;
        let mode = crate::store::strategies::connection_mode(db.conn(), connection)?;
        let view = crate::store::account::load(
            db.conn(),
            &crate::store::account::AccountQuery {
                connection,
                now_ms,
                day_start_ms: crate::store::account::utc_day_start(now_ms),
                paper_starting_balance: (mode == crate::domain::trading::TradingMode::Paper)
                    .then(|| settings.trading.paper_starting_balance.parse().ok())
                    .flatten(),
                unresolved: Vec::new(),
            },
        )?;
        crate::app::decide::apply_account(&mut input, &view);
        (input, candles, imported)
    };
    let out = engine.decide(&input).await;
    let verdict = if out.validated.is_valid() && out.error.is_none() {
        risk_verdict(ctx, &store, &input, &out).await
    } else {
        Ok(None)
    };
    // The column's own type, as the trading service writes it.
    let verdict_json = match &verdict {
        Ok(Some(v)) => recorder::DecisionRecord::of_execution(Some(v.clone()), "dry run"),
        Ok(None) => None,
        Err(e) => Some(recorder::DecisionRecord {
            not_evaluated: Some(e.clone()),
            ..Default::default()
        }),
    }
    .map(|r| serde_json::to_value(r).unwrap_or_default());
    let outcome = out.dry_run_outcome();
    let id = {
        let db = store
            .lock()
            .map_err(|_| anyhow::anyhow!("the database lock was poisoned"))?;
        record(&db, &input, &out, None, outcome, verdict_json, None)?
    };
    print_decision(
        ctx,
        id,
        &input,
        &out,
        outcome,
        offline_notice.as_deref(),
        imported,
        &candles,
        &verdict,
    )
}

#[allow(clippy::too_many_arguments)]
fn print_decision(
    ctx: &Context,
    id: i64,
    input: &DecisionInput,
    out: &EngineOutput,
    outcome: &str,
    notice: Option<&str>,
    imported: bool,
    candles: &[crate::domain::market::Candle],
    verdict: &Result<Option<RiskVerdict>, String>,
) -> Result<()> {
    let data_as_of = candles
        .last()
        .and_then(|c| chrono::DateTime::from_timestamp_millis(c.close_time(input.interval)))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let d = &out.validated.decision;
    let value = json!({
        "id": id,
        "symbol": input.symbol,
        "engine": out.engine,
        "offline": notice.is_some(),
        "notice": notice,
        "data_as_of": data_as_of,
        "price": input.price,
        "decision": d,
        "validation": out.validated.verdict,
        "adjustments": out.validated.adjustments,
        "risk_verdict": match verdict {
            Ok(v) => json!(v),
            Err(e) => json!({ "not_evaluated": e }),
        },
        "outcome": outcome,
        "executed": false,
        "model": out.model,
        "cost_usd": out.cost_usd,
        "error": out.error,
        "injections": out.injections,
    });
    ctx.emit(&value, || {
        if let Some(n) = notice {
            println!("{n}");
        }
        if imported {
            println!("imported the bundled BTCUSDT 1h candles (January 2025) into the database");
        }
        println!(
            "{} decision for {} [engine: {}] on data as of {}",
            d.action,
            input.symbol,
            out.engine,
            data_as_of.as_deref().unwrap_or("?")
        );
        println!(
            "  price {}  confidence {:.2}  size {}% of equity",
            input.price, d.confidence, d.position_size_pct
        );
        if let Some(s) = d.stop_loss {
            println!("  stop-loss {:?} {}", s.kind, s.value);
        }
        if let Some(t) = d.take_profit {
            println!("  take-profit {:?} {}", t.kind, t.value);
        }
        println!("  reasoning: {}", d.reasoning);
        match &out.validated.verdict {
            Verdict::Valid => println!("  validation: valid"),
            Verdict::Invalid(r) => println!("  validation: INVALID: {}", r.join("; ")),
        }
        for a in &out.validated.adjustments {
            println!("  adjusted: {a}");
        }
        if let Some(e) = &out.error {
            println!("  error: {e}");
        }
        if !out.injections.is_empty() {
            println!(
                "  warning: {} instruction-like passage(s) in the news were ignored",
                out.injections.len()
            );
        }
        if let Some(c) = out.cost_usd {
            println!("  LLM cost ${c}");
        }
        print_verdict(verdict);
        println!("recorded as decision #{id} ({outcome}): nothing was executed");
    })
}

/// The risk verdict in a few lines: approved with size, or refused with the reasons.
pub(crate) fn print_verdict(verdict: &Result<Option<RiskVerdict>, String>) {
    match verdict {
        Ok(Some(RiskVerdict::Approved {
            quantity,
            entry,
            stop,
            notional,
            risk_amount,
            ..
        })) => println!(
            "  risk verdict: APPROVED {quantity} at {entry} (notional {notional}, stop {}, at risk {risk_amount})",
            stop.map_or("-".into(), |s| s.to_string())
        ),
        Ok(Some(RiskVerdict::Refused { reasons, .. })) => {
            println!("  risk verdict: REFUSED: {}", reasons.join("; "))
        }
        Ok(None) => println!("  risk verdict: nothing to check (no order would be placed)"),
        Err(e) => println!("  risk verdict: not evaluated ({e})"),
    }
}

/// JSON text of a column, parsed; a column that is not JSON is kept as a string.
fn json_column(text: Option<&str>) -> serde_json::Value {
    match text {
        None => serde_json::Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| json!(t)),
    }
}

/// Everything the flight recorder holds about one decision, as `decisions --json` and
/// `decisions show` print it: the risk column read through its own type, so every check is
/// listed with its verdict.
fn decision_detail(r: &recorder::DecisionRow) -> serde_json::Value {
    let f = &r.fields;
    let risk = f
        .risk_verdict
        .as_deref()
        .map(recorder::DecisionRecord::from_column);
    json!({
        "id": r.id,
        "decided_at": f.decided_at,
        "symbol": f.symbol,
        "engine": f.engine,
        "model": f.model,
        "action": f.action,
        "confidence": f.confidence,
        "outcome": f.outcome,
        "order_ids": f.order_ids,
        "latency_ms": f.latency_ms,
        "error": f.error,
        "validation": json_column(f.validation.as_deref()),
        "decision": json_column(f.decision.as_deref()),
        "input": json_column(Some(&f.input_snapshot)),
        "prompt": f.prompt,
        "news": json_column(f.search_results.as_deref()),
        "raw_reply": f.raw_response,
        "prompt_tokens": f.prompt_tokens,
        "completion_tokens": f.completion_tokens,
        "cost_usd": f.cost_usd,
        "risk": risk,
        "risk_checks": risk.as_ref().map(|r| r.checks().to_vec()).unwrap_or_default(),
    })
}

fn show_decision(id: i64, ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let row = recorder::get(store.conn(), id)?.ok_or_else(|| {
        UsageError(format!(
            "there is no decision {id}: see `trademind decisions`"
        ))
    })?;
    let value = decision_detail(&row);
    ctx.emit(&value, || {
        let f = &row.fields;
        let at = chrono::DateTime::from_timestamp_millis(f.decided_at)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        println!(
            "decision #{} at {at}: {} {} [engine {}{}] -> {}",
            row.id,
            f.action,
            f.symbol,
            f.engine,
            f.model
                .as_deref()
                .map_or(String::new(), |m| format!(", model {m}")),
            f.outcome
        );
        println!(
            "  tokens {} in / {} out  cost {}  latency {} ms",
            f.prompt_tokens.map_or("-".into(), |t| t.to_string()),
            f.completion_tokens.map_or("-".into(), |t| t.to_string()),
            f.cost_usd.map_or("-".into(), |c| format!("${c}")),
            f.latency_ms.map_or("-".into(), |t| t.to_string()),
        );
        if let Some(e) = &f.error {
            println!("  error: {e}");
        }
        let news = &value["news"];
        let items = news["items"].as_array().cloned().unwrap_or_default();
        println!("  news ({} item(s)):", items.len());
        for n in &items {
            println!(
                "    [{}] {}  <{}>",
                n["published_date"].as_str().unwrap_or("undated"),
                n["title"].as_str().unwrap_or(""),
                n["url"].as_str().unwrap_or("")
            );
        }
        if let Some(e) = news["error"].as_str() {
            println!("    news search failed: {e}");
        }
        match &value["risk"] {
            serde_json::Value::Null => println!("  risk: not asked"),
            _ => {
                let checks = value["risk_checks"].as_array().cloned().unwrap_or_default();
                if let Some(n) = value["risk"]["not_evaluated"].as_str() {
                    println!("  risk: not evaluated ({n})");
                }
                for c in &checks {
                    println!(
                        "  risk check {:<20} {}  {}",
                        c["name"].as_str().unwrap_or(""),
                        if c["passed"].as_bool() == Some(true) {
                            "pass"
                        } else {
                            "FAIL"
                        },
                        c["detail"].as_str().unwrap_or("")
                    );
                }
            }
        }
        println!("  validation: {}", value["validation"]);
        println!(
            "--- prompt ---\n{}",
            f.prompt.as_deref().unwrap_or("(none: no LLM call)")
        );
        println!(
            "--- raw reply ---\n{}",
            f.raw_response.as_deref().unwrap_or("(none)")
        );
    })
}

/// The fields of a decision a replay compares, as text.
fn decision_fields(d: &crate::domain::decision::TradingDecision) -> Vec<(&'static str, String)> {
    vec![
        ("action", d.action.to_string()),
        ("confidence", format!("{:.2}", d.confidence)),
        ("position_size_pct", d.position_size_pct.to_string()),
        ("stop_loss", format!("{:?}", d.stop_loss)),
        ("take_profit", format!("{:?}", d.take_profit)),
        ("time_horizon", format!("{:?}", d.time_horizon)),
        ("reasoning", d.reasoning.clone()),
    ]
}

async fn replay_decision(id: i64, live: bool, ctx: &Context) -> Result<()> {
    use crate::app::decide::{ReplaySource, RunMode};
    let store = Arc::new(Mutex::new(ctx.open_store()?));
    let row = {
        let db = store
            .lock()
            .map_err(|_| anyhow::anyhow!("the database lock was poisoned"))?;
        recorder::get(db.conn(), id)?
    }
    .ok_or_else(|| {
        UsageError(format!(
            "there is no decision {id}: see `trademind decisions`"
        ))
    })?;
    let f = &row.fields;
    if f.engine != "llm" && f.engine != "cache" {
        return Err(UsageError(format!(
            "decision {id} was made by the {} engine: only LLM decisions are replayed",
            f.engine
        ))
        .into());
    }
    let input: DecisionInput = serde_json::from_str(&f.input_snapshot)
        .map_err(|e| anyhow::anyhow!("decision {id}'s recorded input is unreadable: {e}"))?;
    let news_json = json_column(f.search_results.as_deref());
    let news: Vec<crate::services::llm::NewsItem> =
        serde_json::from_value(news_json["items"].clone()).unwrap_or_default();
    let point_in_time = !news_json["window"].is_null() || f.backtest_id.is_some();
    let mut settings = ctx.settings().clone();
    if let Some(model) = &f.model {
        settings.llm.model = model.clone();
    }
    let key = grok_key(ctx).await?;
    let engine = match build_engine_with(
        &settings,
        Some("llm"),
        store.clone(),
        std::future::ready(None),
        key,
    )
    .await
    {
        Ok((AnyEngine::Llm(engine), _)) => engine,
        Ok(_) => anyhow::bail!("the LLM engine could not be built"),
        Err(e @ EngineError::NoGrokKey) => {
            return Err(UsageError(format!("decisions replay: {e}")).into());
        }
        Err(e) => return Err(e.into()),
    };
    let source = if live {
        ReplaySource::Live
    } else {
        ReplaySource::Cache
    };
    let mode = if point_in_time {
        RunMode::Backtest
    } else {
        RunMode::Live
    };
    let engine = engine.with_mode(mode).for_replay(source, news);
    let out = engine.decide(&input).await;
    let before: Option<crate::domain::decision::TradingDecision> = f
        .decision
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok());
    let after = &out.validated.decision;
    let changes: Vec<serde_json::Value> = match &before {
        Some(b) => decision_fields(b)
            .into_iter()
            .zip(decision_fields(after))
            .filter(|((_, x), (_, y))| x != y)
            .map(|((name, x), (_, y))| json!({"field": name, "recorded": x, "replayed": y}))
            .collect(),
        None => vec![json!({"field": "decision", "recorded": null, "replayed": after})],
    };
    let prompt_changed = f.prompt.as_deref() != out.prompt.as_deref();
    let value = json!({
        "id": id,
        "source": if live { "live" } else { "cache" },
        "engine": out.engine,
        "llm_calls": out.llm_calls,
        "cost_usd": out.cost_usd,
        "error": out.error,
        "recorded": before,
        "replayed": after,
        "validation": out.validated.verdict,
        "changes": changes,
        "prompt_changed": prompt_changed,
    });
    ctx.emit(&value, || {
        println!(
            "replay of decision #{id} ({}): {} {}",
            if live {
                "asked the model again"
            } else {
                "from the LLM cache"
            },
            after.action,
            input.symbol
        );
        if let Some(e) = &out.error {
            println!("  error: {e}");
        }
        if let Some(c) = out.cost_usd {
            println!("  cost ${c}");
        }
        if changes.is_empty() {
            println!("  unchanged: the replay decided exactly as recorded");
        }
        for c in &changes {
            println!(
                "  {:<18} recorded {}  ->  replayed {}",
                c["field"].as_str().unwrap_or(""),
                c["recorded"],
                c["replayed"]
            );
        }
        if prompt_changed {
            println!(
                "  the prompt differs from the recorded one (template, limits or wall-clock time)"
            );
        }
    })
}

pub async fn run_decisions(args: DecisionsArgs, ctx: &Context) -> Result<()> {
    match args.command {
        Some(DecisionsCommand::Show { id }) => return show_decision(id, ctx),
        Some(DecisionsCommand::Replay { id, live }) => return replay_decision(id, live, ctx).await,
        Some(DecisionsCommand::Leaderboard { seed, resamples }) => {
            return super::leaderboard::run(seed, resamples, ctx);
        }
        None => {}
    }
    let store = ctx.open_store()?;
    let rows = match args.backtest {
        Some(id) => recorder::of_backtest(store.conn(), id, args.last)?,
        None => recorder::recent(store.conn(), args.last)?,
    };
    let totals = if args.costs {
        Some(recorder::cost_totals(store.conn())?)
    } else {
        None
    };
    let value = json!({
        "decisions": rows.iter().map(decision_detail).collect::<Vec<_>>(),
        "cost_per_day": totals.as_ref().map(|t| &t.0),
        "cost_per_strategy": totals.as_ref().map(|t| &t.1),
    });
    ctx.emit(&value, || {
        if rows.is_empty() {
            println!("no decisions recorded yet (try `trademind decide BTCUSDT`)");
        }
        for r in &rows {
            let f = &r.fields;
            let at = chrono::DateTime::from_timestamp_millis(f.decided_at)
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default();
            println!(
                "#{:<5} {at}  {:<10} {:<6} {:<5} conf {:<4} {:<8} cost {}{}",
                r.id,
                f.symbol,
                f.engine,
                f.action,
                f.confidence.map_or("-".into(), |c| format!("{c:.2}")),
                f.outcome,
                f.cost_usd.map_or("-".into(), |c| format!("${c}")),
                f.error
                    .as_deref()
                    .map_or(String::new(), |e| format!("  error: {e}")),
            );
        }
        if let Some((days, strategies)) = &totals {
            let line = |t: &recorder::CostTotal| {
                let reflections = if t.reflections > 0 {
                    format!(" + {} reflections", t.reflections)
                } else {
                    String::new()
                };
                println!(
                    "  {}  {} decisions{reflections}  ${}",
                    t.key, t.decisions, t.cost_usd
                );
            };
            println!("LLM cost per day:");
            days.iter().for_each(line);
            println!("LLM cost per strategy:");
            strategies.iter().for_each(line);
        }
    })
}

/// The engine the demo's strategy runs with (`rules` or `llm`): see
/// [`crate::app::decide::engine_named`].
pub async fn engine_for(
    ctx: &Context,
    wanted: &str,
    store: Arc<Mutex<Store>>,
) -> Result<AnyEngine> {
    Ok(engine_named(
        ctx.settings(),
        wanted,
        wanted,
        &serde_json::Value::Null,
        store,
        crate::app::venue::mailer(&ctx.settings().notifications, &ctx.secrets()),
    )
    .await?)
}

/// Whether a Grok key is configured (the demo then decides with the LLM).
pub async fn has_llm_key(ctx: &Context) -> Result<bool> {
    Ok(api_key(ctx.settings(), crate::secrets::SecretKind::Grok)
        .await?
        .is_some())
}
