//! The snapshot an engine decides on. It is recorded verbatim in the flight recorder, so a
//! decision can always be explained from what the engine saw.

use serde::{Deserialize, Serialize};

use crate::domain::market::{Interval, TimestampMs};
use crate::domain::{Price, Qty, Quote};

/// Indicator values on one interval (None until enough candles exist).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndicatorSnapshot {
    pub interval: Option<Interval>,
    pub rsi: Option<f64>,
    pub macd: Option<f64>,
    pub macd_signal: Option<f64>,
    pub macd_hist: Option<f64>,
    pub sma_20: Option<f64>,
    pub ema_50: Option<f64>,
    pub atr: Option<f64>,
}

/// Order-book analytics, when a book is available.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderBookSummary {
    pub spread_bps: f64,
    /// (bid depth - ask depth) / (bid depth + ask depth) near the mid, -1 ..= 1.
    pub imbalance: f64,
    pub bid_depth: Qty,
    pub ask_depth: Qty,
}

/// The open position on the symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionSnapshot {
    /// Positive long, negative short.
    pub quantity: Qty,
    pub entry_price: Price,
    pub unrealized_pnl: Quote,
}

/// The risk layer's state as the engine should know it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskSnapshot {
    /// Portfolio heat, percent of equity at risk.
    pub heat_pct: f64,
    pub daily_pnl: Quote,
    /// Circuit-breaker state, e.g. "active", "halted".
    pub breaker: String,
    /// Largest position the risk layer allows, percent of equity.
    pub max_position_pct: f64,
}

/// One earlier decision and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastDecision {
    pub decided_at: TimestampMs,
    pub action: String,
    pub outcome: String,
}

/// Everything an engine may look at to decide on `symbol` at `now_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    pub symbol: crate::domain::Symbol,
    pub interval: Interval,
    /// The decision time: wall clock live, simulated time in a backtest.
    pub now_ms: TimestampMs,
    pub price: Price,
    pub change_24h_pct: f64,
    pub indicators: IndicatorSnapshot,
    pub higher_indicators: Option<IndicatorSnapshot>,
    pub order_book: Option<OrderBookSummary>,
    pub position: Option<PositionSnapshot>,
    pub risk: RiskSnapshot,
    pub recent_decisions: Vec<PastDecision>,
}
