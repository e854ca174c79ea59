//! `trademind backtest [run] ...`, `backtest list|show ID|cancel ID|delete ID`.
//!
//! `trademind backtest --strategy sma-cross ...` and `trademind backtest run --strategy ...` are
//! the same command: the run flags are accepted directly after `backtest` when no subcommand
//! follows.

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::backtest_shard::{self, Shard, ShardSpec};
use super::{Context, UsageError};
use crate::app::backtest::{
    BacktestRequest, BacktestRunError, CandleSource, FULL_METRICS_TOP, RANK_METRICS, SizingChoice,
    SweepAxis, SweepRanking, SweepRun, WalkForwardRun, load_series, run_and_record_on, run_on,
    run_sweep_ranked, run_walk_forward, run_walk_forward_and_record, sweep_grid,
};
use crate::domain::backtest::report::{format_time, render_html};
use crate::domain::backtest::{
    BacktestResult, BacktestSettings, Costs, FillModel, RunStatus, StrategySpec, TradeRecord,
    WalkForwardSpec, WindowReport,
};
use crate::domain::market::candle::{Interval, TimestampMs};
use crate::domain::money::Quote;
use crate::format::{self as fmt, Precision};
use crate::store::backtests;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BacktestArgs {
    #[command(subcommand)]
    pub command: Option<BacktestCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum BacktestCommand {
    /// Run a backtest (the default when flags follow `backtest` directly).
    Run(Box<RunArgs>),
    /// Stored runs, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One stored run: parameters, metrics and trades (and a walk-forward run's windows).
    Show { id: i64 },
    /// Ask a running backtest to stop, from any process: it ends `cancelled` at its next
    /// check, keeping the results of the candles it got through.
    Cancel { id: i64 },
    /// Delete a stored run.
    Delete { id: i64 },
    /// Rank the shard files of one sweep (`backtest --sweep ... --shard K/N --out FILE`, one
    /// per shard) exactly as the single sweep would: same order, same output.
    Merge {
        /// Every shard's file, in any order.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
    /// Stored runs on the same candles side by side: metrics, LLM cost, return net of cost,
    /// cost per trade, and each run against the first with 95 % block-bootstrap intervals of
    /// the difference in return (net of cost) and Sharpe.
    Compare {
        /// Two or more backtest ids; the first is the one the others are measured against.
        #[arg(required = true, num_args = 2..)]
        ids: Vec<i64>,
        /// Bootstrap seed (the same seed prints the same intervals).
        #[arg(long, default_value_t = crate::app::backtest_compare::DEFAULT_SEED)]
        seed: u64,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = crate::app::backtest_compare::DEFAULT_RESAMPLES)]
        resamples: usize,
        /// Also write the first run's HTML report, with this comparison as its last section.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Strategy: sma-cross, rsi-reversion, macd, rsi-macd.
    #[arg(long, default_value = "sma-cross")]
    pub strategy: String,
    /// A strategy TOML file (`name = "..."` and a `[params]` table); --param overrides it.
    #[arg(long, value_name = "FILE")]
    pub strategy_file: Option<PathBuf>,
    /// Symbol (default: the first of trading.symbols).
    #[arg(long)]
    pub symbol: Option<String>,
    /// Candle interval (default: trading.interval).
    #[arg(long)]
    pub interval: Option<String>,
    /// First candle to include: YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or epoch ms.
    #[arg(long)]
    pub from: Option<String>,
    /// End (exclusive), same formats as --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Strategy parameter KEY=VALUE (repeatable), e.g. --param fast=10 --param stop_pct=2.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Taker fee in basis points (default backtest.taker_fee_bps, 10 = 0.1 %).
    #[arg(long)]
    pub fee_bps: Option<Decimal>,
    /// Maker fee in basis points, for take-profit and limit-entry fills (default backtest.maker_fee_bps).
    #[arg(long)]
    pub maker_fee_bps: Option<Decimal>,
    /// Slippage on market orders and stops, basis points (default backtest.slippage_bps).
    #[arg(long)]
    pub slippage_bps: Option<Decimal>,
    /// next-open (default) or close.
    #[arg(long)]
    pub fill: Option<FillModel>,
    /// all-in, fraction=F, fixed, kelly or atr.
    #[arg(long, default_value = "all-in")]
    pub sizing: SizingChoice,
    /// Starting cash (default backtest.initial_cash).
    #[arg(long)]
    pub initial_cash: Option<Decimal>,
    /// Candles from this CSV file instead of the database.
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Sweep a parameter, KEY=FROM..TO:STEP (repeatable: the grid is their product).
    #[arg(long, value_name = "KEY=FROM..TO:STEP")]
    pub sweep: Vec<String>,
    /// Metric the sweep ranks by (and walk-forward chooses by).
    #[arg(long, visible_alias = "rank", default_value = "sharpe")]
    pub rank_by: String,
    /// Walk forward over the --sweep grid: `train=90d,test=30d` (lengths in h, d, w, or a
    /// candle count). Each training window picks the best combination by --rank-by; it runs on
    /// the following test window; only out-of-sample results are reported.
    #[arg(long, value_name = "train=LEN,test=LEN")]
    pub walk_forward: Option<WalkForwardSpec>,
    /// Sweep worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run only shard K of N of the --sweep grid (K counted from 0: every N-th combination
    /// from the K-th) and write it to --out; `backtest merge` ranks the shards' files.
    #[arg(long, value_name = "K/N", requires = "out")]
    pub shard: Option<Shard>,
    /// Full metrics for every combination of a --sweep. By default every combination is run
    /// for its --rank-by metric alone (a sweep ranked by total_return keeps no per-candle
    /// statistics) and only the best 20 are run again for their full metrics.
    #[arg(long)]
    pub all_metrics: bool,
    /// The JSON-lines file a --sweep writes its (shard's) runs to, instead of ranking them.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
    /// Do not record the run in the database.
    #[arg(long)]
    pub no_save: bool,
    /// Decide on every closed candle with a decision engine instead of --strategy: `llm` (the
    /// model, with point-in-time news; costs money, replays from the cache are free) or
    /// `rules` (the RSI + MACD rule engine). Same fills and --sizing as any strategy.
    #[arg(long, value_parser = ["llm", "rules"])]
    pub engine: Option<String>,
    /// Model for --engine llm (default: llm.model).
    #[arg(long, requires = "engine")]
    pub model: Option<String>,
    /// Prompt template file for --engine llm (default: llm.prompt_template, else the bundled one).
    #[arg(long, value_name = "FILE", requires = "engine")]
    pub prompt: Option<PathBuf>,
    /// Most an --engine llm run may spend, in USD (default: llm.backtest_max_cost_usd). The
    /// estimate must fit before the run starts, and no call is made once the spend reaches it.
    #[arg(long, value_name = "USD", requires = "engine")]
    pub max_cost: Option<Decimal>,
}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn parse_time(flag: &str, text: &str) -> Result<TimestampMs> {
    crate::app::backtest::parse_time(text).map_err(|e| usage(format!("{flag} {text:?}: {e}")))
}

fn request(args: &RunArgs, ctx: &Context) -> Result<BacktestRequest> {
    let defaults: BacktestSettings = ctx.settings().backtest.clone();
    let mut spec = match &args.strategy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read strategy file {}", path.display()))?;
            toml::from_str::<StrategySpec>(&text)
                .map_err(|e| usage(format!("strategy file {}: {e}", path.display())))?
        }
        None => StrategySpec {
            name: args.strategy.clone(),
            params: BTreeMap::new(),
        },
    };
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| usage(format!("--param {p:?}: expected KEY=VALUE")))?;
        // A flag (`post_only=true`) is the number 1 or 0 the strategy parameters hold.
        let v: f64 = match v.trim() {
            "true" => 1.0,
            "false" => 0.0,
            number => number
                .parse()
                .map_err(|_| usage(format!("--param {p:?}: {v:?} is not a number")))?,
        };
        spec.params.insert(k.trim().to_string(), v);
    }
    let interval: Interval = args
        .interval
        .as_deref()
        .unwrap_or(&ctx.settings().trading.interval)
        .parse()
        .map_err(|e: crate::domain::market::candle::InvalidInterval| usage(e.to_string()))?;
    let symbol = match &args.symbol {
        Some(s) => s.clone(),
        None => ctx
            .settings()
            .trading
            .symbols
            .first()
            .cloned()
            .unwrap_or_else(|| "BTCUSDT".into()),
    };
    let costs = Costs::from_bps(
        args.fee_bps.unwrap_or(defaults.taker_fee_bps),
        args.maker_fee_bps.unwrap_or(defaults.maker_fee_bps),
        args.slippage_bps.unwrap_or(defaults.slippage_bps),
    );
    let check = BacktestSettings {
        initial_cash: args.initial_cash.unwrap_or(defaults.initial_cash),
        taker_fee_bps: costs.taker_fee * Decimal::new(10_000, 0),
        maker_fee_bps: costs.maker_fee * Decimal::new(10_000, 0),
        slippage_bps: costs.slippage * Decimal::new(10_000, 0),
        fill: defaults.fill,
    };
    check
        .validate()
        .and_then(|()| crate::config::check_starting_cash("initial cash", check.initial_cash))
        .map_err(|(k, m)| usage(format!("{k}: {m}")))?;
    Ok(BacktestRequest {
        strategy: spec,
        symbol,
        interval,
        from: args
            .from
            .as_deref()
            .map(|t| parse_time("--from", t))
            .transpose()?,
        to: args
            .to
            .as_deref()
            .map(|t| parse_time("--to", t))
            .transpose()?,
        source: args
            .data
            .clone()
            .map_or(CandleSource::Store, CandleSource::Csv),
        initial_cash: Quote(check.initial_cash),
        costs,
        fill: args.fill.unwrap_or(defaults.fill),
        sizing: args.sizing,
        // The [risk] section's limits; per-strategy overrides stored by `risk set` are for live
        // strategies and do not apply to an ad-hoc backtest.
        risk: ctx.settings().risk.clone(),
    })
}

#[derive(Serialize)]
struct RunOutput<'a> {
    id: Option<i64>,
    strategy: &'a StrategySpec,
    symbol: &'a str,
    interval: Interval,
    fill: FillModel,
    sizing: SizingChoice,
    final_equity: Quote,
    metrics: &'a crate::domain::backtest::Metrics,
    trades: &'a [TradeRecord],
    rejections: &'a [(TimestampMs, crate::domain::backtest::Rejection)],
}

pub(crate) fn progress_bar(total: u64, json: bool) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The quote currency money of a backtest on `symbol` is counted in.
fn currency(symbol: &str) -> String {
    Precision::guess(symbol).quote
}

pub(crate) fn print_summary(title: &str, symbol: &str, id: Option<i64>, result: &BacktestResult) {
    println!("{title}");
    if let Some(id) = id {
        println!("  saved as backtest {id}");
    }
    for (k, v) in fmt::backtest_metrics(&result.metrics, &currency(symbol)) {
        println!("  {k:<20} {v}");
    }
    println!("  {:<20} {}", "Final equity (exact)", result.final_equity);
    if !result.rejections.is_empty() {
        println!(
            "  {} order(s) refused by the exchange filters:",
            result.rejections.len()
        );
        for (t, why) in result.rejections.iter().take(5) {
            println!("    {}  {why}", format_time(*t));
        }
    }
}

async fn run_backtest(args: RunArgs, ctx: &Context) -> Result<()> {
    let req = request(&args, ctx)?;
    if let Some(engine) = args.engine.clone() {
        return super::backtest_engine::run_engine_cmd(args, req, &engine, ctx).await;
    }
    if args.out.is_some() && (args.sweep.is_empty() || args.walk_forward.is_some()) {
        bail!(usage(
            "--out and --shard write the runs of a --sweep (without --walk-forward): add --sweep KEY=FROM..TO:STEP"
        ));
    }
    if let Some(spec) = args.walk_forward {
        if args.sweep.is_empty() {
            bail!(usage(
                "--walk-forward re-optimises the --sweep grid on each training window: add at least one --sweep KEY=FROM..TO:STEP"
            ));
        }
        return run_walk_forward_cmd(&args, spec, req, ctx).await;
    }
    if !args.sweep.is_empty() {
        return run_sweep_cmd(&args, req, ctx).await;
    }
    let store = if args.no_save && req.source != CandleSource::Store {
        None
    } else {
        Some(ctx.open_store()?)
    };
    let (cancel, watcher) = ctrl_c_flag();
    let json = ctx.json;
    let no_save = args.no_save;
    let job_req = req.clone();
    let job_cancel = cancel.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        // Exact columns alone, in the usual case: no decimal candle per row beside them.
        let series = load_series(store.as_ref(), &job_req)?;
        let (candles, columns) = (series.run_candles(), &series.columns);
        let bar = progress_bar(series.len() as u64, json);
        bar.set_message(format!("{} {}", job_req.strategy.name, job_req.symbol));
        let mut progress = |done: usize, _total: usize| bar.set_position(done as u64);
        let now = || chrono::Utc::now().timestamp_millis();
        let result = match (&store, no_save) {
            (Some(store), false) => {
                match run_and_record_on(
                    store,
                    None,
                    &job_req,
                    candles,
                    columns,
                    &job_cancel,
                    &mut progress,
                    &now,
                ) {
                    Ok((id, r)) => Ok((Some(id), r)),
                    Err((id, e)) => {
                        if let Some(id) = id {
                            tracing::info!(id, "backtest recorded as not completed");
                        }
                        Err(e)
                    }
                }
            }
            _ => run_on(&job_req, candles, columns, &job_cancel, &mut progress).map(|r| (None, r)),
        };
        bar.finish_and_clear();
        result.map(|(id, r)| (id, r, series))
    })
    .await;
    watcher.abort();
    let (id, result, series) = match outcome.context("the backtest worker stopped")? {
        Ok(v) => v,
        Err(e @ (BacktestRunError::Strategy(_) | BacktestRunError::NeedsStop(_))) => {
            return Err(usage(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let title = format!(
        "{} {} {} ({}, fill {}, fees {} bps, slippage {} bps)",
        req.strategy.name,
        req.symbol,
        req.interval,
        if req.strategy.params.is_empty() {
            "default parameters".to_string()
        } else {
            req.strategy
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
        req.fill,
        (req.costs.taker_fee * Decimal::new(10_000, 0)).normalize(),
        (req.costs.slippage * Decimal::new(10_000, 0)).normalize(),
    );
    if let Some(path) = &args.report {
        // The close column is each candle's close as an f64 (the same conversion).
        let columns = &series.columns;
        let closes: Vec<(TimestampMs, f64)> = (0..columns.len())
            .map(|i| (columns.open_time[i], columns.close[i]))
            .collect();
        let html = render_html(&title, &result, &closes)?;
        std::fs::write(path, html)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    let out = RunOutput {
        id,
        strategy: &req.strategy,
        symbol: &req.symbol,
        interval: req.interval,
        fill: req.fill,
        sizing: req.sizing,
        final_equity: result.final_equity,
        metrics: &result.metrics,
        trades: &result.trades,
        rejections: &result.rejections,
    };
    ctx.emit(&out, || {
        print_summary(&title, &req.symbol, id, &result);
        if let Some(path) = &args.report {
            println!("  report written to {}", path.display());
        }
    })
}

/// A flag Ctrl-C sets, and the task watching for it (abort it when the run is over).
pub(crate) fn ctrl_c_flag() -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    (cancel, watcher)
}

/// The sweep axes, a checked ranking metric and the worker count.
fn sweep_setup(args: &RunArgs) -> Result<(Vec<SweepAxis>, usize)> {
    let axes: Vec<SweepAxis> = args
        .sweep
        .iter()
        .map(|s| s.parse().map_err(usage))
        .collect::<Result<_>>()?;
    crate::app::backtest::check_sweep_size(&axes).map_err(usage)?;
    if !RANK_METRICS.split(", ").any(|m| m == args.rank_by) {
        bail!(usage(format!(
            "--rank-by {:?}: expected one of {RANK_METRICS}",
            args.rank_by
        )));
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    Ok((axes, threads))
}

fn params_text(params: &[(String, f64)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_windows(windows: &[WindowReport]) {
    println!(
        "  {:>3}  {:<36} {:<36} {:<22} {:>9} {:>9} {:>6}",
        "#",
        "train (first .. last candle)",
        "test (out of sample)",
        "chosen",
        "return %",
        "max dd %",
        "trades"
    );
    for w in windows {
        println!(
            "  {:>3}  {:<36} {:<36} {:<22} {:>9.2} {:>9.2} {:>6}",
            w.window,
            format!(
                "{} .. {}",
                format_time(w.train_first),
                format_time(w.train_last)
            ),
            format!(
                "{} .. {}",
                format_time(w.test_first),
                format_time(w.test_last)
            ),
            params_text(&w.params),
            w.metrics.total_return_pct,
            w.metrics.max_drawdown_pct,
            w.metrics.trades
        );
    }
}

#[derive(Serialize)]
struct WalkForwardOutput<'a> {
    id: Option<i64>,
    status: RunStatus,
    strategy: &'a StrategySpec,
    symbol: &'a str,
    interval: Interval,
    walk_forward: String,
    rank_by: &'a str,
    planned_windows: usize,
    windows: &'a [WindowReport],
    final_equity: Quote,
    /// Over the stitched out-of-sample curve.
    metrics: &'a crate::domain::backtest::Metrics,
    trades: &'a [TradeRecord],
}

async fn run_walk_forward_cmd(
    args: &RunArgs,
    spec: WalkForwardSpec,
    req: BacktestRequest,
    ctx: &Context,
) -> Result<()> {
    let (axes, threads) = sweep_setup(args)?;
    let store = if args.no_save && req.source != CandleSource::Store {
        None
    } else {
        Some(ctx.open_store()?)
    };
    let json = ctx.json;
    let no_save = args.no_save;
    let rank_by = args.rank_by.clone();
    let (cancel, watcher) = ctrl_c_flag();
    let job_req = req.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let series = load_series(store.as_ref(), &job_req)?;
        // Walk-forward windows slice decimal candles: rebuilt here when the series has none.
        let (candles, columns) = (series.candles(), &series.columns);
        let bar = progress_bar(0, json);
        bar.set_message("walk-forward windows");
        let mut progress = |done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        };
        let now = || chrono::Utc::now().timestamp_millis();
        let result = match (&store, no_save) {
            (Some(store), false) => run_walk_forward_and_record(
                store,
                &job_req,
                &axes,
                &rank_by,
                &spec,
                &candles,
                threads,
                &cancel,
                &mut progress,
                &now,
            )
            .map(|(id, wf)| (Some(id), wf))
            .map_err(|(_, e)| e),
            _ => run_walk_forward(
                &job_req,
                &sweep_grid(&axes),
                &rank_by,
                &spec,
                &candles,
                columns,
                threads,
                &cancel,
                &mut progress,
            )
            .map(|wf| (None, wf)),
        };
        bar.finish_and_clear();
        result
    })
    .await;
    watcher.abort();
    let (id, wf): (Option<i64>, WalkForwardRun) =
        match outcome.context("the walk-forward worker stopped")? {
            Ok(v) => v,
            Err(
                e @ (BacktestRunError::Strategy(_)
                | BacktestRunError::NeedsStop(_)
                | BacktestRunError::NoWindows { .. }),
            ) => return Err(usage(e.to_string())),
            Err(e) => return Err(e.into()),
        };
    let out = WalkForwardOutput {
        id,
        status: if wf.cancelled {
            RunStatus::Cancelled
        } else {
            RunStatus::Completed
        },
        strategy: &req.strategy,
        symbol: &req.symbol,
        interval: req.interval,
        walk_forward: spec.to_string(),
        rank_by: &args.rank_by,
        planned_windows: wf.planned_windows,
        windows: &wf.windows,
        final_equity: wf.result.final_equity,
        metrics: &wf.result.metrics,
        trades: &wf.result.trades,
    };
    ctx.emit(&out, || {
        let title = format!(
            "walk-forward {spec} {} {} {}: {} of {} windows{}, chosen by in-sample {}",
            req.strategy.name,
            req.symbol,
            req.interval,
            wf.windows.len(),
            wf.planned_windows,
            if wf.cancelled { " (cancelled)" } else { "" },
            args.rank_by
        );
        print_windows(&wf.windows);
        print_summary(
            &format!("{title}\nout of sample, stitched:"),
            &req.symbol,
            id,
            &wf.result,
        );
    })
}

async fn run_sweep_cmd(args: &RunArgs, req: BacktestRequest, ctx: &Context) -> Result<()> {
    let (axes, threads) = sweep_setup(args)?;
    let grid = sweep_grid(&axes);
    let shard = args.shard.unwrap_or(Shard { index: 0, count: 1 });
    let indices = shard.indices(grid.len());
    let shard_grid: Vec<_> = indices.iter().map(|&i| grid[i].clone()).collect();
    let store = match req.source {
        CandleSource::Store => Some(ctx.open_store()?),
        CandleSource::Csv(_) => None,
    };
    let json = ctx.json;
    let rank_by = args.rank_by.clone();
    let full_metrics_top = (!args.all_metrics).then_some(FULL_METRICS_TOP);
    let (job_cancel, watcher) = ctrl_c_flag();
    let job_req = req.clone();
    let job_rank_by = rank_by.clone();
    let (runs, series) = tokio::task::spawn_blocking(move || {
        let series = load_series(store.as_ref(), &job_req)?;
        let bar = progress_bar(shard_grid.len() as u64, json);
        bar.set_message("sweep");
        let ranking = SweepRanking {
            rank_by: &job_rank_by,
            full_metrics_top,
        };
        let runs = run_sweep_ranked(
            &job_req,
            &shard_grid,
            ranking,
            series.run_candles(),
            &series.columns,
            threads,
            &job_cancel,
            &|n| bar.set_position(n as u64),
        );
        bar.finish_and_clear();
        Ok::<_, BacktestRunError>((runs, series))
    })
    .await
    .context("the sweep workers stopped")??;
    watcher.abort();
    if let Some(out) = &args.out {
        let written = runs.len();
        let spec = ShardSpec {
            shard,
            combinations: grid.len(),
            rank_by: &rank_by,
            full_metrics_top,
            sweep: &args.sweep,
            request: &req,
            candles: &series.columns,
        };
        backtest_shard::write_shard(out, &spec, &indices, runs)?;
        return ctx.emit(
            &serde_json::json!({
                "shard": shard.to_string(),
                "combinations": written,
                "grid": grid.len(),
                "out": out,
            }),
            || {
                println!(
                    "shard {shard}: {written} of {} combinations written to {}",
                    grid.len(),
                    out.display()
                );
            },
        );
    }
    let keyed = runs
        .into_iter()
        .map(|r| (backtest_shard::rank_key(&rank_by, &r), r))
        .collect();
    print_sweep(ctx, &backtest_shard::rank(keyed), &rank_by)
}

/// A ranked sweep (or merge): JSON, or the best 20 as a table.
fn print_sweep(ctx: &Context, runs: &[SweepRun], rank_by: &str) -> Result<()> {
    ctx.emit(&runs, || {
        println!(
            "{} combinations ranked by {rank_by} (best first):",
            runs.len()
        );
        println!(
            "  {:<28} {:>10} {:>8} {:>10} {:>7}",
            "parameters", "return %", "sharpe", "max dd %", "trades"
        );
        for r in runs.iter().take(20) {
            let p = r
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            match (&r.metrics, &r.error) {
                (Some(m), _) => println!(
                    "  {p:<28} {:>10.2} {:>8.3} {:>10.2} {:>7}",
                    m.total_return_pct, m.sharpe, m.max_drawdown_pct, m.trades
                ),
                (None, Some(e)) => println!("  {p:<28} skipped: {e}"),
                (None, None) => {}
            }
        }
    })
}

pub async fn run(args: BacktestArgs, ctx: &Context) -> Result<()> {
    let Some(command) = args.command else {
        return run_backtest(args.run, ctx).await;
    };
    match command {
        BacktestCommand::Run(run) => run_backtest(*run, ctx).await,
        BacktestCommand::List { limit } => {
            let store = ctx.open_store()?;
            let runs = backtests::list(store.conn(), limit)?;
            ctx.emit(&runs, || {
                if runs.is_empty() {
                    println!("no backtests yet: run `trademind backtest --strategy sma-cross ...`");
                }
                for r in &runs {
                    let ret = r.metrics.as_ref().map_or_else(String::new, |m| {
                        format!("{:>9}", fmt::pct_signed(m.total_return_pct))
                    });
                    println!(
                        "{:>5}  {:<10} {:<14} {:<10} {:<4} {}  {ret}",
                        r.id,
                        r.status,
                        r.strategy,
                        r.symbol,
                        r.interval,
                        format_time(r.created_at)
                    );
                }
            })
        }
        BacktestCommand::Show { id } => {
            let store = ctx.open_store()?;
            let run = backtests::get(store.conn(), id)?
                .ok_or_else(|| usage(format!("there is no backtest {id}: see `backtest list`")))?;
            ctx.emit(&run, || {
                println!(
                    "backtest {}: {} {} {} [{}]",
                    run.id, run.strategy, run.symbol, run.interval, run.status
                );
                println!("  parameters: {}", run.parameters);
                if let Some(e) = &run.error {
                    println!("  error: {e}");
                }
                if !run.windows.is_empty() {
                    println!("  walk-forward windows (metrics below are out of sample, stitched):");
                    print_windows(&run.windows);
                }
                let ccy = currency(&run.symbol);
                if let Some(m) = &run.metrics {
                    for (k, v) in fmt::backtest_metrics(m, &ccy) {
                        println!("  {k:<20} {v}");
                    }
                }
                let prec = Precision::paper_or_guess(&ctx.settings().exchange.paper, &run.symbol);
                for (i, t) in run.trades.iter().enumerate() {
                    println!(
                        "  #{:<4} {} @ {}  ->  {} @ {}  pnl {}",
                        i + 1,
                        format_time(t.entry_time),
                        fmt::price(t.entry_price, &prec),
                        t.exit_time.map_or_else(|| "open".into(), format_time),
                        t.exit_price
                            .map_or_else(String::new, |p| fmt::price(p, &prec)),
                        fmt::money_signed(t.pnl, &ccy)
                    );
                }
            })
        }
        BacktestCommand::Cancel { id } => {
            let store = ctx.open_store()?;
            match backtests::request_cancel(store.conn(), id) {
                Ok(()) => {}
                Err(crate::store::StoreError::NotFound(_)) => {
                    return Err(usage(format!(
                        "there is no backtest {id}: see `backtest list`"
                    )));
                }
                Err(crate::store::StoreError::Conflict(_)) => {
                    let status = backtests::status(store.conn(), id)?;
                    bail!("backtest {id} is already {status}: there is nothing to cancel");
                }
                Err(e) => return Err(e.into()),
            }
            // A run whose process is gone (killed, or crashed before recording its end) will
            // never see the request: end it here, or the row says `running` forever.
            let owner = backtests::owner_pid(store.conn(), id)?;
            if !owner.is_some_and(crate::app::backtest::process_alive) {
                backtests::cancel(
                    store.conn(),
                    id,
                    None,
                    chrono::Utc::now().timestamp_millis(),
                )?;
                return ctx.emit(
                    &serde_json::json!({ "id": id, "status": RunStatus::Cancelled }),
                    || println!("backtest {id}: the process running it is gone; marked cancelled"),
                );
            }
            ctx.emit(
                &serde_json::json!({ "id": id, "status": RunStatus::CancelRequested }),
                || {
                    println!(
                        "asked backtest {id} to stop; it ends `cancelled` at its next check (see `backtest show {id}`)"
                    );
                },
            )
        }
        BacktestCommand::Merge { files } => {
            let (rank_by, runs) = backtest_shard::merge(&files)?;
            print_sweep(ctx, &runs, &rank_by)
        }
        BacktestCommand::Compare {
            ids,
            seed,
            resamples,
            report,
        } => super::backtest_engine::run_compare(&ids, seed, resamples, report.as_deref(), ctx),
        BacktestCommand::Delete { id } => {
            let store = ctx.open_store()?;
            if !backtests::delete(store.conn(), id)? {
                return Err(usage(format!(
                    "there is no backtest {id}: see `backtest list`"
                )));
            }
            ctx.emit(&serde_json::json!({ "deleted": id }), || {
                println!("deleted backtest {id}");
            })
        }
    }
}
