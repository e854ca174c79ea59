//! The embedded demo: the bundled January 2025 candles replayed as a live market through the
//! paper exchange, the rules (or LLM) engine, the risk layer and the trading service, with the
//! daemon's own jobs; in the TUI at an accelerated speed, or headless as fast as possible.

use crate::domain::trading::order::OrderPurpose;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::app::backtest::{BacktestRequest, CandleSource, SizingChoice};
use crate::app::bus::{Event, EventBus};
use crate::app::daemon::{
    Jobs, MONITOR_ORDERS, RECONCILE, StoreRecorder, StrategyJob, UPDATE_PRICES, backtest_queue,
    run_recorded, trading_job_name,
};
use crate::app::decide::{AnyEngine, DecisionEngine};
use crate::app::scheduler::Clock;
use crate::app::streams::ShownBook;
use crate::app::trading::{TradingDeps, TradingService};
use crate::config::Settings;
use crate::domain::backtest::fills::{Costs, FillModel};
use crate::domain::backtest::strategies::StrategySpec;
use crate::domain::market::{Candle, Interval, candle_book, candle_trades};
use crate::domain::trading::mode::TradingMode;
use crate::domain::trading::order::OrderStatus;
use crate::domain::{Price, Qty, Quote, Symbol};
use crate::services::exchange::Exchange;
use crate::services::exchange::paper::{PaperClock, PaperExchange};
use crate::services::market_data::import::parse_candles;
use crate::services::market_stream::wire::DepthDiff;
use crate::services::market_stream::{SharedBook, SnapshotStep};
use crate::store::candles::insert_candles;
use crate::store::{Store, positions, strategies};

/// The bundled market: Binance BTCUSDT 1h candles, January 2025 (see `assets/README.md`).
pub const BUNDLED_BTCUSDT_1H: &str = include_str!("../../assets/btcusdt_1h_2025-01_binance.csv");

/// `[demo]` lives with the other settings; named here as the demo has always named it.
pub use crate::config::demo::DemoConfig;

/// What the demo can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the bundled candles are unreadable: {0}")]
    Candles(String),
    #[error(
        "the bundled data has {available} candles after the {warmup}-candle warm-up; ask for at most that many"
    )]
    TooFewCandles { available: usize, warmup: usize },
    #[error("demo database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("paper exchange: {0}")]
    Exchange(#[from] crate::services::exchange::ExchangeError),
    #[error("the database lock was poisoned by a panic")]
    Poisoned,
}

/// The replay's simulated wall clock, shared by the paper exchange, the trading service's
/// callers and the job recorder.
#[derive(Debug, Clone, Default)]
pub struct ReplayClock {
    now: Arc<AtomicI64>,
}

impl ReplayClock {
    pub fn set(&self, ms: i64) {
        self.now.store(ms, Ordering::SeqCst);
    }

    /// The same clock for the paper exchange's order and fill timestamps.
    pub fn paper_clock(&self) -> PaperClock {
        let now = self.now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    }
}

impl Clock for ReplayClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// The clock the demo's interface reads: the replay's while it runs; once the replay has
/// ended, simulated time goes on at the replay's pace from where it stopped, so what no longer
/// runs (every job) turns stale on screen instead of staying green for ever.
#[derive(Clone)]
pub struct FaceClock {
    replay: ReplayClock,
    /// Simulated milliseconds per real millisecond.
    speed: f64,
    /// (wall, replay) times when the replay ended.
    ended: Arc<Mutex<Option<(i64, i64)>>>,
    wall: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl FaceClock {
    pub fn new(replay: ReplayClock, speed: f64, wall: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        FaceClock {
            replay,
            speed,
            ended: Arc::new(Mutex::new(None)),
            wall,
        }
    }

    /// The replay is over: from now on simulated time runs on by itself.
    pub fn replay_ended(&self) {
        let at = ((self.wall)(), self.replay.now_ms());
        if let Ok(mut ended) = self.ended.lock() {
            ended.get_or_insert(at);
        }
    }
}

impl Clock for FaceClock {
    fn now_ms(&self) -> i64 {
        let ended = self.ended.lock().ok().and_then(|e| *e);
        match ended {
            None => self.replay.now_ms(),
            Some((wall_then, replay_then)) => {
                let real = ((self.wall)() - wall_then).max(0) as f64;
                replay_then.saturating_add((real * self.speed) as i64)
            }
        }
    }
}

/// How a run of the demo goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoOptions {
    /// Simulated seconds per real second; `None` replays as fast as possible (headless).
    pub speed: Option<f64>,
    /// Candles to replay after the warm-up; `None` for all the bundled data.
    pub candles: Option<usize>,
}

/// One round trip of the demo strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoTrade {
    pub symbol: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub entry_price: Price,
    /// Bought (closed positions) or still held (open ones).
    pub quantity: Qty,
    /// The price the position left at (the exit order's average), when closed.
    pub exit_price: Option<Price>,
    /// stop_loss, take_profit, exit (a SELL decision) or open.
    pub exit: String,
    /// Net of every fee.
    pub realized_pnl: Quote,
    pub fees: Quote,
}

/// What `demo --daemon` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoSummary {
    pub symbol: String,
    pub interval: String,
    pub engine: String,
    pub candles_replayed: usize,
    pub from_ms: i64,
    pub to_ms: i64,
    pub decisions: i64,
    pub orders: i64,
    pub trades: Vec<DemoTrade>,
    pub initial_balance: Quote,
    /// Sum over positions, net of fees.
    pub realized_pnl: Quote,
    pub fees: Quote,
    /// Open positions valued at the last price.
    pub open_position_value: Quote,
    pub last_price: Price,
    /// The paper account at the last price: every asset's balance valued in USDT.
    pub final_equity: Quote,
    /// The demo database, for `trademind --data-dir <dir>/.. status` and friends.
    pub database: std::path::PathBuf,
}

/// The parts of a prepared demo.
pub struct Demo {
    pub store: Arc<Mutex<Store>>,
    pub paper: Arc<PaperExchange>,
    pub jobs: Arc<Jobs<PaperExchange>>,
    pub clock: ReplayClock,
    pub recorder: Arc<StoreRecorder>,
    pub bus: EventBus,
    symbol: Symbol,
    interval: Interval,
    candles: Vec<Candle>,
    warmup: usize,
    initial_balance: Quote,
    database: std::path::PathBuf,
    engine_label: &'static str,
    /// The strategy the side-by-side backtest runs.
    backtest_spec: StrategySpec,
    settings: Arc<Settings>,
    /// The book the replay implies around each candle's close, for the Market screen.
    pub book: ShownBook,
    replay_book: SharedBook,
    /// The paper exchange's tick and step for the symbol: the replay's book and trades use them.
    tick: rust_decimal::Decimal,
    step: rust_decimal::Decimal,
}

/// Levels a side of the replay's book.
const REPLAY_BOOK_LEVELS: usize = 20;

/// The seed's RSI + MACD rule as a backtest strategy, with the rules engine's levels.
fn rules_spec(rules: &crate::domain::decision::RulesConfig) -> StrategySpec {
    StrategySpec {
        name: "rsi-macd".into(),
        params: [
            ("oversold".to_string(), rules.oversold),
            ("overbought".to_string(), rules.overbought),
            ("stop_pct".to_string(), rules.stop_loss_pct),
            ("take_pct".to_string(), rules.take_profit_pct),
        ]
        .into(),
    }
}

/// Remove the demo database and its WAL files, so every demo starts from the same state.
pub fn reset_database(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(std::path::PathBuf::from(p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The strategy the demo trades: the rules engine (or the LLM) on BTCUSDT 1h.
pub const DEMO_STRATEGY: &str = "demo";

impl Demo {
    /// Open the (fresh) demo database at `database`, the paper account on the replay clock,
    /// the demo strategy and the trading service. `settings` are already the demo's.
    pub fn prepare(
        settings: Arc<Settings>,
        database: &Path,
        bus: EventBus,
        engine: AnyEngine,
    ) -> Result<Demo, DemoError> {
        // The demo replays January 2025: its news must be what was known then, by the same
        // point-in-time rule as a backtest (news dated after the replay time never reaches a
        // prompt).
        let engine = engine.point_in_time();
        let symbol = Symbol::new("BTCUSDT").map_err(|e| DemoError::Candles(e.to_string()))?;
        let interval = Interval::H1;
        let candles = parse_candles(BUNDLED_BTCUSDT_1H, interval, false)
            .map_err(|e| DemoError::Candles(e.to_string()))?
            .candles;
        let clock = ReplayClock::default();
        let start_ms = candles.first().map(|c| c.open_time).unwrap_or(0);
        clock.set(start_ms);

        let initial_balance: Quote = settings
            .trading
            .paper_starting_balance
            .parse()
            .map_err(|e| DemoError::Candles(format!("trading.paper_starting_balance: {e}")))?;
        let mut paper_config = settings.exchange.paper.clone();
        paper_config.initial_balances = [("USDT".to_string(), initial_balance.get())].into();
        let paper = PaperExchange::open(Store::open(database)?, "paper", &paper_config)?
            .with_clock(clock.paper_clock());
        let store = Store::open(database)?;
        // The backtest shown beside the replay runs what the engine runs: a strategy engine's
        // own strategy, else the seed's rule with the demo's levels (the rules engine's rule).
        let (parameters, backtest_spec) = match &engine {
            AnyEngine::Strategy(e) => {
                let spec = e.spec().clone();
                let mut parameters = serde_json::json!({ "strategy": spec.name });
                for (k, v) in &spec.params {
                    parameters[k] = serde_json::json!(v);
                }
                (parameters, spec)
            }
            _ => (
                serde_json::json!({
                    "oversold": settings.rules.oversold,
                    "overbought": settings.rules.overbought,
                    "stop_loss_pct": settings.rules.stop_loss_pct,
                    "take_profit_pct": settings.rules.take_profit_pct,
                }),
                rules_spec(&settings.rules),
            ),
        };
        strategies::add_strategy(
            store.conn(),
            &strategies::NewStrategy {
                name: DEMO_STRATEGY.into(),
                symbols: vec![symbol.as_str().to_string()],
                interval: interval.to_string(),
                decision_engine: engine.label().to_string(),
                parameters,
                connection_id: None,
            },
            start_ms,
        )?;
        strategies::set_active(store.conn(), DEMO_STRATEGY, true, start_ms)?;
        let strategy = strategies::strategy_by_name(store.conn(), DEMO_STRATEGY)?
            .ok_or_else(|| crate::store::StoreError::NotFound("the demo strategy".into()))?;
        let store = Arc::new(Mutex::new(store));
        let paper = Arc::new(paper);
        let engine_label = engine.label();
        let trading = Arc::new(TradingService::new(TradingDeps {
            exchange: paper.clone(),
            store: store.clone(),
            connection: "paper".into(),
            mode: TradingMode::Paper,
            settings: settings.clone(),
            bus: bus.clone(),
            mailer: None,
        }));
        let jobs = Arc::new(Jobs::new(trading, vec![StrategyJob { strategy, engine }]));
        let recorder = Arc::new(StoreRecorder::new(store.clone(), bus.clone()));
        let filters = settings
            .exchange
            .paper
            .filters_for(symbol.as_str())
            .ok_or_else(|| {
                DemoError::Candles(format!("{symbol}: not a symbol the paper exchange trades"))
            })?;
        let replay_book = SharedBook::new(&settings.stream);
        Ok(Demo {
            book: ShownBook::new(symbol.clone(), replay_book.clone()),
            replay_book,
            tick: filters.tick_size,
            step: filters.step_size,
            store,
            paper,
            jobs,
            clock,
            recorder,
            bus,
            symbol,
            interval,
            candles,
            warmup: settings.demo.warmup_candles,
            initial_balance,
            database: database.to_path_buf(),
            engine_label,
            backtest_spec,
            settings,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Store>, DemoError> {
        self.store.lock().map_err(|_| DemoError::Poisoned)
    }

    /// One closed candle reaches the market: the paper exchange fills what it crosses, the
    /// candle is stored and announced, and the jobs run as the scheduler would at that time.
    async fn step(&self, candle: &Candle, trade: bool) -> Result<(), DemoError> {
        // A few seconds after the close, as the live schedule runs (candle_close_offset_seconds).
        self.clock.set(candle.close_time(self.interval) + 5_000);
        self.paper.on_candle(&self.symbol, self.interval, candle)?;
        insert_candles(
            self.lock()?.conn(),
            &self.symbol,
            self.interval,
            std::slice::from_ref(candle),
        )?;
        self.show_market(candle, trade);
        self.bus.publish(Event::CandleClosed {
            symbol: self.symbol.clone(),
            interval: self.interval,
            candle: candle.clone(),
        });
        self.bus.publish(Event::PriceUpdated {
            symbol: self.symbol.clone(),
            price: candle.close,
            time_ms: self.clock.now_ms(),
        });
        if !trade {
            return Ok(());
        }
        let (clock, recorder) = (&self.clock, self.recorder.as_ref());
        // Job failures are recorded and shown as health; the replay goes on, as the daemon does.
        let _ = run_recorded(MONITOR_ORDERS, clock, recorder, |now| {
            self.jobs.monitor_orders(now)
        })
        .await;
        let _ = run_recorded(UPDATE_PRICES, clock, recorder, |now| {
            self.jobs.update_prices(now)
        })
        .await;
        let name = trading_job_name(DEMO_STRATEGY);
        let _ = run_recorded(&name, clock, recorder, |now| {
            self.jobs.autonomous_trading(0, now)
        })
        .await;
        Ok(())
    }

    /// What the candle implies for the Market screen, by the path a live stream takes: its
    /// trades as `Event::Trade` on the bus (replayed candles only: the warm-up would flood
    /// it) and the book around its close in `self.book`.
    fn show_market(&self, candle: &Candle, publish_trades: bool) {
        let (bids, asks) = candle_book(candle, self.tick, self.step, REPLAY_BOOK_LEVELS);
        let snapshot = DepthDiff {
            event_time: candle.close_time(self.interval),
            first_update_id: candle.open_time.max(0) as u64,
            final_update_id: candle.open_time.max(0) as u64,
            bids,
            asks,
        };
        if let SnapshotStep::Invalid(e) = self.replay_book.replace(&snapshot) {
            tracing::warn!("the replay's book at {} is unusable: {e}", candle.open_time);
        }
        if !publish_trades {
            return;
        }
        for t in candle_trades(candle, self.interval, self.tick, self.step) {
            self.bus.publish(Event::Trade {
                symbol: self.symbol.clone(),
                price: t.price,
                qty: t.qty,
                time_ms: t.time_ms,
                buyer_is_maker: t.buyer_is_maker,
            });
        }
    }

    /// Warm up, then replay until the candles run out or `cancel` fires.
    pub async fn run(
        &self,
        options: DemoOptions,
        cancel: CancellationToken,
    ) -> Result<DemoSummary, DemoError> {
        let available = self.candles.len().saturating_sub(self.warmup);
        let count = options.candles.unwrap_or(available);
        if count > available || available == 0 {
            return Err(DemoError::TooFewCandles {
                available,
                warmup: self.warmup,
            });
        }
        for candle in &self.candles[..self.warmup] {
            self.step(candle, false).await?;
        }
        let (clock, recorder) = (&self.clock, self.recorder.as_ref());
        let _ = run_recorded(RECONCILE, clock, recorder, |now| self.jobs.reconcile(now)).await;
        let pause = options
            .speed
            .map(|s| Duration::from_secs_f64(self.interval.millis() as f64 / 1000.0 / s));
        let mut replayed = 0;
        for candle in &self.candles[self.warmup..self.warmup + count] {
            if cancel.is_cancelled() {
                break;
            }
            self.step(candle, true).await?;
            replayed += 1;
            if let Some(pause) = pause {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
        if replayed > 0 && !cancel.is_cancelled() {
            self.backtest_replayed(replayed, &cancel).await?;
        }
        let summary = self.summary(replayed).await?;
        self.lock()?.checkpoint()?;
        Ok(summary)
    }

    /// The same rule backtested over the replayed candles, through the daemon's on-demand
    /// `run_backtest` queue: live and backtest side by side in the Backtests screen.
    async fn backtest_replayed(
        &self,
        replayed: usize,
        cancel: &CancellationToken,
    ) -> Result<(), DemoError> {
        let candles = &self.candles[self.warmup..self.warmup + replayed];
        let (Some(first), Some(last)) = (candles.first(), candles.last()) else {
            return Ok(());
        };
        let request = BacktestRequest {
            strategy: self.backtest_spec.clone(),
            symbol: self.symbol.as_str().to_string(),
            interval: self.interval,
            from: Some(first.open_time),
            to: Some(last.open_time + 1),
            source: CandleSource::Store,
            initial_cash: self.initial_balance,
            costs: Costs::default(),
            fill: FillModel::default(),
            sizing: SizingChoice::Fixed,
            risk: self.settings.risk.clone(),
        };
        let worker_cancel = cancel.child_token();
        let (queue, worker) = backtest_queue(
            Store::open(&self.database)?,
            Arc::new(self.clock.clone()),
            self.recorder.clone(),
            self.bus.clone(),
            self.settings.scheduler.backtest_queue_size,
            worker_cancel.clone(),
        );
        if let Err(e) = queue.submit(request.into()) {
            tracing::warn!("the demo backtest was not queued: {e}");
        }
        // Closing the queue lets the worker finish what was submitted and stop.
        drop(queue);
        let _ = worker.await;
        Ok(())
    }

    async fn summary(&self, replayed: usize) -> Result<DemoSummary, DemoError> {
        let last_price = self.paper.ticker_price(&self.symbol).await?;
        let balances = self.paper.balances().await?;
        let mut final_equity = Quote::ZERO;
        for b in &balances {
            if b.asset == "USDT" {
                final_equity += Quote(b.total());
            } else if self.symbol.as_str().starts_with(&b.asset) {
                final_equity += Quote(b.total() * last_price.get());
            }
        }
        let store = self.lock()?;
        let c = store.conn();
        let mut trades = Vec::new();
        let (mut realized, mut fees, mut open_value) = (Quote::ZERO, Quote::ZERO, Quote::ZERO);
        let mut rows = positions::closed_positions(c, usize::MAX / 2)?;
        rows.extend(positions::open_positions(c)?);
        rows.sort_by_key(|r| r.position.opened_at);
        for row in rows {
            let p = &row.position;
            realized += p.realized_pnl;
            fees += p.fees_paid;
            let (bought, exit, exit_price) = orders_of(c, row.id)?;
            let exit = match (p.closed_at, exit) {
                (None, _) => "open".to_string(),
                (Some(_), Some(purpose)) => purpose.to_string(),
                (Some(_), None) => "exit".to_string(),
            };
            if p.closed_at.is_none() {
                open_value += p.quantity * last_price;
            }
            trades.push(DemoTrade {
                symbol: p.symbol.as_str().to_string(),
                opened_at: p.opened_at,
                closed_at: p.closed_at,
                entry_price: p.entry_price,
                quantity: if p.closed_at.is_some() {
                    bought
                } else {
                    p.quantity
                },
                exit_price,
                exit,
                realized_pnl: p.realized_pnl,
                fees: p.fees_paid,
            });
        }
        let count = |sql: &str| -> Result<i64, DemoError> {
            Ok(c.query_row(sql, [], |r| r.get(0))
                .map_err(crate::store::StoreError::from)?)
        };
        let replayed_candles = &self.candles[self.warmup..self.warmup + replayed];
        Ok(DemoSummary {
            symbol: self.symbol.as_str().to_string(),
            interval: self.interval.to_string(),
            engine: self.engine_label.to_string(),
            candles_replayed: replayed,
            from_ms: replayed_candles.first().map_or(0, |c| c.open_time),
            to_ms: replayed_candles
                .last()
                .map_or(0, |c| c.close_time(self.interval)),
            decisions: count("SELECT COUNT(*) FROM decisions")?,
            orders: count("SELECT COUNT(*) FROM orders")?,
            trades,
            initial_balance: self.initial_balance,
            realized_pnl: realized,
            fees,
            open_position_value: open_value,
            last_price,
            final_equity,
            database: self.database.clone(),
        })
    }
}

/// What the orders of a position say: the quantity its entries filled, and the purpose and
/// average price of the filled exit order that closed it.
fn orders_of(
    c: &rusqlite::Connection,
    position_id: i64,
) -> Result<(Qty, Option<OrderPurpose>, Option<Price>), DemoError> {
    let (mut bought, mut exit, mut exit_price) = (Qty::ZERO, None, None);
    let filled = crate::store::orders::of_position(c, position_id)?
        .into_iter()
        .filter(|o| o.order.status == OrderStatus::Filled);
    for o in filled {
        if o.purpose == OrderPurpose::Entry {
            bought += o.order.filled_quantity;
        } else {
            exit_price = o.order.average_fill_price();
            exit = Some(o.purpose);
        }
    }
    Ok((bought, exit, exit_price))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_clock_follows_the_replay_then_runs_on_at_its_pace_once_it_ended() {
        // Symptom 9: after the demo stopped, the replay clock stopped too and the health dots
        // stayed green for ever.
        let replay = ReplayClock::default();
        let wall = Arc::new(AtomicI64::new(1_000));
        let w = wall.clone();
        let face = FaceClock::new(
            replay.clone(),
            3600.0,
            Arc::new(move || w.load(Ordering::SeqCst)),
        );
        replay.set(1_736_000_000_000);
        assert_eq!(face.now_ms(), 1_736_000_000_000);
        replay.set(1_736_003_600_000);
        assert_eq!(face.now_ms(), 1_736_003_600_000);
        face.replay_ended();
        // One real second later, an hour of simulated time has passed.
        wall.store(2_000, Ordering::SeqCst);
        assert_eq!(face.now_ms(), 1_736_007_200_000);
    }

    #[test]
    fn the_reset_keeps_the_llm_cache_file_so_a_second_demo_pays_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("trademind.db");
        std::fs::write(&database, b"").unwrap();
        let cache = dir.path().join(crate::services::llm::cache::CACHE_FILE);
        std::fs::write(&cache, b"kept").unwrap();
        reset_database(&database).unwrap();
        assert!(!database.exists());
        assert!(cache.exists());
    }
}
