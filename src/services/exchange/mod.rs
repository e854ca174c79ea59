//! Exchanges: the `Exchange` trait, the Binance adapter, the paper exchange, resilience.
//!
//! Callers only see domain types (`Order`, `Fill`, `SymbolFilters`, …); Binance's wire models stay
//! inside `binance/`. Orders should be placed through [`executor::OrderExecutor`], which records
//! the order before it is sent and resolves unknown outcomes by querying, never by resending.

pub mod any;
pub mod binance;
pub mod engine;
pub mod error;
pub mod executor;
pub mod paper;
pub mod resilience;

use crate::domain::market::candle::{Candle, Interval, TimestampMs};
use crate::domain::money::{Price, Qty};
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::{Fill, Order, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::future::Future;

pub use error::ExchangeError;

/// The `[exchange]` settings: `[exchange.binance]`, `[exchange.paper]`, `[exchange.executor]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeConfig {
    pub binance: binance::BinanceConfig,
    pub paper: paper::PaperConfig,
    pub executor: executor::ExecutorConfig,
}

impl ExchangeConfig {
    /// Range checks; the error is (dotted key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.binance.validate()?;
        self.paper.validate()?;
        self.executor.validate()?;
        self.executor
            .validate_with_recv_window(self.binance.recv_window_ms)
    }
}

/// One asset's balance on the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
}

impl Balance {
    pub fn total(&self) -> Decimal {
        self.free + self.locked
    }
}

/// 24-hour rolling statistics of a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticker24h {
    pub symbol: Symbol,
    pub last_price: Price,
    pub price_change_percent: Decimal,
    pub high_price: Price,
    pub low_price: Price,
    pub volume: Qty,
    pub quote_volume: Decimal,
}

/// One side level of an order book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookLevel {
    pub price: Price,
    pub qty: Qty,
}

/// An order book snapshot: bids best (highest) first, asks best (lowest) first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderBook {
    pub last_update_id: u64,
    pub bids: Vec<BookLevel>,
    pub asks: Vec<BookLevel>,
}

/// A one-cancels-the-other pair protecting (or entering) a position: a take-profit
/// `LIMIT_MAKER` and a `STOP_LOSS_LIMIT`. For a SELL list the take-profit is the "above" order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcoRequest {
    pub list_client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: Qty,
    pub take_profit_client_order_id: String,
    pub take_profit_price: Price,
    pub stop_client_order_id: String,
    pub stop_price: Price,
    pub stop_limit_price: Price,
}

/// An order list as the exchange reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderList {
    pub list_client_order_id: String,
    pub exchange_list_id: Option<String>,
    pub symbol: Symbol,
    pub orders: Vec<Order>,
}

/// What a successful placement returns: the order and the fills it got immediately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub order: Order,
    pub fills: Vec<Fill>,
}

/// The adapter interface: Binance and the paper exchange implement it.
///
/// Every method returns a `Send` future so callers can run them on spawned tasks.
pub trait Exchange: Send + Sync {
    /// Short name for logs and the TUI (`binance`, `binance-testnet`, `paper`).
    fn name(&self) -> &str;
    /// Exchange clock in ms UTC.
    fn server_time(&self) -> impl Future<Output = Result<TimestampMs, ExchangeError>> + Send;
    fn symbol_filters(
        &self,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<SymbolFilters, ExchangeError>> + Send;
    fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_time: Option<TimestampMs>,
        limit: u16,
    ) -> impl Future<Output = Result<Vec<Candle>, ExchangeError>> + Send;
    fn ticker_price(
        &self,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<Price, ExchangeError>> + Send;
    fn ticker_24h(
        &self,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<Ticker24h, ExchangeError>> + Send;
    fn order_book(
        &self,
        symbol: &Symbol,
        limit: u16,
    ) -> impl Future<Output = Result<OrderBook, ExchangeError>> + Send;
    fn balances(&self) -> impl Future<Output = Result<Vec<Balance>, ExchangeError>> + Send;
    /// Send one order. A timeout, dropped connection or 5xx is `ExchangeError::StatusUnknown`:
    /// the order may exist. Use `OrderExecutor` rather than calling this directly.
    fn place_order(
        &self,
        request: &crate::domain::trading::order::OrderRequest,
    ) -> impl Future<Output = Result<Placed, ExchangeError>> + Send;
    fn place_oco(
        &self,
        request: &OcoRequest,
    ) -> impl Future<Output = Result<OrderList, ExchangeError>> + Send;
    /// The order with this client order id, or `ExchangeError::UnknownOrder`.
    fn query_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> impl Future<Output = Result<Order, ExchangeError>> + Send;
    fn cancel_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> impl Future<Output = Result<Order, ExchangeError>> + Send;
    fn open_orders(
        &self,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<Vec<Order>, ExchangeError>> + Send;
    fn my_trades(
        &self,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<Vec<Fill>, ExchangeError>> + Send;
}

/// The balance of `asset`, zero when the exchange does not list it.
pub fn balance_of(balances: &[Balance], asset: &str) -> Balance {
    balances
        .iter()
        .find(|b| b.asset == asset)
        .cloned()
        .unwrap_or(Balance {
            asset: asset.to_string(),
            free: Decimal::ZERO,
            locked: Decimal::ZERO,
        })
}
