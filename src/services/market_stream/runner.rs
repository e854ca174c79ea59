//! The daemon's one call for live market data: a reconnecting combined stream per symbol (kline,
//! bookTicker, aggTrade, diff depth, with REST snapshot resync and kline back-fill into the
//! candle store), the user-data stream when keys are given (execution reports to an
//! `ExecutionSink`), and the latest trade price per symbol (`Marks`). Everything stops on
//! `cancel`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bus::{Event, EventBus, Received};
use crate::domain::money::Price;
use crate::domain::symbol::Symbol;
use crate::services::market_stream::candle_sink::StoreCandleSink;
use crate::services::market_stream::config::StreamConfig;
use crate::services::market_stream::rest::RestMarketData;
use crate::services::market_stream::stream::{MarketStream, SharedBook, StreamError, StreamSpec};
use crate::services::market_stream::user_data::{ExecutionSink, UserDataSettings, run_user_data};
use crate::store::Store;

/// The last traded price per symbol and when it printed (exchange time, ms), from the streams'
/// `Event::Trade` only: prices others publish (`PriceUpdated` from the REST ticker) do not
/// count, so a mark here proves the stream is delivering.
#[derive(Debug, Clone, Default)]
pub struct Marks(Arc<RwLock<HashMap<Symbol, (Price, i64)>>>);

impl Marks {
    pub fn get(&self, symbol: &Symbol) -> Option<(Price, i64)> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(symbol)
            .copied()
    }

    pub fn all(&self) -> HashMap<Symbol, (Price, i64)> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, symbol: Symbol, price: Price, time_ms: i64) {
        let mut marks = self.0.write().unwrap_or_else(PoisonError::into_inner);
        // Trades can be replayed out of order across a reconnect; keep the newest.
        let newer = marks.get(&symbol).is_none_or(|(_, t)| time_ms >= *t);
        if newer {
            marks.insert(symbol, (price, time_ms));
        }
    }
}

/// The running streams: the books and marks they keep, and the tasks to wait for.
pub struct MarketStreams {
    /// The synced local order book of each symbol (`SharedBook::read` is `None` while it resyncs).
    pub books: HashMap<Symbol, SharedBook>,
    pub marks: Marks,
    tasks: JoinSet<Result<(), StreamError>>,
}

impl MarketStreams {
    /// Wait for every task to end (they end on `cancel`); the first configuration error wins.
    pub async fn join(mut self) -> Result<(), StreamError> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.unwrap_or_else(|e| {
                Err(StreamError::Config(format!(
                    "a market stream task failed: {e}"
                )))
            });
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

/// Start the streams for `specs` (one connection per symbol) and, with `user_data`, the account
/// stream whose execution reports go to its sink. Closed candles go to `store`. Fails at once
/// on invalid settings; otherwise the tasks run (reconnecting as needed) until `cancel` fires.
/// Must be called inside a tokio runtime.
pub fn start_market_streams(
    config: &StreamConfig,
    specs: &[StreamSpec],
    store: Arc<Mutex<Store>>,
    bus: EventBus,
    user_data: Option<(UserDataSettings, ExecutionSink)>,
    cancel: CancellationToken,
) -> Result<MarketStreams, StreamError> {
    config
        .validate()
        .map_err(|(key, message)| StreamError::Config(format!("stream.{key}: {message}")))?;
    let rest = RestMarketData::new(&config.rest_base_url)
        .map_err(|e| StreamError::Config(e.to_string()))?;
    let marks = Marks::default();
    let mut tasks = JoinSet::new();
    // Subscribe before any stream starts so the first trade already sets a mark.
    tasks.spawn(keep_marks(bus.subscribe(), marks.clone(), cancel.clone()));
    let mut books = HashMap::new();
    for spec in specs {
        let book = SharedBook::new(config);
        books.insert(spec.symbol.clone(), book.clone());
        let stream = MarketStream {
            config: config.clone(),
            spec: spec.clone(),
            snapshots: rest.clone(),
            klines: rest.clone(),
            candles: StoreCandleSink::new(store.clone()),
            bus: bus.clone(),
            book,
        };
        tasks.spawn(stream.run(cancel.clone()));
    }
    if let Some((settings, sink)) = user_data {
        let (bus, cancel) = (bus.clone(), cancel.clone());
        tasks.spawn(async move {
            run_user_data(settings, bus, sink, cancel).await;
            Ok(())
        });
    }
    Ok(MarketStreams {
        books,
        marks,
        tasks,
    })
}

/// `start_market_streams` and wait until `cancel` has stopped everything.
pub async fn run_market_streams(
    config: &StreamConfig,
    specs: &[StreamSpec],
    store: Arc<Mutex<Store>>,
    bus: EventBus,
    user_data: Option<(UserDataSettings, ExecutionSink)>,
    cancel: CancellationToken,
) -> Result<(), StreamError> {
    start_market_streams(config, specs, store, bus, user_data, cancel)?
        .join()
        .await
}

async fn keep_marks(
    mut events: crate::bus::Subscription,
    marks: Marks,
    cancel: CancellationToken,
) -> Result<(), StreamError> {
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = events.recv() => r,
        };
        match received {
            Received::Event(Event::Trade {
                symbol,
                price,
                time_ms,
                ..
            }) => marks.set(symbol, price, time_ms),
            // A lag only loses older prices; the next trade sets the mark again.
            Received::Event(_) | Received::Lagged { .. } => {}
            Received::Closed => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn marks_keep_the_newest_trade_per_symbol() {
        let marks = Marks::default();
        let btc = Symbol::new("BTCUSDT").unwrap();
        marks.set(btc.clone(), Price::new(dec!(100)), 2);
        marks.set(btc.clone(), Price::new(dec!(99)), 1);
        assert_eq!(marks.get(&btc), Some((Price::new(dec!(100)), 2)));
        marks.set(btc.clone(), Price::new(dec!(101)), 2);
        assert_eq!(marks.get(&btc), Some((Price::new(dec!(101)), 2)));
        assert_eq!(marks.get(&Symbol::new("ETHUSDT").unwrap()), None);
    }

    #[tokio::test]
    async fn invalid_settings_fail_before_anything_starts() {
        let config = StreamConfig {
            ws_base_url: "http://not-a-websocket".into(),
            ..StreamConfig::default()
        };
        let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let started = start_market_streams(
            &config,
            &[],
            store,
            EventBus::new(16),
            None,
            CancellationToken::new(),
        );
        assert!(matches!(started, Err(StreamError::Config(m)) if m.contains("ws_base_url")));
    }
}
