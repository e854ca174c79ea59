//! `trademind demo`: the whole loop offline — the bundled January 2025 candles replayed as a
//! live market through the paper exchange, the rules engine (the LLM when a key is configured),
//! risk, execution and the trading jobs — in the TUI, or headless with `--daemon`.
//!
//! The demo keeps its own database in `<data-dir>/demo/`, reset at every start, so it never
//! touches the real one.

use anyhow::{Context as _, Result};
use clap::Args;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

use super::{Context, DB_FILE, UsageError};
use crate::app::bus::EventBus;
use crate::app::decide::AnyEngine;
use crate::app::demo::{Demo, DemoError, DemoOptions, DemoSummary, reset_database};
use crate::config::{LoadedConfig, Settings};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run headless, as fast as possible, and print the trades and the final equity.
    #[arg(long)]
    pub daemon: bool,
    /// Replay speed in simulated seconds per real second (default demo.speed: 3600, one 1h
    /// candle a second). The TUI only; headless runs as fast as it can.
    #[arg(long, value_name = "X")]
    pub speed: Option<f64>,
    /// Candles to replay after the warm-up: at most 644, the bundled 744 less the warm-up
    /// (demo.warmup_candles, 100); default: all of them.
    #[arg(long, value_name = "N")]
    pub candles: Option<usize>,
}

/// The user's settings turned into the demo's: its data dir, the paper exchange, BTCUSDT 1h,
/// and the demo strategy's livelier rules and confidence floor.
pub fn demo_settings(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    s.general.data_dir = Some(settings.data_dir().join("demo"));
    s.trading.live = false;
    s.trading.connection = "paper".into();
    s.trading.symbols = vec!["BTCUSDT".into()];
    s.trading.interval = "1h".into();
    s.rules = settings.demo.rules();
    s.risk.min_confidence = settings.demo.min_confidence;
    // One position at a time: the demo strategy does not pyramid.
    if let Ok(size) = rust_decimal::Decimal::try_from(s.rules.position_size_pct) {
        s.risk.max_symbol_exposure_pct = size;
    }
    s
}

pub async fn run(args: DemoArgs, ctx: &Context) -> Result<()> {
    if let Some(speed) = args.speed
        && !(speed.is_finite() && speed > 0.0)
    {
        return Err(UsageError(format!("--speed {speed}: must be a positive number")).into());
    }
    let settings = demo_settings(ctx.settings());
    let demo_ctx = Context {
        loaded: LoadedConfig {
            settings: settings.clone(),
            origins: ctx.loaded.origins.clone(),
            file: ctx.loaded.file.clone(),
        },
        json: ctx.json,
    };
    let dir = demo_ctx.data_dir();
    crate::secrets::ensure_private_dir(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the demo dir {}: {e}", dir.display()))?;
    let database = dir.join(DB_FILE);
    reset_database(&database)
        .with_context(|| format!("cannot reset the demo database {}", database.display()))?;

    let engine = match super::decide::grok_key(ctx).await? {
        Some(key) => {
            // The LLM engine records costs in the demo database; its replies are cached in
            // the demo dir's llm_cache.sqlite, which the reset keeps.
            let shared = Arc::new(Mutex::new(demo_ctx.open_store()?));
            super::decide::choose_engine_with(&demo_ctx, Some("llm"), shared, Some(key))
                .await?
                .0
        }
        None => AnyEngine::Rules(super::decide::rules_engine(&settings)),
    };
    let bus = EventBus::default();
    let demo = Arc::new(Demo::prepare(
        Arc::new(settings.clone()),
        &database,
        bus.clone(),
        engine,
    )?);
    let cancel = CancellationToken::new();

    if args.daemon {
        let options = DemoOptions {
            speed: None,
            candles: args.candles,
        };
        let run = demo.run(options, cancel.clone());
        tokio::pin!(run);
        let outcome = tokio::select! {
            s = &mut run => s,
            _ = crate::app::daemon::shutdown_listener() => {
                cancel.cancel();
                run.await
            }
        };
        let summary = outcome.map_err(|e| match e {
            DemoError::TooFewCandles { .. } => anyhow::Error::from(UsageError(e.to_string())),
            other => other.into(),
        })?;
        return print_summary(ctx, &summary);
    }

    let options = DemoOptions {
        speed: Some(args.speed.unwrap_or(settings.demo.speed)),
        candles: args.candles,
    };
    // The interface reads the replay's clock; once the replay ends, simulated time runs on at
    // its pace, so the stopped jobs turn stale on screen.
    // At most an hour a second: a test's million-fold replay must not race through months.
    let speed = options.speed.unwrap_or(1.0).min(3600.0);
    let face_clock = crate::app::demo::FaceClock::new(
        demo.clock.clone(),
        speed,
        Arc::new(|| chrono::Utc::now().timestamp_millis()),
    );
    let replay = {
        let (demo, cancel, face) = (demo.clone(), cancel.clone(), face_clock.clone());
        tokio::spawn(async move {
            let summary = demo.run(options, cancel).await;
            face.replay_ended();
            summary
        })
    };
    // The interface's pause, close, cancel and backtest requests go to the demo's service.
    let (control, requests) = crate::app::control::ControlHandle::channel(16);
    let (backtests, _worker) = crate::app::daemon::backtest_queue(
        crate::store::Store::open(&database)?,
        Arc::new(demo.clock.clone()),
        demo.recorder.clone(),
        bus.clone(),
        settings.scheduler.backtest_queue_size,
        cancel.clone(),
    );
    let server = tokio::spawn(crate::app::daemon::serve_control(
        demo.jobs.trading.clone(),
        requests,
        backtests,
        Arc::new(settings.clone()),
        Arc::new(demo.clock.clone()),
        cancel.clone(),
    ));
    // The interface reads the replay's clock: the header shows the simulated time and the
    // day's PnL starts at the simulated midnight the trades are stamped against.
    let shown = crate::tui::run_on_clock(
        &settings,
        bus,
        Some(control),
        Arc::new(face_clock),
        demo_stale_after_ms(&settings),
        Some(demo.book.clone()),
    )
    .await;
    cancel.cancel();
    let _ = server.await;
    match replay.await {
        Ok(Ok(summary)) => tracing::info!(
            candles = summary.candles_replayed,
            equity = %summary.final_equity,
            "demo finished"
        ),
        Ok(Err(e)) => tracing::warn!("demo replay failed: {e}"),
        Err(e) => tracing::warn!("demo replay task failed: {e}"),
    }
    shown
}

/// Three candles of simulated time: the replay stamps each job run once per candle.
fn demo_stale_after_ms(settings: &crate::config::Settings) -> i64 {
    settings
        .trading
        .interval
        .parse::<crate::domain::market::Interval>()
        .map(|i| i.millis().saturating_mul(3))
        .unwrap_or(3 * 3_600_000)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn print_summary(ctx: &Context, s: &DemoSummary) -> Result<()> {
    ctx.emit(s, || {
        println!(
            "demo: {} {} candles {} .. {} UTC replayed through the paper exchange ({} engine)",
            s.candles_replayed,
            s.symbol,
            time(s.from_ms),
            time(s.to_ms),
            s.engine
        );
        println!("decisions {}  orders {}", s.decisions, s.orders);
        println!("trades: {}", s.trades.len());
        for t in &s.trades {
            println!(
                "  {}  {} qty {} @ {} -> {} {}  pnl {}  fees {}",
                time(t.opened_at),
                t.symbol,
                t.quantity,
                t.entry_price,
                t.exit_price.map_or("-".to_string(), |p| p.to_string()),
                t.exit,
                t.realized_pnl.get().round_dp(2),
                t.fees.get().round_dp(4),
            );
        }
        println!("initial balance      {}", s.initial_balance);
        println!(
            "realised PnL         {} (net of {} fees)",
            s.realized_pnl.get().round_dp(2),
            s.fees.get().round_dp(2)
        );
        println!(
            "open positions       {} at {}",
            s.open_position_value.get().round_dp(2),
            s.last_price
        );
        println!("final equity         {}", s.final_equity.get().round_dp(2));
        println!("database             {}", s.database.display());
    })
}
