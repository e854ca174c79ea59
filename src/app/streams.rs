//! The daemon's live feeds on a Binance connection: the market streams of the traded symbols
//! and the account's user-data stream, run under the daemon's cancellation token.
//!
//! - Execution reports go to `TradingService::book_stream_execution`, the booking path the
//!   REST `monitor_orders` also uses, so a fill is booked within the second and only once.
//! - Stream trades mark positions through `TradingService::apply_marks` (at most once per
//!   `stream.marks_interval_ms`, only for symbols that traded). A symbol is *fresh* while its
//!   last new stream trade was seen within two `update_prices` intervals (local clock) and its
//!   stream has not reported a drop since; `update_prices` asks the REST ticker only for
//!   positions whose symbol is not fresh.
//! - Stream state changes are recorded as runs of `market_stream:<SYMBOL>` and
//!   `user_data_stream` in `job_runs` (so `trademind status` shows them like the jobs); the
//!   market streams' health goes on the bus through the run recorder, the user-data stream
//!   publishes its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::bus::{Event, EventBus, Received, StreamState, Subscription};
use crate::app::scheduler::{Clock, JobRun, RunRecorder};
use crate::app::trading::TradingService;
use crate::domain::market::candle::Interval;
use crate::domain::money::Price;
use crate::domain::symbol::Symbol;
use crate::services::exchange::Exchange;
use crate::services::exchange::any::AnyExchange;
use crate::services::market_stream::user_data::ExecutionReport;
use crate::services::market_stream::{
    ExecutionSink, MarketStreams, Marks, StreamConfig, StreamError, StreamSpec, UserDataSettings,
    start_market_streams,
};
use crate::store::Store;
use crate::store::strategies::StrategyRow;

/// Job name prefix of a market stream's state changes in `job_runs`.
pub const MARKET_STREAM: &str = "market_stream";
/// Job name of the user-data stream's state changes in `job_runs`.
pub const USER_DATA_STREAM: &str = "user_data_stream";
/// Execution reports waiting for the trading service; the stream waits when it is full.
const EXECUTION_QUEUE: usize = 256;

/// Which symbols the market stream marks right now (see the module notes).
#[derive(Debug, Clone)]
pub struct StreamFreshness {
    seen: Arc<Mutex<HashMap<Symbol, i64>>>,
    max_age_ms: i64,
}

impl StreamFreshness {
    /// Fresh for `max_age_ms` after each new trade.
    pub fn new(max_age_ms: i64) -> Self {
        StreamFreshness {
            seen: Arc::default(),
            max_age_ms,
        }
    }

    fn saw(&self, symbol: &Symbol, now_ms: i64) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(symbol.clone(), now_ms);
    }

    fn forget(&self, symbol: &Symbol) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(symbol);
    }

    pub fn is_fresh(&self, symbol: &Symbol, now_ms: i64) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(symbol)
            .is_some_and(|at| *at <= now_ms && now_ms - at <= self.max_age_ms)
    }
}

/// What the feeds need from the daemon.
pub struct FeedDeps<E: Exchange> {
    pub trading: Arc<TradingService<E>>,
    pub store: Arc<Mutex<Store>>,
    pub bus: EventBus,
    pub clock: Arc<dyn Clock>,
    /// Records the market streams' state changes (the daemon's `StoreRecorder`).
    pub recorder: Arc<dyn RunRecorder>,
    pub config: StreamConfig,
    /// One combined stream per symbol.
    pub specs: Vec<StreamSpec>,
    /// The account stream; `None` streams market data only.
    pub user_data: Option<UserDataSettings>,
    /// The `update_prices` interval: a stream mark stays fresh for two of them.
    pub update_prices_every: Duration,
}

/// The running feeds.
pub struct LiveFeeds {
    pub freshness: StreamFreshness,
    pub marks: Marks,
    streams: MarketStreams,
    tasks: JoinSet<()>,
}

impl LiveFeeds {
    /// Wait for every feed task to stop (after `cancel`).
    pub async fn join(mut self) {
        if let Err(e) = self.streams.join().await {
            tracing::warn!(error = %e, "a market stream ended with an error");
        }
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined {
                tracing::warn!(error = %e, "a stream feed task failed");
            }
        }
    }
}

/// The account stream's settings when the daemon trades on Binance (with its keys); `None` on
/// the paper exchange, which has no streams to follow.
pub fn binance_user_data(
    exchange: &AnyExchange,
    config: &StreamConfig,
) -> Option<UserDataSettings> {
    match exchange {
        AnyExchange::Paper(_) => None,
        AnyExchange::Binance(client) => {
            let credentials = client.credentials()?;
            Some(UserDataSettings::new(
                config,
                credentials.api_key().to_owned(),
                credentials.api_secret().to_owned(),
            ))
        }
    }
}

/// One stream per symbol of the active strategies, at the first strategy's interval for it
/// (the kline stream feeds the candle store; marks and the book do not depend on it).
pub fn specs_for(strategies: &[StrategyRow]) -> Vec<StreamSpec> {
    let mut specs: Vec<StreamSpec> = Vec::new();
    for strategy in strategies {
        let interval: Interval = match strategy.interval.parse() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(strategy = %strategy.name, error = %e, "no stream for a bad interval");
                continue;
            }
        };
        for raw in &strategy.symbols {
            match Symbol::new(raw) {
                Ok(symbol) if !specs.iter().any(|s| s.symbol == symbol) => {
                    specs.push(StreamSpec { symbol, interval });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(symbol = %raw, error = %e, "no stream for a bad symbol"),
            }
        }
    }
    specs
}

/// Start the feeds; they run until `cancel`. Fails at once on invalid `[stream]` settings.
pub fn start_feeds<E: Exchange + 'static>(
    deps: FeedDeps<E>,
    cancel: CancellationToken,
) -> Result<LiveFeeds, StreamError> {
    let max_age_ms =
        i64::try_from(deps.update_prices_every.as_millis().saturating_mul(2)).unwrap_or(i64::MAX);
    let freshness = StreamFreshness::new(max_age_ms);
    let mut tasks = JoinSet::new();
    // Subscribed before the streams start, so their first state change is seen.
    tasks.spawn(record_stream_health(
        deps.bus.subscribe(),
        deps.store.clone(),
        deps.recorder.clone(),
        deps.clock.clone(),
        freshness.clone(),
        cancel.clone(),
    ));
    let (reports, queue) = tokio::sync::mpsc::channel(EXECUTION_QUEUE);
    let streams = start_market_streams(
        &deps.config,
        &deps.specs,
        deps.store.clone(),
        deps.bus.clone(),
        deps.user_data
            .map(|settings| (settings, ExecutionSink::Forward(reports))),
        cancel.clone(),
    )?;
    tasks.spawn(book_executions(
        deps.trading.clone(),
        queue,
        deps.clock.clone(),
    ));
    tasks.spawn(apply_stream_marks(
        deps.trading,
        streams.marks.clone(),
        freshness.clone(),
        (
            deps.clock,
            Duration::from_millis(deps.config.marks_interval_ms),
        ),
        cancel,
    ));
    Ok(LiveFeeds {
        freshness,
        marks: streams.marks.clone(),
        streams,
        tasks,
    })
}

/// Book each execution report as it comes. Ends when the user-data stream stops (on cancel),
/// after booking what it had already handed over.
async fn book_executions<E: Exchange + 'static>(
    trading: Arc<TradingService<E>>,
    mut queue: tokio::sync::mpsc::Receiver<ExecutionReport>,
    clock: Arc<dyn Clock>,
) {
    while let Some(report) = queue.recv().await {
        match trading.book_stream_execution(&report, clock.now_ms()).await {
            Ok(Some(closed)) => tracing::info!(symbol = %closed.symbol, leg = %closed.leg,
                realized_pnl = %closed.realized_pnl, "protection filled (user-data stream): position closed"),
            Ok(None) => {}
            // The row stays as it was; the REST monitor catches the order up.
            Err(e) => tracing::error!(client_order_id = %report.client_order_id, error = %e,
                "execution report not booked"),
        }
    }
}

/// Every `period`, mark positions at the stream's newest trades (only symbols that traded
/// since the last pass) and note them fresh.
async fn apply_stream_marks<E: Exchange + 'static>(
    trading: Arc<TradingService<E>>,
    marks: Marks,
    freshness: StreamFreshness,
    (clock, period): (Arc<dyn Clock>, Duration),
    cancel: CancellationToken,
) {
    let mut applied: HashMap<Symbol, i64> = HashMap::new();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now_ms();
        let changed: Vec<(Symbol, Price, i64)> = marks
            .all()
            .into_iter()
            .filter(|(symbol, (_, at))| applied.get(symbol).is_none_or(|seen| at > seen))
            .map(|(symbol, (price, at))| (symbol, price, at))
            .collect();
        if changed.is_empty() {
            continue;
        }
        let mut prices = Vec::with_capacity(changed.len());
        for (symbol, price, at) in changed {
            freshness.saw(&symbol, now);
            applied.insert(symbol.clone(), at);
            prices.push((symbol, price));
        }
        if let Err(e) = trading.apply_marks(&prices, now).await {
            tracing::warn!(error = %e, "stream marks not applied");
        }
    }
}

/// Record the streams' state changes as job runs; a dropped market stream stops counting as
/// fresh at once, so the next `update_prices` asks the REST ticker.
async fn record_stream_health(
    mut events: Subscription,
    store: Arc<Mutex<Store>>,
    recorder: Arc<dyn RunRecorder>,
    clock: Arc<dyn Clock>,
    freshness: StreamFreshness,
    cancel: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            r = events.recv() => r,
        };
        let now = clock.now_ms();
        match received {
            Received::Event(Event::StreamStatus {
                symbol,
                state,
                detail,
            }) => {
                // `connecting` precedes every outcome and `stopped` is our own shutdown.
                if matches!(state, StreamState::Connecting | StreamState::Stopped) {
                    continue;
                }
                let healthy = state == StreamState::Connected;
                if !healthy {
                    freshness.forget(&symbol);
                }
                recorder.record(&JobRun {
                    job: format!("{MARKET_STREAM}:{symbol}"),
                    started_at: now,
                    finished_at: now,
                    error: (!healthy).then(|| format!("{state}: {detail}")),
                });
            }
            Received::Event(Event::HealthChanged {
                component,
                healthy,
                detail,
            }) if component == USER_DATA_STREAM => {
                // The user-data task published this itself: store it without publishing again.
                let run = JobRun {
                    job: USER_DATA_STREAM.into(),
                    started_at: now,
                    finished_at: now,
                    error: (!healthy).then_some(detail),
                };
                match store.lock() {
                    Ok(store) => {
                        if let Err(e) = crate::store::jobs::insert_run(store.conn(), &run) {
                            tracing::warn!("cannot record the user-data stream state: {e}");
                        }
                    }
                    Err(_) => tracing::warn!(
                        "cannot record the user-data stream state: database lock poisoned"
                    ),
                }
            }
            Received::Event(_) => {}
            // Missed state changes are superseded by the next one.
            Received::Lagged { .. } => {}
            Received::Closed => return,
        }
    }
}

/// The market stream the terminal interface opens for the symbol it shows, on a Binance
/// connection: its trades reach the Market screen over the interface's bus, its synced book is
/// read for the ladder, and its closed (and back-filled) candles are stored, so the chart reads
/// current candles instead of whatever was stored last.
pub struct MarketFeed {
    pub symbol: Symbol,
    pub interval: Interval,
    streams: MarketStreams,
    cancel: CancellationToken,
}

impl MarketFeed {
    /// Open the stream of `symbol` (its klines at `interval`); it stops with `parent` or `stop`.
    pub fn start(
        config: &StreamConfig,
        symbol: Symbol,
        interval: Interval,
        store: Arc<Mutex<Store>>,
        bus: EventBus,
        parent: &CancellationToken,
    ) -> Result<MarketFeed, StreamError> {
        let cancel = parent.child_token();
        let spec = StreamSpec {
            symbol: symbol.clone(),
            interval,
        };
        let streams = start_market_streams(config, &[spec], store, bus, None, cancel.clone())?;
        Ok(MarketFeed {
            symbol,
            interval,
            streams,
            cancel,
        })
    }

    /// The stream's synced book of its symbol, as the Market screen reads it.
    pub fn shown_book(&self) -> Option<ShownBook> {
        Some(ShownBook {
            symbol: self.symbol.clone(),
            book: self.streams.books.get(&self.symbol)?.clone(),
        })
    }

    /// Stop the stream (its tasks end on the cancelled token; dropping them aborts the rest).
    pub fn stop(self) {
        self.cancel.cancel();
    }
}

/// One symbol's book as the Market screen reads it: a live stream's synced book, or the one
/// the demo's replay keeps (`app::demo`). Both reach the screen the same way: `levels` here,
/// then `tui::action::Action::BookLevels`; their trades come as `Event::Trade` on the bus.
#[derive(Debug, Clone)]
pub struct ShownBook {
    pub symbol: Symbol,
    book: crate::services::market_stream::SharedBook,
}

impl ShownBook {
    pub fn new(symbol: Symbol, book: crate::services::market_stream::SharedBook) -> Self {
        ShownBook { symbol, book }
    }

    /// The top `depth` levels a side while the book is synced.
    pub fn levels(&self, depth: usize) -> Option<crate::app::snapshot::BookView> {
        self.book.read(|book| book_view(book, depth))
    }
}

/// The ladder the Market screen draws: best level first on both sides.
pub fn book_view(
    book: &crate::domain::market::OrderBook,
    depth: usize,
) -> crate::app::snapshot::BookView {
    use crate::app::snapshot::{BookLevel, BookView};
    let level = |(price, qty)| BookLevel { price, qty };
    BookView {
        bids: book.bids().take(depth).map(level).collect(),
        asks: book.asks().take(depth).map(level).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_lists_the_best_levels_first_on_both_sides() {
        use rust_decimal_macros::dec;
        let mut book = crate::domain::market::OrderBook::new(100);
        book.apply_snapshot(
            1,
            [
                (Price(dec!(99)), crate::domain::Qty(dec!(1))),
                (Price(dec!(100)), crate::domain::Qty(dec!(2))),
                (Price(dec!(98)), crate::domain::Qty(dec!(3))),
            ],
            [
                (Price(dec!(102)), crate::domain::Qty(dec!(4))),
                (Price(dec!(101)), crate::domain::Qty(dec!(5))),
            ],
        )
        .unwrap();
        let view = book_view(&book, 2);
        let prices = |l: &[crate::app::snapshot::BookLevel]| -> Vec<Price> {
            l.iter().map(|l| l.price).collect()
        };
        assert_eq!(prices(&view.bids), vec![Price(dec!(100)), Price(dec!(99))]);
        assert_eq!(prices(&view.asks), vec![Price(dec!(101)), Price(dec!(102))]);
        assert_eq!(view.asks[0].qty, crate::domain::Qty(dec!(5)));
    }

    #[test]
    fn a_symbol_is_fresh_for_max_age_after_a_trade_and_stale_after_a_drop() {
        let f = StreamFreshness::new(20_000);
        let btc = Symbol::new("BTCUSDT").unwrap();
        assert!(!f.is_fresh(&btc, 0));
        f.saw(&btc, 1_000);
        assert!(f.is_fresh(&btc, 21_000));
        assert!(!f.is_fresh(&btc, 21_001));
        f.saw(&btc, 30_000);
        f.forget(&btc);
        assert!(!f.is_fresh(&btc, 30_000));
    }

    #[test]
    fn specs_take_each_symbol_once_at_its_first_strategy_interval() {
        let row = |name: &str, symbols: &[&str], interval: &str| StrategyRow {
            id: 1,
            name: name.into(),
            is_active: true,
            status: "active".into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            interval: interval.into(),
            decision_engine: "rules".into(),
            parameters: serde_json::json!({}),
            connection_id: None,
            created_at: 0,
            updated_at: 0,
        };
        let specs = specs_for(&[
            row("a", &["BTCUSDT", "ETHUSDT"], "15m"),
            row("b", &["ETHUSDT", "SOLUSDT"], "1h"),
            row("c", &["XRPUSDT"], "7m"),
        ]);
        let got: Vec<(String, Interval)> = specs
            .iter()
            .map(|s| (s.symbol.to_string(), s.interval))
            .collect();
        assert_eq!(
            got,
            vec![
                ("BTCUSDT".into(), Interval::M15),
                ("ETHUSDT".into(), Interval::M15),
                ("SOLUSDT".into(), Interval::H1),
            ]
        );
    }
}
