//! Headless mode (`trademind --daemon`): reconcile with the exchange, then run the seed's Celery
//! beat in process — `autonomous_trading` per active strategy aligned to candle closes,
//! `monitor_orders`, `update_prices`, and backtests through a bounded on-demand queue — until
//! SIGINT or SIGTERM; then stop scheduling, let the run in flight finish, checkpoint the WAL and
//! exit 0. Every run is recorded in `job_runs` and health changes go out on the bus. On a
//! Binance connection the WebSocket feeds (`app::streams`) run alongside under the same
//! cancellation: fills are booked from the user-data stream within the second, stream trades
//! mark positions, and `update_prices` / `monitor_orders` remain as the REST fallback.
//!
//! The job bodies (`Jobs`) are shared with the embedded demo, which calls them off its replay
//! clock instead of the wall clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::backtest::{BacktestRequest, load_series, run_and_record_on};
use crate::app::bus::{Event, EventBus};
use crate::app::control::{ControlOp, ControlRequest, backtest_request};
use crate::app::decide::AnyEngine;
use crate::app::scheduler::{
    Clock, JobRun, OnDemandQueue, PauseHandle, RunRecorder, Schedule, Scheduler, TokioClock,
};
use crate::app::streams::StreamFreshness;
use crate::app::trading::{TradingError, TradingService};
use crate::app::venue::trading_service;
use crate::config::SchedulerConfig;
use crate::domain::symbol::Symbol;
use crate::services::exchange::Exchange;
use crate::services::monitoring::{HealthTracker, component_of};
use crate::store::Store;
use crate::store::heartbeat;
use crate::store::strategies::StrategyRow;

/// Job names as `job_runs` and `trademind status` show them.
pub const AUTONOMOUS_TRADING: &str = "autonomous_trading";
pub const MONITOR_ORDERS: &str = "monitor_orders";
pub const UPDATE_PRICES: &str = "update_prices";
pub const RECONCILE: &str = "reconcile";
pub const RUN_BACKTEST: &str = "run_backtest";

/// The job name of one strategy's trading runs.
pub fn trading_job_name(strategy: &str) -> String {
    format!("{AUTONOMOUS_TRADING}:{strategy}")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a signal that arrives in between is not lost (and does not kill the
/// process with the default action).
pub fn shutdown_listener() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Records every run in `job_runs`, announces it on the bus, and publishes a component's
/// health when it changes.
pub struct StoreRecorder {
    store: Arc<Mutex<Store>>,
    bus: EventBus,
    health: Mutex<HealthTracker>,
    /// The daemon's pid when this records a daemon's runs: each run is its last cycle in the
    /// heartbeat (the TUI's and the demo's runs are not a daemon's).
    heartbeat_pid: Option<u32>,
}

impl StoreRecorder {
    pub fn new(store: Arc<Mutex<Store>>, bus: EventBus) -> Self {
        StoreRecorder {
            store,
            bus,
            health: Mutex::new(HealthTracker::default()),
            heartbeat_pid: None,
        }
    }

    /// Record each run as the last cycle of the daemon `pid` (see `store::heartbeat`).
    pub fn with_heartbeat(mut self, pid: u32) -> Self {
        self.heartbeat_pid = Some(pid);
        self
    }
}

impl RunRecorder for StoreRecorder {
    fn record(&self, run: &JobRun) {
        match self.store.lock() {
            Ok(store) => {
                if let Err(e) = crate::store::jobs::insert_run(store.conn(), run) {
                    tracing::warn!(job = %run.job, "cannot record the job run: {e}");
                }
                if let Some(pid) = self.heartbeat_pid
                    && let Err(e) = heartbeat::cycle(store.conn(), pid, &run.job, run.finished_at)
                {
                    tracing::warn!(job = %run.job, "cannot record the daemon's heartbeat: {e}");
                }
            }
            Err(_) => {
                tracing::warn!(job = %run.job, "cannot record the job run: database lock poisoned")
            }
        }
        self.bus.publish(Event::JobFinished {
            job: run.job.clone(),
            ok: run.error.is_none(),
            error: run.error.clone(),
        });
        let component = component_of(&run.job);
        let detail = match &run.error {
            Some(e) => format!("{}: {e}", run.job),
            None => "ok".to_string(),
        };
        let change = self
            .health
            .lock()
            .map(|mut h| h.observe(component, run.error.is_none(), &detail))
            .unwrap_or(None);
        if let Some((healthy, detail)) = change {
            self.bus.publish(Event::HealthChanged {
                component: component.to_string(),
                healthy,
                detail,
            });
        }
    }
}

/// Why a daemon job failed. The trading service's error is kept whole (its kind: paused,
/// not reconciled, an exchange or store failure...), so a caller can match on it; the message
/// shown and recorded in `job_runs` is the same text as before.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Trading(#[from] TradingError),
    /// The database file was removed or replaced under the running daemon (`what` says which).
    #[error("{what}: trading halted; stop the daemon and restore the database")]
    LedgerLost { what: String },
    /// Reconciliation left discrepancies for the user; trading stays paused.
    #[error("not reconciled, trading paused: {}", unresolved.join("; "))]
    NotReconciled { unresolved: Vec<String> },
    /// The scheduler asked for a strategy the job set does not hold.
    #[error("no strategy #{0}")]
    NoStrategy(usize),
}

/// One active strategy and the engine that decides for it.
pub struct StrategyJob {
    pub strategy: StrategyRow,
    pub engine: AnyEngine,
}

/// The bodies of the daemon's periodic jobs, over the trading service of the configured
/// connection and one per other connection an active strategy trades on.
pub struct Jobs<E: Exchange> {
    /// The service on `trading.connection` (the WebSocket feeds and the kill switch use it).
    pub trading: Arc<TradingService<E>>,
    pub strategies: Vec<StrategyJob>,
    /// Every service, `trading` first; orders are monitored and reconciled on each.
    venues: Vec<Arc<TradingService<E>>>,
    /// The index in `venues` of the service each strategy (same index) trades through.
    routes: Vec<usize>,
    /// Symbols the market stream marks; `update_prices` skips them (see `app::streams`).
    pub stream_marks: Option<StreamFreshness>,
    /// The database whose file must still be the one opened (see [`Jobs::with_ledger_guard`]).
    ledger: Option<Arc<Mutex<Store>>>,
    /// Challengers by strategy index: they decide after the primary, on its input, and fill
    /// only a virtual book (see `app::shadow`).
    challengers: Vec<(usize, crate::app::shadow::ShadowJob)>,
    /// Closes at or after this time are reflected on (set by the first job run, so a restart
    /// does not pay for reflections on old history).
    reflect_since: Mutex<Option<i64>>,
    /// Closed positions already reflected on or skipped in this run.
    reflected: Mutex<std::collections::HashSet<i64>>,
}

impl<E: Exchange + 'static> Jobs<E> {
    /// Every strategy on `trading` (its connection must be theirs: the service refuses a
    /// strategy's decision on another connection).
    pub fn new(trading: Arc<TradingService<E>>, strategies: Vec<StrategyJob>) -> Self {
        let routes = vec![0; strategies.len()];
        Jobs {
            venues: vec![trading.clone()],
            trading,
            strategies,
            routes,
            stream_marks: None,
            ledger: None,
            challengers: Vec::new(),
            reflect_since: Mutex::new(None),
            reflected: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Each strategy on the service given with it; `trading` is the configured connection's.
    pub fn routed(
        trading: Arc<TradingService<E>>,
        strategies: Vec<(StrategyJob, Arc<TradingService<E>>)>,
    ) -> Self {
        let mut venues = vec![trading.clone()];
        let mut jobs = Vec::with_capacity(strategies.len());
        let mut routes = Vec::with_capacity(strategies.len());
        for (job, venue) in strategies {
            let index = match venues.iter().position(|v| Arc::ptr_eq(v, &venue)) {
                Some(i) => i,
                None => {
                    venues.push(venue);
                    venues.len() - 1
                }
            };
            jobs.push(job);
            routes.push(index);
        }
        Jobs {
            trading,
            strategies: jobs,
            venues,
            routes,
            stream_marks: None,
            ledger: None,
            challengers: Vec::new(),
            reflect_since: Mutex::new(None),
            reflected: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The service the strategy at `index` trades through.
    pub fn venue_of(&self, index: usize) -> Option<&Arc<TradingService<E>>> {
        self.routes.get(index).and_then(|&v| self.venues.get(v))
    }

    /// Before each trading cycle and order check, make sure the database file is still the one
    /// opened: a ledger removed or replaced under a running daemon took every write (a buy and
    /// its OCO) into an unlinked file, and the records were gone on restart while the exchange
    /// held the position.
    pub fn with_ledger_guard(mut self, store: Arc<Mutex<Store>>) -> Self {
        self.ledger = Some(store);
        self
    }

    /// `Err` (after halting trading through the kill switch and logging at error level) when
    /// the ledger file was removed or replaced. Checked again on every call, so trading stays
    /// halted whatever the breaker row in the lost file says.
    fn guard_ledger(&self, now_ms: i64) -> Result<(), JobError> {
        let Some(store) = &self.ledger else {
            return Ok(());
        };
        let lost = match store.lock() {
            Ok(s) => s.check_file(),
            Err(_) => Err("the database lock was poisoned".to_string()),
        };
        let Err(what) = lost else {
            return Ok(());
        };
        let lost = JobError::LedgerLost { what };
        let reason = lost.to_string();
        tracing::error!(%reason, "ledger lost");
        if !self.trading.is_paused().unwrap_or(false)
            && let Err(e) = self.trading.kill(&reason, now_ms)
        {
            tracing::error!(error = %e, "could not engage the kill switch");
        }
        Err(lost)
    }

    /// The strategy at `index` has a challenger: each of its cycles, `job` decides on the
    /// same inputs, recorded and filled on a virtual book only.
    pub fn with_challenger(mut self, index: usize, job: crate::app::shadow::ShadowJob) -> Self {
        self.challengers.push((index, job));
        self
    }

    /// REST prices become the fallback for the symbols the stream keeps fresh.
    pub fn with_stream_marks(mut self, freshness: StreamFreshness) -> Self {
        self.stream_marks = Some(freshness);
        self
    }

    /// Compare local orders and positions with the exchange; trading stays paused (the service
    /// refuses cycles) until this succeeds. Retried by `monitor_orders` until it does.
    pub async fn reconcile(&self, now_ms: i64) -> Result<(), JobError> {
        let mut unresolved = Vec::new();
        for venue in &self.venues {
            if venue.is_reconciled() {
                continue;
            }
            let report = venue.reconcile(now_ms).await?;
            if report.reconciled {
                tracing::info!(
                    connection = venue.connection(),
                    resolved = report.resolved.len(),
                    "reconciled with the exchange"
                );
            } else {
                unresolved.extend(report.unresolved);
            }
        }
        if unresolved.is_empty() {
            Ok(())
        } else {
            // Trading stays paused; the discrepancies are in the report, the TUI and the alert.
            Err(JobError::NotReconciled { unresolved })
        }
    }

    fn all_reconciled(&self) -> bool {
        self.venues.iter().all(|v| v.is_reconciled())
    }

    /// `autonomous_trading` for the strategy at `index`.
    pub async fn autonomous_trading(&self, index: usize, now_ms: i64) -> Result<(), JobError> {
        self.guard_ledger(now_ms)?;
        let Some(job) = self.strategies.get(index) else {
            return Err(JobError::NoStrategy(index));
        };
        let venue = self.venue_of(index).ok_or(JobError::NoStrategy(index))?;
        self.reflect_since(now_ms);
        let report = venue.run_cycle(&job.strategy, &job.engine, now_ms).await;
        // After the step, its locks released, whether or not it failed: a close it booked
        // before failing is reflected on too.
        self.reflect(index, now_ms).await;
        let report = report?;
        tracing::debug!(strategy = %job.strategy.name, report = ?report, "trading cycle done");
        // The challenger decides after the primary, on the very input the primary's decision
        // recorded; its failures are logged, never the primary's.
        for (_, shadow) in self.challengers.iter().filter(|(i, _)| *i == index) {
            for primary in report.executions.iter().filter_map(|e| e.decision_id) {
                match crate::app::shadow::shadow_decide(shadow, job.strategy.id, primary).await {
                    Ok(r) => tracing::info!(
                        strategy = %job.strategy.name,
                        decision = r.decision_id,
                        fill = ?r.fill,
                        "challenger decided (shadow, not sent)"
                    ),
                    Err(e) => tracing::warn!(
                        strategy = %job.strategy.name, error = %e, "challenger decision failed"
                    ),
                }
            }
        }
        Ok(())
    }

    /// `monitor_orders`: settle fills of open and protection orders (reconciling first while
    /// that has not succeeded yet).
    pub async fn monitor_orders(&self, now_ms: i64) -> Result<(), JobError> {
        self.guard_ledger(now_ms)?;
        if !self.all_reconciled() {
            self.reconcile(now_ms).await?;
        }
        self.reflect_since(now_ms);
        let mut result = Ok(());
        for venue in &self.venues {
            if let Err(e) = venue.monitor_orders(now_ms).await {
                result = Err(e.into());
                break;
            }
        }
        // A stop or target that filled closed its position: reflect after the step.
        for index in 0..self.strategies.len() {
            self.reflect(index, now_ms).await;
        }
        result
    }

    fn reflect_since(&self, now_ms: i64) {
        if let Ok(mut since) = self.reflect_since.lock() {
            since.get_or_insert(now_ms);
        }
    }

    /// Reflect on the new closes of the strategy at `index` when its engine is the LLM and
    /// `llm.reflections` is on (see `app::reflect`); never fails the job.
    async fn reflect(&self, index: usize, now_ms: i64) {
        let (Some(job), Some(venue)) = (self.strategies.get(index), self.venue_of(index)) else {
            return;
        };
        let AnyEngine::Llm(engine) = &job.engine else {
            return;
        };
        if engine.client().config().reflections == 0 {
            return;
        }
        let since = self
            .reflect_since
            .lock()
            .ok()
            .and_then(|s| *s)
            .unwrap_or(now_ms);
        crate::app::reflect::reflect_on_closes(
            engine,
            venue.connection(),
            job.strategy.id,
            since,
            &self.reflected,
            now_ms,
        )
        .await;
    }

    /// `update_prices`: marks from the exchange's REST ticker, for the positions the market
    /// stream does not mark right now.
    pub async fn update_prices(&self, now_ms: i64) -> Result<(), JobError> {
        let fresh = |s: &Symbol| {
            self.stream_marks
                .as_ref()
                .is_some_and(|f| f.is_fresh(s, now_ms))
        };
        self.trading.update_prices_except(fresh, now_ms).await?;
        // The stream marks only the configured connection's symbols.
        for venue in self.venues.iter().skip(1) {
            venue.update_prices_except(|_| false, now_ms).await?;
        }
        Ok(())
    }
}

/// Run `body` once as the job `name`: timed by `clock` and recorded like a scheduled run (for
/// start-up work and the demo's replay, which do not go through the scheduler's timers).
pub async fn run_recorded<F, Fut, E>(
    name: &str,
    clock: &dyn Clock,
    recorder: &dyn RunRecorder,
    body: F,
) -> Result<(), E>
where
    F: FnOnce(i64) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started_at = clock.now_ms();
    let result = body(started_at).await;
    if let Err(e) = &result {
        tracing::warn!(job = name, error = %e, "job failed");
    }
    recorder.record(&JobRun {
        job: name.to_string(),
        started_at,
        finished_at: clock.now_ms(),
        error: result.as_ref().err().map(ToString::to_string),
    });
    result
}

/// The daemon's schedules: trading aligned to candle closes (plus the configured offset),
/// order monitoring and price updates at fixed intervals.
pub fn schedules(config: &SchedulerConfig) -> (Schedule, Schedule, Schedule) {
    (
        Schedule::Aligned {
            period: Duration::from_secs(config.autonomous_trading_minutes * 60),
            offset: Duration::from_secs(config.candle_close_offset_seconds),
        },
        Schedule::Every(Duration::from_secs(config.monitor_orders_seconds)),
        Schedule::Every(Duration::from_secs(config.update_prices_seconds)),
    )
}

/// Put every job of `jobs` on `scheduler`.
pub fn add_jobs<E: Exchange + 'static>(
    scheduler: &mut Scheduler,
    jobs: Arc<Jobs<E>>,
    clock: Arc<dyn Clock>,
    config: &SchedulerConfig,
) {
    let (trading, monitor, prices) = schedules(config);
    for (index, s) in jobs.strategies.iter().enumerate() {
        let (jobs, clock) = (jobs.clone(), clock.clone());
        scheduler.add(&trading_job_name(&s.strategy.name), trading, move || {
            let (jobs, clock) = (jobs.clone(), clock.clone());
            async move {
                jobs.autonomous_trading(index, clock.now_ms())
                    .await
                    .map_err(|e| e.to_string())
            }
        });
    }
    {
        let (jobs, clock) = (jobs.clone(), clock.clone());
        scheduler.add(MONITOR_ORDERS, monitor, move || {
            let (jobs, clock) = (jobs.clone(), clock.clone());
            async move {
                jobs.monitor_orders(clock.now_ms())
                    .await
                    .map_err(|e| e.to_string())
            }
        });
    }
    scheduler.add(UPDATE_PRICES, prices, move || {
        let (jobs, clock) = (jobs.clone(), clock.clone());
        async move {
            jobs.update_prices(clock.now_ms())
                .await
                .map_err(|e| e.to_string())
        }
    });
}

/// A scheduler carrying the daemon's job set.
pub fn build_scheduler<E: Exchange + 'static>(
    jobs: Arc<Jobs<E>>,
    clock: Arc<dyn Clock>,
    recorder: Arc<dyn RunRecorder>,
    config: &SchedulerConfig,
) -> (Scheduler, PauseHandle) {
    let (mut scheduler, pause) = Scheduler::new(clock.clone(), recorder);
    add_jobs(&mut scheduler, jobs, clock, config);
    (scheduler, pause)
}

/// Reconcile, then run the scheduler until `cancel`; returns once the run in flight has
/// finished.
pub async fn run_until_cancelled<E: Exchange + 'static>(
    jobs: Arc<Jobs<E>>,
    clock: Arc<dyn Clock>,
    recorder: Arc<dyn RunRecorder>,
    config: &SchedulerConfig,
    cancel: CancellationToken,
) {
    let (scheduler, _pause) =
        build_scheduler(jobs.clone(), clock.clone(), recorder.clone(), config);
    // Start-up reconciliation, before any trading slot; a failure leaves trading paused and
    // monitor_orders retries it.
    let _ = run_recorded(RECONCILE, clock.as_ref(), recorder.as_ref(), |now| {
        jobs.reconcile(now)
    })
    .await;
    scheduler.run(cancel).await;
}

/// `trademind --daemon`: until SIGINT/SIGTERM, on the database `store` (at `db_path`, for the
/// log).
pub async fn run(
    settings: &crate::config::Settings,
    store: crate::store::Store,
    db_path: &std::path::Path,
) -> anyhow::Result<()> {
    let shutdown = shutdown_listener();
    // One daemon per data dir: a second one would trade the same account from the same
    // ledger. Held until this function returns (the kernel drops it if the process dies).
    let lock_path = db_path.with_file_name(DAEMON_LOCK_FILE);
    // `AlreadyRunning` travels on its own so `main` maps it to exit code 2.
    let _instance = DaemonLock::acquire(&lock_path).map_err(|e| match e {
        DaemonLockError::AlreadyRunning(running) => anyhow::Error::new(running),
        io @ DaemonLockError::Io { .. } => anyhow::Error::new(io),
    })?;
    let pid = std::process::id();
    // A damaged ledger is refused before anything trades on it.
    store.quick_check()?;
    heartbeat::start(
        store.conn(),
        pid,
        &heartbeat::this_host(),
        chrono::Utc::now().timestamp_millis(),
    )?;
    let settings = Arc::new(settings.clone());
    let store = Arc::new(Mutex::new(store));
    let bus = EventBus::default();
    let active: Vec<StrategyRow> = {
        let s = store
            .lock()
            .map_err(|_| anyhow::anyhow!("the database lock was poisoned"))?;
        crate::store::strategies::list_strategies(s.conn())?
            .into_iter()
            .filter(|r| r.is_active)
            .collect()
    };
    let trading =
        Arc::new(trading_service(settings.clone(), store.clone(), None, bus.clone()).await?);
    let (connection, mode) = (trading.connection().to_string(), trading.mode());
    // The connection's own endpoints: its own address if it has one, else a testnet
    // connection streams from the testnet (its keys are unknown to production), everything
    // else from production, all of it from `exchange.binance.base_url` when that is set.
    let stream_config = match crate::app::venue::market_environment(&settings, Some(&connection)) {
        Ok((_, target)) => settings.stream_for(target),
        Err(_) => settings.stream_for(crate::config::endpoints::environment_of(
            mode == crate::domain::trading::TradingMode::Testnet,
        )),
    };
    let user_data = crate::app::streams::binance_user_data(trading.exchange(), &stream_config);
    // Each strategy on its own connection (the paper exchange when it was added without one):
    // never on `trading.connection` because that is what the daemon was started with.
    let mut venues: Vec<Arc<TradingService<crate::services::exchange::any::AnyExchange>>> =
        vec![trading.clone()];
    let mut strategies = Vec::with_capacity(active.len());
    let mut shadows = Vec::new();
    for strategy in active {
        let own = {
            let s = store
                .lock()
                .map_err(|_| anyhow::anyhow!("the database lock was poisoned"))?;
            crate::app::venue::strategy_connection(s.conn(), &strategy)?
        };
        let venue = match venues.iter().find(|v| v.connection() == own) {
            Some(v) => v.clone(),
            None => {
                let opened = Arc::new(
                    trading_service(settings.clone(), store.clone(), Some(&own), bus.clone())
                        .await?,
                );
                tracing::info!(strategy = %strategy.name, connection = %own, "strategy trades on its own connection");
                venues.push(opened.clone());
                opened
            }
        };
        let engine = crate::app::decide::engine_for(
            &settings,
            &strategy,
            store.clone(),
            crate::app::venue::mailer(
                &settings.notifications,
                &crate::secrets::Secrets::from_config(&settings.secrets, &settings.data_dir()),
            ),
        )
        .await?;
        let challenger = crate::app::shadow::challenger_engine(
            &settings,
            &strategy,
            store.clone(),
            crate::app::venue::mailer(
                &settings.notifications,
                &crate::secrets::Secrets::from_config(&settings.secrets, &settings.data_dir()),
            ),
        )
        .await?;
        if let Some(engine) = challenger {
            tracing::info!(strategy = %strategy.name, "challenger decides in the shadow (virtual book, no orders)");
            shadows.push((
                strategies.len(),
                crate::app::shadow::ShadowJob::new(engine, store.clone(), &settings),
            ));
        }
        strategies.push((StrategyJob { strategy, engine }, venue));
    }
    if strategies.is_empty() {
        tracing::warn!(
            "no active strategy: orders are monitored but nothing is traded (`trademind strategy add` / `strategy enable`)"
        );
    }
    tracing::info!(
        pid,
        db = %db_path.display(),
        %connection,
        %mode,
        strategies = strategies.len(),
        "daemon started (SIGINT/SIGTERM to stop)"
    );
    let recorder: Arc<dyn RunRecorder> =
        Arc::new(StoreRecorder::new(store.clone(), bus.clone()).with_heartbeat(pid));
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::system());
    let cancel = CancellationToken::new();
    let beats = tokio::spawn(beat_until_cancelled(
        store.clone(),
        pid,
        clock.clone(),
        cancel.clone(),
    ));
    // The Telegram bot answers the configured chats until shutdown (see app::telegram_bot).
    let bot = match crate::app::venue::telegram_client(
        &settings.telegram,
        &crate::secrets::Secrets::from_config(&settings.secrets, &settings.data_dir()),
    )
    .await
    {
        Some(client) => {
            // /backtest queues on the daemon's own `run_backtest` worker (its own connection,
            // one run at a time on the blocking pool), as the TUI's `:backtest` does.
            let (backtests, worker) = backtest_queue(
                crate::store::Store::open(db_path)?,
                clock.clone(),
                recorder.clone(),
                bus.clone(),
                settings.scheduler.backtest_queue_size,
                cancel.clone(),
            );
            let bot = Arc::new(
                crate::app::telegram_bot::TelegramBot::new(
                    client,
                    settings.clone(),
                    trading.clone(),
                    store.clone(),
                    clock.clone(),
                )
                .with_backtests(backtests),
            );
            Some((tokio::spawn(bot.run(cancel.clone())), worker))
        }
        None => None,
    };
    // The daily summary (`telegram.daily_summary_hour`), once a UTC day, until shutdown.
    let summary = tokio::spawn(crate::app::daily_summary::run(
        trading.clone(),
        store.clone(),
        settings.clone(),
        clock.clone(),
        cancel.clone(),
    ));
    let mut jobs = Jobs::routed(trading.clone(), strategies).with_ledger_guard(store.clone());
    for (index, shadow) in shadows {
        jobs = jobs.with_challenger(index, shadow);
    }
    // On Binance (not paper), the WebSocket feeds book fills and mark prices; see app::streams.
    let feeds = match user_data {
        Some(user_data) => {
            let feeds = crate::app::streams::start_feeds(
                crate::app::streams::FeedDeps {
                    trading,
                    store: store.clone(),
                    bus: bus.clone(),
                    clock: clock.clone(),
                    recorder: recorder.clone(),
                    config: stream_config,
                    specs: crate::app::streams::specs_for(
                        &jobs
                            .strategies
                            .iter()
                            .map(|j| j.strategy.clone())
                            .collect::<Vec<_>>(),
                    ),
                    user_data: Some(user_data),
                    update_prices_every: Duration::from_secs(
                        settings.scheduler.update_prices_seconds,
                    ),
                },
                cancel.clone(),
            )?;
            jobs = jobs.with_stream_marks(feeds.freshness.clone());
            Some(feeds)
        }
        None => None,
    };
    let jobs = Arc::new(jobs);
    let scheduler = {
        let (cancel, config) = (cancel.clone(), settings.scheduler.clone());
        tokio::spawn(async move {
            run_until_cancelled(jobs, clock, recorder, &config, cancel).await;
        })
    };
    shutdown.await;
    tracing::info!("stopping: no new runs; waiting for the run in flight");
    bus.publish(Event::ShuttingDown);
    cancel.cancel();
    if let Err(e) = scheduler.await {
        tracing::warn!("the scheduler task failed: {e}");
    }
    if let Some(feeds) = feeds {
        feeds.join().await;
    }
    let _ = beats.await;
    let _ = summary.await;
    if let Some((bot, backtests)) = bot {
        let _ = bot.await;
        let _ = backtests.await;
    }
    {
        let store = store
            .lock()
            .map_err(|_| anyhow::anyhow!("the database lock was poisoned"))?;
        heartbeat::stop(store.conn(), pid, chrono::Utc::now().timestamp_millis())?;
        store.checkpoint()?;
    }
    tracing::info!("daemon stopped cleanly");
    Ok(())
}

/// The file beside the database whose `flock` marks the data dir's running daemon; it holds
/// that daemon's pid.
pub const DAEMON_LOCK_FILE: &str = "daemon.lock";

/// A daemon is already running on this data dir (exit code 2).
#[derive(Debug, thiserror::Error)]
pub struct AlreadyRunning {
    /// The running daemon's pid, as it wrote it into the lock file.
    pub pid: Option<u32>,
    pub lock_file: std::path::PathBuf,
}

impl std::fmt::Display for AlreadyRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self
            .lock_file
            .parent()
            .map_or_else(|| ".".into(), |d| d.display().to_string());
        match self.pid {
            Some(pid) => write!(
                f,
                "another daemon (pid {pid}) is already running on the data dir {dir}; stop it \
                 first (kill -TERM {pid}) or give this one another --data-dir"
            ),
            None => write!(
                f,
                "another daemon is already running on the data dir {dir} (it holds {}); stop \
                 it first or give this one another --data-dir",
                self.lock_file.display()
            ),
        }
    }
}

/// Why the data dir's daemon lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum DaemonLockError {
    #[error(transparent)]
    AlreadyRunning(#[from] AlreadyRunning),
    #[error("cannot take the daemon lock {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The data dir's single-instance lock, held while this value lives: an OS file lock (`flock`)
/// that the kernel drops when the process ends however it ends, so a crashed daemon never
/// blocks the next one.
#[derive(Debug)]
pub struct DaemonLock {
    _file: std::fs::File,
}

impl DaemonLock {
    /// Take the lock at `path` and write our pid into it, or name the daemon that holds it.
    pub fn acquire(path: &std::path::Path) -> Result<DaemonLock, DaemonLockError> {
        use std::io::{Read, Seek, Write};
        let io = |source| DaemonLockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(AlreadyRunning {
                    pid: text.trim().parse().ok(),
                    lock_file: path.to_path_buf(),
                }
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(DaemonLock { _file: file })
    }
}

/// This machine's name for the heartbeat (a shared data dir on another host is told apart).
/// Refresh the daemon's beat every [`heartbeat::BEAT_EVERY_MS`] until `cancel`.
async fn beat_until_cancelled(
    store: Arc<Mutex<Store>>,
    pid: u32,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_millis(
        heartbeat::BEAT_EVERY_MS.unsigned_abs(),
    ));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        let beat = match store.lock() {
            Ok(s) => heartbeat::beat(s.conn(), pid, clock.now_ms()).map_err(|e| e.to_string()),
            Err(_) => Err("the database lock was poisoned".into()),
        };
        if let Err(e) = beat {
            tracing::warn!(error = %e, "cannot record the daemon's heartbeat");
        }
    }
}

/// A backtest waiting in the `run_backtest` queue: the request, and the pending `backtests` row
/// it fills when one was created as it was queued (so the asker could name the run at once,
/// as the Telegram bot does); `None`: the worker creates the row when the run starts.
#[derive(Debug, Clone)]
pub struct QueuedBacktest {
    pub request: BacktestRequest,
    pub run_id: Option<i64>,
}

impl From<BacktestRequest> for QueuedBacktest {
    fn from(request: BacktestRequest) -> Self {
        QueuedBacktest {
            request,
            run_id: None,
        }
    }
}

/// The `run_backtest` worker: requests wait in a bounded queue and run one at a time on the
/// blocking pool (a backtest is CPU work) over the worker's own database connection, so neither
/// the interface nor the trading jobs wait for it. Each run is recorded as a `run_backtest` job
/// run; its end is published on the bus.
pub fn backtest_queue(
    store: Store,
    clock: Arc<dyn Clock>,
    recorder: Arc<dyn RunRecorder>,
    bus: EventBus,
    capacity: usize,
    cancel: CancellationToken,
) -> (OnDemandQueue<QueuedBacktest>, tokio::task::JoinHandle<()>) {
    let store = Arc::new(Mutex::new(store));
    OnDemandQueue::start(capacity, cancel, move |request: QueuedBacktest| {
        let (store, clock, recorder, bus) =
            (store.clone(), clock.clone(), recorder.clone(), bus.clone());
        async move {
            let worker_clock = clock.clone();
            let body = |_now| async move {
                tokio::task::spawn_blocking(move || {
                    run_one_backtest(&store, &request, &bus, worker_clock)
                })
                .await
                .map_err(|e| format!("the backtest task failed: {e}"))?
            };
            let _ = run_recorded(RUN_BACKTEST, clock.as_ref(), recorder.as_ref(), body).await;
        }
    })
}

fn run_one_backtest(
    store: &Mutex<Store>,
    queued: &QueuedBacktest,
    bus: &EventBus,
    clock: Arc<dyn Clock>,
) -> Result<(), String> {
    let store = store
        .lock()
        .map_err(|_| "the database lock was poisoned".to_string())?;
    let request = &queued.request;
    let now = move || clock.now_ms();
    // The same load as `trademind backtest`: the series' side file when fresh, exact columns
    // alone in the usual case.
    let series = match load_series(Some(&store), request) {
        Ok(series) => series,
        Err(e) => {
            // The row created at queueing time says why it never ran.
            if let Some(id) = queued.run_id
                && let Err(db) =
                    crate::store::backtests::fail(store.conn(), id, &e.to_string(), now())
            {
                tracing::warn!(id, error = %db, "could not record the backtest as failed");
            }
            return Err(e.to_string());
        }
    };
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let (id, _) = run_and_record_on(
        &store,
        queued.run_id,
        request,
        series.run_candles(),
        &series.columns,
        &cancel,
        &mut |_, _| {},
        &now,
    )
    .map_err(|(_, e)| e.to_string())?;
    bus.publish(Event::BacktestProgress { id, fraction: 1.0 });
    Ok(())
}

/// Carry out what an interface asks through its `ControlHandle` (pause, resume, the kill
/// switch, close, cancel, backtest) on `trading`, until every handle is dropped or `cancel`.
/// Backtests go to the bounded `run_backtest` queue (see [`backtest_queue`]).
pub async fn serve_control<E: Exchange + 'static>(
    trading: Arc<TradingService<E>>,
    mut requests: tokio::sync::mpsc::Receiver<ControlRequest>,
    backtests: OnDemandQueue<QueuedBacktest>,
    settings: Arc<crate::config::Settings>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let what = request.op.describe();
        let now = clock.now_ms();
        let done = |r: Result<String, TradingError>| r.map_err(|e| format!("{what}: {e}"));
        let reply = match request.op {
            ControlOp::Pause { reason } => done(
                trading
                    .pause(&reason, now)
                    .map(|_| "trading paused".to_string()),
            ),
            ControlOp::Resume => done(trading.resume(now).map(|_| "trading resumed".to_string())),
            ControlOp::Kill => done(
                trading
                    .kill("kill switch engaged from the terminal interface", now)
                    .map(|_| "kill switch engaged: no new entries until resumed".to_string()),
            ),
            ControlOp::ClosePosition { symbol, book } => done(
                trading
                    .close_position(&symbol, Some(book), now)
                    .await
                    .map(|r| r.message),
            ),
            ControlOp::ProtectPosition { symbol, book } => done(
                trading
                    .protect(&symbol, Some(book), now)
                    .await
                    .map(|r| r.message),
            ),
            ControlOp::CancelOrder {
                client_order_id, ..
            } => done(
                trading
                    .cancel_order(&client_order_id, now)
                    .await
                    .map(|o| format!("{} {}", o.client_order_id, o.status)),
            ),
            ControlOp::Backtest(job) => backtest_request(&settings, &job)
                .and_then(|request| {
                    backtests
                        .submit(request.into())
                        .map_err(|e| e.to_string())?;
                    Ok("queued; the result appears on the Backtests screen".to_string())
                })
                .map_err(|e| format!("{what}: {e}")),
        };
        // The interface may have closed meanwhile; nobody to answer then.
        let _ = request.reply.send(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::scheduler::MemoryRecorder;

    struct At(i64);
    impl Clock for At {
        fn now_ms(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn a_job_error_keeps_the_trading_error_and_reads_as_the_old_message() {
        let paused = JobError::from(TradingError::Paused("news".into()));
        assert!(matches!(
            &paused,
            JobError::Trading(TradingError::Paused(why)) if why == "news"
        ));
        assert_eq!(
            paused.to_string(),
            TradingError::Paused("news".into()).to_string()
        );
        let unresolved = JobError::NotReconciled {
            unresolved: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            unresolved.to_string(),
            "not reconciled, trading paused: a; b"
        );
        assert_eq!(JobError::NoStrategy(3).to_string(), "no strategy #3");
    }

    #[tokio::test]
    async fn a_recorded_run_stores_the_job_errors_message() {
        let recorder = MemoryRecorder::default();
        let result = run_recorded(RECONCILE, &At(7), &recorder, |_| async {
            Err(JobError::NotReconciled {
                unresolved: vec!["BTCUSDT: position without a stop".into()],
            })
        })
        .await;
        assert!(matches!(result, Err(JobError::NotReconciled { .. })));
        assert_eq!(
            recorder.runs()[0].error.as_deref(),
            Some("not reconciled, trading paused: BTCUSDT: position without a stop")
        );
    }

    /// A backtest queued from the interface or the bot loads its candles as `trademind
    /// backtest` does: through the series' side file, which the first run writes.
    #[tokio::test]
    async fn a_queued_backtest_loads_through_the_series_side_file_as_the_cli_does() {
        use crate::app::backtest::{CandleSource, SizingChoice};
        use crate::domain::Symbol;
        use crate::domain::backtest::{Costs, FillModel, StrategySpec};
        use crate::domain::market::{Candle, Interval};
        use crate::domain::money::{Price, Qty, Quote};
        use crate::domain::risk::RiskConfig;
        use rust_decimal::Decimal;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let candles: Vec<Candle> = (0..300i64)
            .map(|i| {
                let close = Price(Decimal::new(10_000 + (i % 17) * 37 - (i % 5) * 51, 1));
                Candle {
                    open_time: i * 3_600_000,
                    open: close,
                    high: Price(close.0 + Decimal::ONE),
                    low: Price(close.0 - Decimal::ONE),
                    close,
                    volume: Qty::new(Decimal::TEN),
                }
            })
            .collect();
        let btc = Symbol::new("BTCUSDT").unwrap();
        crate::store::candles::insert_candles(store.conn(), &btc, Interval::H1, &candles).unwrap();

        let cancel = CancellationToken::new();
        let (queue, worker) = backtest_queue(
            Store::open_in(dir.path()).unwrap(),
            Arc::new(At(1_000)),
            Arc::new(MemoryRecorder::default()),
            EventBus::new(16),
            1,
            cancel.clone(),
        );
        let request = BacktestRequest {
            strategy: StrategySpec {
                name: "sma-cross".into(),
                params: [("fast".to_string(), 3.0), ("slow".to_string(), 8.0)].into(),
            },
            symbol: "BTCUSDT".into(),
            interval: Interval::H1,
            from: None,
            to: None,
            source: CandleSource::Store,
            initial_cash: Quote(Decimal::from(10_000)),
            costs: Costs::default(),
            fill: FillModel::NextOpen,
            sizing: SizingChoice::AllIn,
            risk: RiskConfig::default(),
        };
        queue.submit(QueuedBacktest::from(request)).unwrap();
        let run = loop {
            let runs = crate::store::backtests::list(store.conn(), 5).unwrap();
            if let Some(run) = runs.into_iter().find(|r| r.metrics.is_some()) {
                break run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(run.metrics.unwrap().candles, 300);
        let files = std::fs::read_dir(dir.path().join(crate::store::candles::SIDE_DIR))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(files, 1, "the queued run wrote no side file");
        cancel.cancel();
        let _ = worker.await;
    }
}
