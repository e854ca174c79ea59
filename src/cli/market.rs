//! `trademind data import|fetch` and `trademind indicators`: candles into the store, and the
//! latest indicator values computed from it.

use anyhow::{Context as _, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::PathBuf;

use super::{Context, UsageError};
use crate::domain::Symbol;
use crate::domain::market::indicators::{IndicatorParams, IndicatorSet, IndicatorValues, Ohlcv};
use crate::domain::market::{Interval, TimestampMs};
use crate::services::market_data::fetch::{FetchRequest, KlineClient, fetch_into_store};
use crate::services::market_data::import::{ImportOptions, import_file};
use crate::store::candles::{count_candles, for_each_candle};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Import candles from a CSV file: Binance kline dumps (12 columns, ms or µs open times,
    /// with or without header), plain open_time,open,high,low,close,volume files, or
    /// CryptoDataDownload exports. Re-importing the same file changes nothing.
    Import(ImportArgs),
    /// Download closed candles from Binance (GET /api/v3/klines), resuming after the last
    /// stored candle.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Symbol the candles belong to, e.g. BTCUSDT.
    #[arg(long)]
    pub symbol: String,
    /// Candle interval: 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w.
    #[arg(long)]
    pub interval: String,
    /// Import the good rows and report the bad ones instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Symbol, e.g. BTCUSDT.
    pub symbol: String,
    /// Candle interval: 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w.
    pub interval: String,
    /// First day or instant wanted (UTC): 2024-01-01 or 2024-01-01T12:00:00Z.
    #[arg(long)]
    pub from: String,
    /// End (exclusive, UTC); default: now. Same formats as --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Connection whose REST endpoint serves the klines (default: trading.connection; "paper"
    /// reads Binance production, a testnet connection the testnet).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

#[derive(Debug, Args)]
pub struct IndicatorsArgs {
    /// Symbol, e.g. BTCUSDT.
    pub symbol: String,
    /// Candle interval, e.g. 1h.
    pub interval: String,
    /// How many of the latest candles to show.
    #[arg(long, default_value_t = 1)]
    pub last: usize,
}

fn symbol(raw: &str) -> Result<Symbol> {
    Symbol::new(raw).map_err(|e| UsageError(e.to_string()).into())
}

fn interval(raw: &str) -> Result<Interval> {
    raw.parse::<Interval>()
        .map_err(|e| UsageError(e.to_string()).into())
}

/// `2024-01-01` (midnight UTC) or an RFC 3339 instant, as ms since the epoch.
fn parse_instant(flag: &str, raw: &str) -> Result<TimestampMs> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| {
            UsageError(format!(
                "{flag} {raw:?}: use a date like 2024-01-01 or an instant like 2024-01-01T12:00:00Z"
            ))
            .into()
        })
}

fn time_text(ms: TimestampMs) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A progress bar on stderr, hidden when stderr is not a terminal or output is JSON.
fn progress_bar(ctx: &Context, template: &str) -> ProgressBar {
    if ctx.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

pub async fn run_data(cmd: DataCommand, ctx: &Context) -> Result<()> {
    match cmd {
        DataCommand::Import(args) => import(args, ctx),
        DataCommand::Fetch(args) => fetch(args, ctx).await,
    }
}

fn import(args: ImportArgs, ctx: &Context) -> Result<()> {
    let symbol = symbol(&args.symbol)?;
    let interval = interval(&args.interval)?;
    let store = ctx.open_store()?;
    let bar = progress_bar(ctx, "{bar:40} {bytes}/{total_bytes} of the file imported");
    let summary = import_file(
        store.conn(),
        &args.file,
        &symbol,
        interval,
        ImportOptions {
            skip_bad: args.skip_bad,
        },
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    ctx.emit(&summary, || {
        println!(
            "{} {}: {} rows read, {} inserted, {} already present",
            symbol, interval, summary.rows_read, summary.inserted, summary.already_present
        );
        if let (Some(a), Some(b)) = (summary.first_open_time, summary.last_open_time) {
            println!(
                "range {} → {} (UTC, open times)",
                time_text(a),
                time_text(b)
            );
        }
        if !summary.skipped.is_empty() {
            println!("{} bad rows skipped:", summary.skipped.len());
            for bad in summary.skipped.iter().take(20) {
                println!("  line {}: {}", bad.line, bad.reason);
            }
            if summary.skipped.len() > 20 {
                println!("  … and {} more", summary.skipped.len() - 20);
            }
        }
        if summary.gaps.is_empty() {
            println!("no gaps");
        } else {
            let missing: i64 = summary.gaps.iter().map(|g| g.missing).sum();
            println!("{} gaps, {missing} candles missing:", summary.gaps.len());
            for gap in summary.gaps.iter().take(20) {
                println!("  {} missing after {}", gap.missing, time_text(gap.after));
            }
        }
    })
}

async fn fetch(args: FetchArgs, ctx: &Context) -> Result<()> {
    let symbol = symbol(&args.symbol)?;
    let interval = interval(&args.interval)?;
    let from = parse_instant("--from", &args.from)?;
    let to = args
        .to
        .as_deref()
        .map(|t| parse_instant("--to", t))
        .transpose()?;
    let (_, environment) =
        crate::app::venue::market_environment(ctx.settings(), args.connection.as_deref())?;
    let client = KlineClient::new(&ctx.settings().market_data_for(environment))?;
    let store = ctx.open_store()?;
    let bar = progress_bar(ctx, "{bar:40} {percent}% of the range {msg}");
    let request = FetchRequest {
        symbol: symbol.clone(),
        interval,
        from,
        to,
    };
    let summary = fetch_into_store(&client, &store, &request, &mut |done, total| {
        bar.set_length(total.max(1) as u64);
        bar.set_position(done.max(0) as u64);
    })
    .await
    .with_context(|| format!("fetching {symbol} {interval} klines"))?;
    bar.finish_and_clear();
    let stored = count_candles(store.conn(), &symbol, interval)?;
    #[derive(Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        summary: &'a crate::services::market_data::fetch::FetchSummary,
        stored_total: usize,
    }
    ctx.emit(
        &Out {
            summary: &summary,
            stored_total: stored,
        },
        || {
            println!(
                "{symbol} {interval}: {} requests, {} candles received, {} inserted, {} already present; {stored} stored in total",
                summary.requests, summary.received, summary.inserted, summary.already_present
            );
            if let (Some(a), Some(b)) = (summary.first_open_time, summary.last_open_time) {
                println!("range {} → {} (UTC, open times)", time_text(a), time_text(b));
            }
            if summary.skipped_open_candle {
                println!(
                    "the current candle is still open by Binance's clock ({}) and was not stored",
                    time_text(summary.server_time)
                );
            }
        },
    )
}

pub fn run_indicators(args: IndicatorsArgs, ctx: &Context) -> Result<()> {
    let symbol = symbol(&args.symbol)?;
    let interval = interval(&args.interval)?;
    let store = ctx.open_store()?;
    // EMA-type indicators (and OBV, VWAP) depend on the whole history, as in TA-Lib, so every
    // stored candle goes through the streaming set; only the last N results are kept, so memory
    // stays O(N) however long the series (the batch over every loaded candle took 1 GB for 3 M).
    // The streaming set is the batch's twin, bit for bit.
    let keep = args.last.max(1);
    let mut set = IndicatorSet::new(&IndicatorParams::default());
    let mut rows: std::collections::VecDeque<IndicatorValues> = std::collections::VecDeque::new();
    let seen = for_each_candle(store.conn(), &symbol, interval, &mut |c| {
        if rows.len() == keep {
            rows.pop_front();
        }
        rows.push_back(set.update(&Ohlcv::from(&c)));
    })?;
    if seen == 0 {
        return Err(UsageError(format!(
            "no {symbol} {interval} candles stored: run `trademind data import` or `trademind data fetch` first"
        ))
        .into());
    }
    let rows: Vec<IndicatorValues> = rows.into();
    ctx.emit(&rows, || {
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<16} {:>10} {:>10} {:>10} {:>6} {:>9} {:>9} {:>10} {:>10} {:>8} {:>6} {:>6} {:>6} {:>12} {:>10} {:>6}",
            "open (UTC)", "close", "sma20", "ema20", "rsi14", "macd", "hist", "bb_up", "bb_low",
            "atr14", "adx14", "%K", "%D", "obv", "vwap", "signal"
        );
        for r in &rows {
            println!(
                "{:<16} {:>10} {:>10} {:>10} {:>6} {:>9} {:>9} {:>10} {:>10} {:>8} {:>6} {:>6} {:>6} {:>12} {:>10} {:>6}",
                time_text(r.open_time),
                f(Some(r.close)),
                f(r.sma),
                f(r.ema),
                f(r.rsi),
                f(r.macd.map(|m| m.macd)),
                f(r.macd.map(|m| m.histogram)),
                f(r.bollinger.map(|b| b.upper)),
                f(r.bollinger.map(|b| b.lower)),
                f(r.atr),
                f(r.adx),
                f(r.stochastic.map(|s| s.k)),
                f(r.stochastic.map(|s| s.d)),
                f(r.obv),
                f(r.vwap),
                format!("{:?}", r.signal).to_lowercase(),
            );
        }
    })
}
