//! The reconnecting combined-stream task for one symbol: kline, bookTicker, aggTrade and
//! diff-depth over one WebSocket. It keeps the local book synced, stores closed candles,
//! back-fills candles missed while disconnected, and publishes everything on the event bus.
//!
//! It reconnects on a drop or error, on a read timeout (no frame, not even a ping, for
//! `read_timeout_secs`), on a `serverShutdown` event (at once, without back-off) and
//! proactively before Binance's 24-hour cut (`max_connection_age_secs`).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::bus::{Event, EventBus, StreamState};
use crate::domain::market::{Candle, Interval, OrderBook};
use crate::domain::symbol::Symbol;
use crate::services::market_stream::config::StreamConfig;
use crate::services::market_stream::rest::KlineSource;
use crate::services::market_stream::sync::{BookSync, DepthSnapshotSource, SnapshotStep, SyncStep};
use crate::services::market_stream::wire::{DepthDiff, StreamMessage, decode_message};

/// Where closed candles go (the candle repository in production).
pub trait ClosedCandleSink: Send + Sync {
    fn store_closed(
        &self,
        symbol: &Symbol,
        interval: Interval,
        candles: Vec<Candle>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The live book shared with readers (TUI, paper exchange): lock, read, release.
#[derive(Debug, Clone)]
pub struct SharedBook(Arc<Mutex<BookSync>>);

impl SharedBook {
    pub fn new(config: &StreamConfig) -> Self {
        SharedBook(Arc::new(Mutex::new(BookSync::new(
            config.max_book_levels,
            config.max_buffered_diffs,
        ))))
    }

    fn lock(&self) -> MutexGuard<'_, BookSync> {
        // A panic while holding the lock cannot leave the book half-applied in a way readers
        // could misuse: `is_synced` is checked by every reader.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` on the book if it is synced.
    pub fn read<T>(&self, f: impl FnOnce(&OrderBook) -> T) -> Option<T> {
        let sync = self.lock();
        sync.is_live().then(|| f(sync.book()))
    }

    pub fn resyncs(&self) -> u64 {
        self.lock().resyncs()
    }

    /// Take `snapshot` as the whole book (a replay's book, which has no diffs to follow);
    /// readers see it at once.
    pub fn replace(&self, snapshot: &DepthDiff) -> SnapshotStep {
        self.lock().on_snapshot(snapshot)
    }
}

/// What the stream watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub symbol: Symbol,
    pub interval: Interval,
}

impl StreamSpec {
    /// `/stream?streams=btcusdt@kline_1m/btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@depth@100ms`
    pub fn path(&self) -> String {
        let s = self.symbol.as_str().to_ascii_lowercase();
        format!(
            "/stream?streams={s}@kline_{}/{s}@bookTicker/{s}@aggTrade/{s}@depth@100ms",
            self.interval
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("invalid [stream] settings: {0}")]
    Config(String),
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    Cancelled,
    /// Reconnect at once (server shutdown, age limit).
    Planned(String),
    /// Reconnect after back-off.
    Failed(String),
}

/// The task's collaborators.
pub struct MarketStream<S, K, C> {
    pub config: StreamConfig,
    pub spec: StreamSpec,
    pub snapshots: S,
    pub klines: K,
    pub candles: C,
    pub bus: EventBus,
    pub book: SharedBook,
}

impl<S, K, C> MarketStream<S, K, C>
where
    S: DepthSnapshotSource,
    K: KlineSource,
    C: ClosedCandleSink,
{
    /// Run until `cancel` fires. Only a configuration error ends it early.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), StreamError> {
        self.config
            .validate()
            .map_err(|(key, message)| StreamError::Config(format!("stream.{key}: {message}")))?;
        let url = format!(
            "{}{}",
            self.config.ws_base_url.trim_end_matches('/'),
            self.spec.path()
        );
        let initial = Duration::from_millis(self.config.reconnect_initial_backoff_ms);
        let max = Duration::from_millis(self.config.reconnect_max_backoff_ms);
        let mut backoff = initial;
        let mut last_closed: Option<i64> = None;
        loop {
            self.status_quiet(StreamState::Connecting, &url);
            let connected = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = tokio_tungstenite::connect_async(url.as_str()) => r,
            };
            let ended = match connected {
                Ok((ws, _)) => {
                    backoff = initial;
                    self.status(StreamState::Connected, &url);
                    self.book.lock().reset();
                    self.connection(ws, &mut last_closed, &cancel).await
                }
                Err(e) => Ended::Failed(format!("connect failed: {e}")),
            };
            match ended {
                Ended::Cancelled => {
                    self.status_quiet(StreamState::Stopped, "cancelled");
                    return Ok(());
                }
                Ended::Planned(why) => {
                    self.status_quiet(StreamState::Reconnecting, &why);
                }
                Ended::Failed(why) => {
                    // The first failure after a good connection is news; the retries of the
                    // same outage (the back-off has grown) are not.
                    let detail = format!("{why}; retry in {backoff:?}");
                    if backoff == initial {
                        self.status(StreamState::Reconnecting, &detail);
                    } else {
                        self.status_quiet(StreamState::Reconnecting, &detail);
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(max);
                }
            }
        }
    }

    async fn connection<W>(
        &self,
        mut ws: W,
        last_closed: &mut Option<i64>,
        cancel: &CancellationToken,
    ) -> Ended
    where
        W: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        let deadline = Instant::now() + Duration::from_secs(self.config.max_connection_age_secs);
        let read_timeout = Duration::from_secs(self.config.read_timeout_secs);
        // Candles that closed while we were away; a failure here is retried on the next gap.
        if let Some(last) = *last_closed {
            self.backfill(last, None, last_closed).await;
        }
        let mut scratch = DepthDiff::default();
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ended::Cancelled,
                _ = sleep_until(deadline) => {
                    return Ended::Planned("connection age limit reached; reconnecting before the 24 h cut".into())
                }
                next = timeout(read_timeout, ws.next()) => next,
            };
            let frame = match next {
                Err(_) => {
                    return Ended::Failed(format!(
                        "no frame for {read_timeout:?}; connection presumed dead"
                    ));
                }
                Ok(None) => return Ended::Failed("server closed the connection".into()),
                Ok(Some(Err(e))) => return Ended::Failed(format!("read error: {e}")),
                Ok(Some(Ok(frame))) => frame,
            };
            let text = match frame {
                Message::Text(text) => text,
                Message::Close(reason) => {
                    return Ended::Failed(format!("server sent close {reason:?}"));
                }
                // tungstenite answers pings itself; binary frames are not used by these streams.
                _ => continue,
            };
            let message = match decode_message(text.as_str(), &mut scratch) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(symbol = %self.spec.symbol, error = %e, "undecodable stream frame skipped");
                    continue;
                }
            };
            match message {
                StreamMessage::Depth { .. } => {
                    if let Err(why) = self.on_depth(&scratch).await {
                        return Ended::Failed(why);
                    }
                }
                StreamMessage::BookTicker(t) => {
                    self.bus.publish(Event::BookTicker {
                        symbol: self.spec.symbol.clone(),
                        bid: t.bid,
                        bid_qty: t.bid_qty,
                        ask: t.ask,
                        ask_qty: t.ask_qty,
                    });
                }
                StreamMessage::AggTrade(t) => {
                    self.bus.publish(Event::Trade {
                        symbol: self.spec.symbol.clone(),
                        price: t.price,
                        qty: t.qty,
                        time_ms: t.trade_time,
                        buyer_is_maker: t.buyer_is_maker,
                    });
                    self.bus.publish(Event::PriceUpdated {
                        symbol: self.spec.symbol.clone(),
                        price: t.price,
                        time_ms: t.trade_time,
                    });
                }
                StreamMessage::Kline(k) if k.closed && k.interval == self.spec.interval => {
                    let open_time = k.candle.open_time;
                    match *last_closed {
                        Some(last) if open_time <= last => continue,
                        Some(last) if open_time > last + self.spec.interval.millis() => {
                            self.backfill(last, Some(open_time), last_closed).await;
                        }
                        _ => {}
                    }
                    self.accept_closed(vec![k.candle], last_closed).await;
                }
                StreamMessage::Kline(_) | StreamMessage::Ignored => {}
                StreamMessage::ServerShutdown { .. } => {
                    return Ended::Planned("server announced shutdown".into());
                }
            }
        }
    }

    /// Feed a diff to the sync manager; fetch snapshots inline while it asks for one. Frames
    /// arriving meanwhile wait in the socket and are applied in order afterwards.
    async fn on_depth(&self, diff: &DepthDiff) -> Result<(), String> {
        let step = self.book.lock().on_diff(diff);
        match step {
            SyncStep::Applied => self.publish_book(),
            SyncStep::Stale => {}
            SyncStep::NeedSnapshot => {
                if self.book.lock().buffered() == 1 {
                    self.resync("initial snapshot").await?;
                }
            }
            SyncStep::Gap(err) => {
                tracing::warn!(symbol = %self.spec.symbol, error = %err, "depth gap; resyncing");
                self.bus.publish(Event::BookResyncing {
                    symbol: self.spec.symbol.clone(),
                    reason: err.to_string(),
                });
                self.resync("gap").await?;
            }
        }
        Ok(())
    }

    async fn resync(&self, why: &str) -> Result<(), String> {
        let attempts = self.config.max_snapshot_attempts;
        for attempt in 1..=attempts {
            let snapshot = self
                .snapshots
                .depth_snapshot(&self.spec.symbol, self.config.depth_snapshot_limit)
                .await;
            let step = match snapshot {
                Ok(snap) => self.book.lock().on_snapshot(&snap),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "depth snapshot failed");
                    sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    continue;
                }
            };
            match step {
                SnapshotStep::Live { .. } => {
                    self.publish_book();
                    return Ok(());
                }
                SnapshotStep::TooOld { .. } => {
                    sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                SnapshotStep::Invalid(err) => {
                    return Err(format!("unusable depth snapshot: {err}"));
                }
                SnapshotStep::Gap(err) => {
                    // The buffer was dropped with the gap; the next diff restarts buffering.
                    self.bus.publish(Event::BookResyncing {
                        symbol: self.spec.symbol.clone(),
                        reason: err.to_string(),
                    });
                    return Ok(());
                }
            }
        }
        Err(format!(
            "could not sync the order book ({why}) after {attempts} snapshot attempts"
        ))
    }

    fn publish_book(&self) {
        let top = self
            .book
            .read(|b| (b.last_update_id(), b.best_bid(), b.best_ask()));
        if let Some((last_update_id, bid, ask)) = top {
            self.bus.publish(Event::BookUpdated {
                symbol: self.spec.symbol.clone(),
                last_update_id,
                best_bid: bid.map(|(p, _)| p),
                best_ask: ask.map(|(p, _)| p),
            });
        }
    }

    /// Fetch closed candles after `last` (and before `until`, the first one the stream gave us).
    async fn backfill(&self, last: i64, until: Option<i64>, last_closed: &mut Option<i64>) {
        let step = self.spec.interval.millis();
        let now = chrono::Utc::now().timestamp_millis();
        let fetched = self
            .klines
            .klines(&self.spec.symbol, self.spec.interval, last + step, 1000)
            .await;
        let candles = match fetched {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "kline back-fill failed");
                self.status(StreamState::Gap, &format!("kline back-fill failed: {e}"));
                return;
            }
        };
        let missed: Vec<Candle> = candles
            .into_iter()
            .filter(|c| c.open_time > last)
            .filter(|c| until.is_none_or(|u| c.open_time < u))
            // Only candles that have closed: the REST answer ends with the one still forming.
            .filter(|c| until.is_some() || c.open_time + step <= now)
            .collect();
        if missed.is_empty() {
            return;
        }
        let count = missed.len();
        self.accept_closed(missed, last_closed).await;
        self.bus.publish(Event::KlinesBackfilled {
            symbol: self.spec.symbol.clone(),
            interval: self.spec.interval,
            count,
        });
    }

    async fn accept_closed(&self, candles: Vec<Candle>, last_closed: &mut Option<i64>) {
        let Some(newest) = candles.iter().map(|c| c.open_time).max() else {
            return;
        };
        if let Err(e) = self
            .candles
            .store_closed(&self.spec.symbol, self.spec.interval, candles.clone())
            .await
        {
            tracing::error!(error = %e, "closed candles could not be stored");
        }
        for candle in candles {
            self.bus.publish(Event::CandleClosed {
                symbol: self.spec.symbol.clone(),
                interval: self.spec.interval,
                candle,
            });
        }
        *last_closed = Some(newest);
    }

    /// A state change worth a line in the daemon's log at info.
    fn status(&self, state: StreamState, detail: &str) {
        tracing::info!(symbol = %self.spec.symbol, state = state.as_str(), detail, "market stream");
        self.publish_status(state, detail);
    }

    /// Routine churn (connecting, a retry of an outage already reported, shutdown): debug only,
    /// so a flapping connection does not bury the trading lines. The bus hears it all the same.
    fn status_quiet(&self, state: StreamState, detail: &str) {
        tracing::debug!(symbol = %self.spec.symbol, state = state.as_str(), detail, "market stream");
        self.publish_status(state, detail);
    }

    fn publish_status(&self, state: StreamState, detail: &str) {
        self.bus.publish(Event::StreamStatus {
            symbol: self.spec.symbol.clone(),
            state,
            detail: detail.to_owned(),
        });
    }
}
