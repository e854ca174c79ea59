//! The in-process event bus that replaces the seed's Redis pub/sub: a typed `Event` over a
//! tokio broadcast channel. Publishing never blocks; a subscriber that falls behind loses the
//! oldest events and is told how many it missed, so a slow TUI can never stall trading.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::market::{Candle, Interval};
use crate::domain::symbol::Symbol;
use crate::domain::{Price, Qty, Quote};

/// Everything the running system announces. Later subsystems add their variants here.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A candle closed (live stream or replay).
    CandleClosed {
        symbol: Symbol,
        interval: Interval,
        candle: Candle,
    },
    /// Last traded price changed.
    PriceUpdated {
        symbol: Symbol,
        price: Price,
        time_ms: i64,
    },
    /// An order row changed status.
    OrderUpdated {
        client_order_id: String,
        symbol: Symbol,
        status: crate::domain::trading::order::OrderStatus,
    },
    /// A position opened, changed or closed.
    PositionChanged {
        symbol: Symbol,
        quantity: Qty,
        realized_pnl: Quote,
    },
    /// A decision was recorded (id in the `decisions` table).
    DecisionRecorded {
        id: i64,
        symbol: Symbol,
        action: String,
        outcome: String,
    },
    /// The day's LLM budget is spent; decisions fall back to `fallback` (rules | hold).
    LlmBudgetExhausted {
        spent_usd: String,
        budget_usd: String,
        fallback: String,
    },
    /// Instruction-like text was found in untrusted data (news) fed to a decision.
    PromptInjectionDetected {
        symbol: Symbol,
        source: String,
        pattern: String,
    },
    /// The trading circuit breaker changed state.
    BreakerChanged {
        scope: String,
        state: crate::domain::risk::BreakerState,
        reason: String,
    },
    /// A component's health changed.
    HealthChanged {
        component: String,
        healthy: bool,
        detail: String,
    },
    /// Progress of a running backtest (0.0..=1.0).
    BacktestProgress { id: i64, fraction: f64 },
    /// A background job finished.
    JobFinished {
        job: String,
        ok: bool,
        error: Option<String>,
    },
    /// A log line for the TUI's log screen.
    Log {
        level: String,
        target: String,
        message: String,
    },
    /// Best bid/ask changed (`<symbol>@bookTicker`).
    BookTicker {
        symbol: Symbol,
        bid: Price,
        bid_qty: Qty,
        ask: Price,
        ask_qty: Qty,
    },
    /// An aggregated trade printed (`<symbol>@aggTrade`).
    Trade {
        symbol: Symbol,
        price: Price,
        qty: Qty,
        time_ms: i64,
        buyer_is_maker: bool,
    },
    /// The synced local order book moved to `last_update_id`.
    BookUpdated {
        symbol: Symbol,
        last_update_id: u64,
        best_bid: Option<Price>,
        best_ask: Option<Price>,
    },
    /// The local book was discarded (gap, reconnect) and is being rebuilt from a snapshot.
    BookResyncing { symbol: Symbol, reason: String },
    /// Closed candles missed while disconnected were fetched over REST and stored.
    KlinesBackfilled {
        symbol: Symbol,
        interval: Interval,
        count: usize,
    },
    /// The market stream connected, dropped or is reconnecting.
    StreamStatus {
        symbol: Symbol,
        state: StreamState,
        detail: String,
    },
    /// The exchange reported a fill of one of our orders (user-data stream `executionReport`).
    OrderFilled {
        client_order_id: String,
        symbol: Symbol,
        side: crate::domain::trading::order::Side,
        qty: Qty,
        price: Price,
        commission: rust_decimal::Decimal,
        commission_asset: Option<String>,
        trade_id: i64,
    },
    /// An asset balance changed on the exchange (`outboundAccountPosition`).
    BalanceChanged {
        asset: String,
        free: rust_decimal::Decimal,
        locked: rust_decimal::Decimal,
    },
    /// A trading connection's equity and unrealised PnL at the latest marks.
    EquityUpdated {
        connection: String,
        equity: Quote,
        unrealized_pnl: Quote,
    },
    /// Orderly shutdown has begun.
    ShuttingDown,
}

/// Where a market stream connection stands (`Event::StreamStatus`); `watch` and the health
/// records show its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Opening the connection (precedes every other state).
    Connecting,
    /// Connected and subscribed: the stream is healthy.
    Connected,
    /// The connection dropped or aged out; a new one follows after a back-off.
    Reconnecting,
    /// Closed candles could not be back-filled after a reconnect.
    Gap,
    /// Our own shutdown.
    Stopped,
}

impl StreamState {
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Connected => "connected",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Gap => "gap",
            StreamState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a subscriber gets from `recv`.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Event(Event),
    /// The subscriber was too slow and `missed` events were dropped for it.
    Lagged {
        missed: u64,
    },
    /// Every publisher is gone.
    Closed,
}

/// Cheap to clone; every clone publishes to the same subscribers.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

/// One subscriber's receiving end.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Event>,
}

impl Event {
    /// The event the TUI and the alerter see for a breaker transition.
    pub fn breaker_changed(
        scope: &str,
        transition: &crate::domain::risk::BreakerTransition,
    ) -> Event {
        Event::BreakerChanged {
            scope: scope.to_string(),
            state: transition.to,
            reason: transition.reason.as_str().to_string(),
        }
    }
}

impl EventBus {
    /// `capacity` events are kept for the slowest subscriber before it starts to lag.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus { sender }
    }

    /// Publish to whoever listens; returns how many subscribers got it. Never blocks.
    pub fn publish(&self, event: Event) -> usize {
        self.sender.send(event).unwrap_or(0)
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            receiver: self.sender.subscribe(),
        }
    }

    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(4096)
    }
}

impl Subscription {
    pub async fn recv(&mut self) -> Received {
        match self.receiver.recv().await {
            Ok(event) => Received::Event(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => Received::Lagged { missed },
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }

    /// Non-blocking poll for render loops: `None` when nothing is waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        match self.receiver.try_recv() {
            Ok(event) => Some(Received::Event(event)),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Some(Received::Lagged { missed })
            }
            Err(broadcast::error::TryRecvError::Closed) => Some(Received::Closed),
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> Event {
        Event::Log {
            level: "INFO".into(),
            target: "t".into(),
            message: n.to_string(),
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event() {
        let bus = EventBus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        assert_eq!(bus.publish(log(1)), 2);
        assert_eq!(a.recv().await, Received::Event(log(1)));
        assert_eq!(b.recv().await, Received::Event(log(1)));
    }

    #[tokio::test]
    async fn slow_subscriber_does_not_block_publisher_and_is_told_it_lagged() {
        let bus = EventBus::new(4);
        let mut slow = bus.subscribe();
        for i in 0..10 {
            bus.publish(log(i)); // must not block although nobody reads
        }
        assert_eq!(slow.recv().await, Received::Lagged { missed: 6 });
        assert_eq!(slow.recv().await, Received::Event(log(6)));
    }

    #[test]
    fn typed_order_position_breaker_and_stream_fields_print_the_same_json_as_the_strings_did() {
        // `watch --json` prints events as they are; typing the fields must not change a line.
        use crate::domain::risk::BreakerState;
        use crate::domain::trading::order::OrderStatus;
        let symbol = Symbol::new("BTCUSDT").unwrap();
        let order = Event::OrderUpdated {
            client_order_id: "tm-1".into(),
            symbol: symbol.clone(),
            status: OrderStatus::PartiallyFilled,
        };
        assert_eq!(
            serde_json::to_value(&order).unwrap(),
            serde_json::json!({"type": "order_updated", "client_order_id": "tm-1",
                "symbol": "BTCUSDT", "status": "PARTIALLY_FILLED"})
        );
        let position = Event::PositionChanged {
            symbol,
            quantity: Qty(rust_decimal::Decimal::new(5, 1)),
            realized_pnl: Quote(rust_decimal::Decimal::new(-757, 2)),
        };
        assert_eq!(
            serde_json::to_value(&position).unwrap(),
            serde_json::json!({"type": "position_changed", "symbol": "BTCUSDT",
                "quantity": "0.5", "realized_pnl": "-7.57"})
        );
        let breaker = Event::BreakerChanged {
            scope: "global".into(),
            state: BreakerState::ReduceOnly,
            reason: "daily_loss".into(),
        };
        assert_eq!(
            serde_json::to_value(&breaker).unwrap()["state"],
            "reduce_only"
        );
        let stream = Event::StreamStatus {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            state: StreamState::Reconnecting,
            detail: "closed".into(),
        };
        assert_eq!(
            serde_json::to_value(&stream).unwrap()["state"],
            "reconnecting"
        );
        assert_eq!(format!("stream {}:", StreamState::Gap), "stream gap:");
    }

    #[tokio::test]
    async fn publishing_without_subscribers_is_fine() {
        let bus = EventBus::new(4);
        assert_eq!(bus.publish(Event::ShuttingDown), 0);
        let mut late = bus.subscribe();
        assert_eq!(late.try_recv(), None);
        drop(bus);
        assert_eq!(late.recv().await, Received::Closed);
    }
}
