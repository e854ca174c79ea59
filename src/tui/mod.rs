//! The ratatui interface: actions (messages), a pure update, and draw functions per screen.
//! The runner here owns the terminal and the channels; it draws at most 30 times a second and
//! only when something changed, and reads the database off the render loop. The terminal is
//! always restored, including when a panic unwinds.

use anyhow::{Context as _, Result, bail};
use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event as TermEvent, EventStream, KeyEventKind,
};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::app::bus::{Event, EventBus, Received};
use crate::app::control::{BacktestJob, ControlHandle, ControlOp};
use crate::app::scheduler::Clock;
use crate::app::snapshot::{self, LoadRequest, Snapshot};
use crate::config::Settings;
use crate::domain::Quote;
use crate::domain::market::Interval;
use crate::domain::symbol::Symbol;
use crate::store::Store;

pub mod action;
mod compare;
/// `[tui]` lives with the other settings (`crate::config::tui`); named here as before.
pub use crate::config::tui as config;
#[cfg(any(test, feature = "fake-servers"))]
pub mod fixture;
pub mod keys;
pub mod state;
pub mod theme;
pub mod update;
pub mod view;

use action::{Action, Effect};
use config::TuiConfig;
use state::App;
use theme::Theme;

/// Open the interface on a bus of its own and run until the user quits.
///
/// Operator actions (pause, close, cancel, backtest) are carried out by a trading service on
/// the configured connection, built here; when it cannot be built (say, missing keys) the
/// interface still opens and says why those actions are unavailable.
pub async fn run(settings: &Settings) -> Result<()> {
    let bus = EventBus::default();
    let cancel = tokio_util::sync::CancellationToken::new();
    let control = match local_control(settings, &bus, cancel.clone()).await {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!("operator actions are unavailable in this session: {e:#}");
            None
        }
    };
    // This interface has the bus to itself: on a Binance connection it opens the shown
    // symbol's market stream (`app::streams::MarketFeed`).
    let clock = Arc::new(crate::app::scheduler::TokioClock::system());
    let market = MarketSource {
        own_stream: true,
        replay_book: None,
    };
    let shown = run_on_clock_with(
        settings,
        bus,
        control,
        clock,
        stale_after_ms(settings),
        market,
    )
    .await;
    cancel.cancel();
    shown
}

/// A trading service on the configured connection answering this interface's requests.
async fn local_control(
    settings: &Settings,
    bus: &EventBus,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<ControlHandle> {
    use crate::app::daemon::{StoreRecorder, backtest_queue, serve_control};
    use crate::app::scheduler::TokioClock;
    let settings = Arc::new(settings.clone());
    let store = Arc::new(Mutex::new(Store::open_in(&settings.data_dir())?));
    let trading = Arc::new(
        crate::app::venue::trading_service(settings.clone(), store.clone(), None, bus.clone())
            .await?,
    );
    let clock = Arc::new(TokioClock::system());
    let (backtests, _worker) = backtest_queue(
        Store::open_in(&settings.data_dir())?,
        clock.clone(),
        Arc::new(StoreRecorder::new(store, bus.clone())),
        bus.clone(),
        settings.scheduler.backtest_queue_size,
        cancel.clone(),
    );
    let (handle, requests) = ControlHandle::channel(16);
    tokio::spawn(serve_control(
        trading, requests, backtests, settings, clock, cancel,
    ));
    Ok(handle)
}

/// Open the interface following `bus` (the application's event bus) until the user quits.
pub async fn run_with_bus(settings: &Settings, bus: EventBus) -> Result<()> {
    run_with(settings, bus, None).await
}

/// Open the interface following `bus`; operator actions (pause, close, cancel, backtest, …)
/// go to the trading service behind `control`.
pub async fn run_with(
    settings: &Settings,
    bus: EventBus,
    control: Option<ControlHandle>,
) -> Result<()> {
    let clock = Arc::new(crate::app::scheduler::TokioClock::system());
    let stale_after_ms = stale_after_ms(settings);
    run_on_clock(settings, bus, control, clock, stale_after_ms, None).await
}

/// Three of the slowest job's intervals: a job silent for longer is shown as stale.
fn stale_after_ms(settings: &Settings) -> i64 {
    let s = &settings.scheduler;
    let slowest_s = (s.autonomous_trading_minutes * 60)
        .max(s.monitor_orders_seconds)
        .max(s.update_prices_seconds);
    i64::try_from(slowest_s.saturating_mul(3_000)).unwrap_or(i64::MAX)
}

/// Open the interface on `clock`, the run's clock: the demo passes its replay clock, so the
/// header, the day's PnL and the health dots read the simulated time the engine stamps, and
/// its replay's book (`replay_book`), which the Market screen's ladder shows.
pub async fn run_on_clock(
    settings: &Settings,
    bus: EventBus,
    control: Option<ControlHandle>,
    clock: Arc<dyn Clock>,
    stale_after_ms: i64,
    replay_book: Option<crate::app::streams::ShownBook>,
) -> Result<()> {
    let market = MarketSource {
        own_stream: false,
        replay_book,
    };
    run_on_clock_with(settings, bus, control, clock, stale_after_ms, market).await
}

/// Where the Market screen's book and trades come from besides the bus.
struct MarketSource {
    /// On a Binance (not paper) connection, open the shown symbol's market stream. A bus
    /// shared with a daemon already carries its streams' trades, so those callers pass false.
    own_stream: bool,
    replay_book: Option<crate::app::streams::ShownBook>,
}

/// `run_on_clock` with the market's sources (see `MarketSource`).
async fn run_on_clock_with(
    settings: &Settings,
    bus: EventBus,
    control: Option<ControlHandle>,
    clock: Arc<dyn Clock>,
    stale_after_ms: i64,
    market: MarketSource,
) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "the terminal interface needs a terminal; use `trademind --daemon` or a subcommand (see --help)"
        );
    }
    let store = Store::open_in(&settings.data_dir())?;
    let mode = snapshot::trading_mode(store.conn(), &settings.trading.connection)?;
    let mut symbols = Vec::new();
    for s in &settings.trading.symbols {
        symbols.push(Symbol::new(s).with_context(|| format!("trading.symbols: {s:?}"))?);
    }
    let symbol = match symbols.first() {
        Some(s) => s.clone(),
        None => Symbol::new("BTCUSDT")?,
    };
    let interval: Interval = settings
        .trading
        .interval
        .parse()
        .context("trading.interval")?;
    let starting_balance: Quote = settings
        .trading
        .paper_starting_balance
        .parse()
        .map_err(|e| anyhow::anyhow!("trading.paper_starting_balance: {e}"))?;
    let request = LoadRequest {
        mode,
        now_ms: 0,
        symbol: symbol.clone(),
        interval,
        connection: settings.trading.connection.clone(),
        // Only a paper account starts from this cash; an exchange account is what it holds.
        paper_starting_balance: (mode == crate::domain::trading::TradingMode::Paper)
            .then_some(starting_balance),
        symbols,
        default_risk_config: snapshot::config_rows(&settings.risk),
        stale_after_ms,
    };
    // NO_COLOR (any non-empty value) turns colour off: https://no-color.org
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = App::new(Snapshot::empty(mode, symbol, interval));
    app.in_demo = market.replay_book.is_some();
    // The paper exchange's filters: the tick and step a paper account trades at, and Binance's
    // own for the large pairs; any other symbol falls back to `Precision::guess`.
    app.precisions = crate::format::Precisions::from_paper(
        &settings.exchange.paper,
        settings.trading.symbols.iter().map(String::as_str),
    );
    let tui_config = settings.tui.clone();
    // The connection's own endpoints (its address, its environment's hosts), as the daemon's.
    let stream_config = (market.own_stream && mode != crate::domain::trading::TradingMode::Paper)
        .then(|| crate::app::venue::market_environment(settings, None))
        .and_then(Result::ok)
        .map(|(_, target)| settings.stream_for(target));

    // ratatui::init installs a panic hook that restores the terminal before the panic prints;
    // ours runs first and also releases the mouse.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        previous(info);
    }));
    let mut terminal = ratatui::init();
    if tui_config.mouse {
        let _ = crossterm::execute!(std::io::stdout(), EnableMouseCapture);
    }
    let result = event_loop(
        &mut terminal,
        &tui_config,
        app,
        Theme::new(color),
        Arc::new(Mutex::new(store)),
        request,
        bus,
        control,
        clock,
        (stream_config, market.replay_book),
    )
    .await;
    let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

/// Load a snapshot on the blocking pool and report it as an action.
fn spawn_load(
    store: Arc<Mutex<Store>>,
    mut request: LoadRequest,
    tx: mpsc::UnboundedSender<Action>,
    now_ms: i64,
) {
    request.now_ms = now_ms;
    tokio::task::spawn_blocking(move || {
        let action = match store.lock() {
            Ok(store) => match snapshot::load(store.conn(), &request) {
                Ok(snap) => Action::SnapshotLoaded(Box::new(snap)),
                Err(e) => Action::LoadFailed(e.to_string()),
            },
            Err(_) => Action::LoadFailed("the database handle is unusable after a crash".into()),
        };
        // The loop may have quit meanwhile; nothing to report to then.
        let _ = tx.send(action);
    });
}

struct Runner {
    store: Arc<Mutex<Store>>,
    request: LoadRequest,
    tx: mpsc::UnboundedSender<Action>,
    bus: EventBus,
    control: Option<ControlHandle>,
    clock: Arc<dyn Clock>,
    loading: bool,
    reload_wanted: bool,
    /// Set on a Binance connection: the shown symbol's stream is opened with it.
    stream_config: Option<crate::services::market_stream::StreamConfig>,
    feed: Option<crate::app::streams::MarketFeed>,
    /// The demo replay's book, shown when no stream is open.
    replay_book: Option<crate::app::streams::ShownBook>,
    cancel: tokio_util::sync::CancellationToken,
}

/// Order-book levels a side the Market screen takes from the stream.
const BOOK_DEPTH: usize = 50;

/// Hand `shown`'s top levels to the interface: the one way a book reaches the Market screen,
/// from a live stream or the demo's replay.
pub fn poll_shown_book(app: &mut App, shown: &crate::app::streams::ShownBook) {
    if let Some(book) = shown.levels(BOOK_DEPTH) {
        update::update(
            app,
            Action::BookLevels {
                symbol: shown.symbol.clone(),
                book,
            },
        );
    }
}

/// The request an effect makes of the trading service, if it is one.
fn control_op(effect: Effect) -> Option<ControlOp> {
    Some(match effect {
        Effect::PauseTrading => ControlOp::Pause {
            reason: "paused from the terminal interface".into(),
        },
        Effect::ResumeTrading => ControlOp::Resume,
        Effect::EngageKillSwitch => ControlOp::Kill,
        Effect::ClosePosition { symbol, book } => ControlOp::ClosePosition { symbol, book },
        Effect::ProtectPosition { symbol, book } => ControlOp::ProtectPosition { symbol, book },
        Effect::CancelOrder {
            symbol,
            client_order_id,
        } => ControlOp::CancelOrder {
            symbol,
            client_order_id,
        },
        Effect::StartBacktest(r) => ControlOp::Backtest(BacktestJob {
            strategy: r.strategy,
            symbol: r.symbol,
            interval: r.interval,
            params: r.params,
            from: r.from,
            to: r.to,
        }),
        Effect::Quit | Effect::Refresh | Effect::SwitchMarket { .. } => return None,
    })
}

impl Runner {
    /// Carry out effects; returns true when the interface should close.
    fn execute(&mut self, app: &mut App, effects: Vec<Effect>) -> bool {
        let mut quit = false;
        for effect in effects {
            match effect {
                Effect::Quit => quit = true,
                Effect::Refresh => self.reload_wanted = true,
                Effect::SwitchMarket { symbol, interval } => {
                    self.request.symbol = symbol.clone();
                    self.request.interval = interval;
                    self.reload_wanted = true;
                    self.follow_market(app);
                    update::update(app, Action::Status(format!("loading {symbol} {interval}…")));
                }
                other => {
                    if let Some(op) = control_op(other) {
                        self.request_control(app, op);
                    }
                }
            }
        }
        quit
    }

    /// Hand `op` to the trading service; its answer comes back as a status line and a reload.
    fn request_control(&mut self, app: &mut App, op: ControlOp) {
        let what = op.describe();
        let Some(control) = self.control.clone() else {
            let text = format!("{what}: no trading service is connected to this interface");
            tracing::warn!("{text}");
            self.bus.publish(Event::Log {
                level: "WARN".into(),
                target: "tui".into(),
                message: text.clone(),
            });
            update::update(app, Action::Warn(text));
            return;
        };
        tracing::info!(request = %what, "operator request");
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let action = match control.request(op).await {
                Ok(done) => Action::Status(done),
                Err(why) => Action::Warn(why),
            };
            // The loop may have quit meanwhile; nothing to report to then.
            let _ = tx.send(action);
            let _ = tx.send(Action::Refresh);
        });
    }

    /// Keep the market stream on the shown symbol and interval (Binance connections only).
    fn follow_market(&mut self, app: &mut App) {
        let Some(config) = &self.stream_config else {
            return;
        };
        let (symbol, interval) = (self.request.symbol.clone(), self.request.interval);
        if self
            .feed
            .as_ref()
            .is_some_and(|f| f.symbol == symbol && f.interval == interval)
        {
            return;
        }
        if let Some(old) = self.feed.take() {
            old.stop();
        }
        match crate::app::streams::MarketFeed::start(
            config,
            symbol,
            interval,
            self.store.clone(),
            self.bus.clone(),
            &self.cancel,
        ) {
            Ok(feed) => self.feed = Some(feed),
            Err(e) => {
                // Invalid [stream] settings will not fix themselves: say so once and stop trying.
                self.stream_config = None;
                update::update(
                    app,
                    Action::Warn(format!("no live market stream in this session: {e}")),
                );
            }
        }
    }

    /// The stream's (or the demo replay's) book for the Market screen, only while it is shown.
    fn poll_book(&self, app: &mut App) {
        if app.screen != action::Screen::Market {
            return;
        }
        let shown = match &self.feed {
            Some(feed) => feed.shown_book(),
            None => self.replay_book.clone(),
        };
        if let Some(shown) = shown {
            poll_shown_book(app, &shown);
        }
    }

    fn maybe_load(&mut self) {
        if self.reload_wanted && !self.loading {
            self.reload_wanted = false;
            self.loading = true;
            spawn_load(
                self.store.clone(),
                self.request.clone(),
                self.tx.clone(),
                self.clock.now_ms(),
            );
        }
    }
}

// Ten since the control channel, the run's clock and the stream settings joined; clippy -D
// warnings stopped the build.
#[allow(clippy::too_many_arguments)]
async fn event_loop(
    terminal: &mut DefaultTerminal,
    config: &TuiConfig,
    mut app: App,
    theme: Theme,
    store: Arc<Mutex<Store>>,
    request: LoadRequest,
    bus: EventBus,
    control: Option<ControlHandle>,
    clock: Arc<dyn Clock>,
    (stream_config, replay_book): (
        Option<crate::services::market_stream::StreamConfig>,
        Option<crate::app::streams::ShownBook>,
    ),
) -> Result<()> {
    let cancel = tokio_util::sync::CancellationToken::new();
    // Every way out of the loop stops the market stream.
    let _stop_stream = cancel.clone().drop_guard();
    let mut events = EventStream::new();
    let mut subscription = bus.subscribe();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut runner = Runner {
        store,
        request,
        tx,
        bus,
        control,
        clock: clock.clone(),
        loading: false,
        reload_wanted: true,
        stream_config,
        feed: None,
        replay_book,
        cancel,
    };
    runner.follow_market(&mut app);
    let mut frame_tick = tokio::time::interval(config.frame_interval());
    frame_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reload_tick = tokio::time::interval(Duration::from_secs(config.reload_seconds));
    reload_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut bus_open = true;
    runner.maybe_load();
    loop {
        let action = tokio::select! {
            _ = frame_tick.tick() => {
                runner.maybe_load();
                runner.poll_book(&mut app);
                if app.dirty {
                    terminal.draw(|f| view::draw(f, &app, theme))?;
                    app.dirty = false;
                }
                continue;
            }
            _ = reload_tick.tick() => {
                runner.reload_wanted = true;
                continue;
            }
            Some(action) = rx.recv() => {
                if matches!(action, Action::SnapshotLoaded(_) | Action::LoadFailed(_)) {
                    runner.loading = false;
                }
                action
            }
            received = subscription.recv(), if bus_open => match received {
                Received::Event(event) => Action::Bus { event: Box::new(event), at_ms: clock.now_ms() },
                Received::Lagged { missed } => Action::Lagged(missed),
                Received::Closed => {
                    bus_open = false;
                    continue;
                }
            },
            event = events.next() => match event {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    match keys::map_key(&app, key) {
                        Some(a) => a,
                        None => continue,
                    }
                }
                Some(Ok(TermEvent::Mouse(m))) => {
                    let width = terminal.size().map(|s| s.width).unwrap_or(80);
                    match keys::map_mouse(&app, m, width) {
                        Some(a) => a,
                        None => continue,
                    }
                }
                Some(Ok(TermEvent::Resize(..))) => Action::Resized,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        };
        let effects = update::update(&mut app, action);
        if runner.execute(&mut app, effects) || app.should_quit {
            return Ok(());
        }
    }
}
