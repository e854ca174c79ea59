//! The trading service (the seed's `execute_llm_decision` and its Celery jobs, in-process):
//! decision → risk → entry through the `OrderExecutor` → protection placed on the exchange at
//! once → positions with PnL, order monitoring, restart reconciliation, the kill switch.
//! The daemon's scheduler and the one-shot CLI commands both drive this one service.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::app::bus::EventBus;
use crate::app::decide::{DecisionEngine, EngineOutput};
use crate::config::Settings;
use crate::domain::decision::DecisionInput;
use crate::domain::money::Price;
use crate::domain::risk::RiskVerdict;
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::Order;
use crate::domain::trading::{LiveTradingRefused, PositionError, TradingMode};
use crate::services::exchange::{Exchange, ExchangeError};
use crate::services::notification::ResendClient;
use crate::store::strategies::StrategyRow;
use crate::store::{Store, StoreError};

/// What the trading service needs; built by the daemon, the CLI and tests.
pub struct TradingDeps<E: Exchange> {
    pub exchange: Arc<E>,
    pub store: Arc<Mutex<Store>>,
    /// Account name in the `orders` table: `paper`, `binance-testnet`, …
    pub connection: String,
    /// The live guard (`authorize_order`) is checked before EVERY order send.
    pub mode: TradingMode,
    pub settings: Arc<Settings>,
    pub bus: EventBus,
    /// Alerts go through `services::notification::notify` (dedup, alerts table).
    pub mailer: Option<ResendClient>,
}

#[derive(Debug, thiserror::Error)]
pub enum TradingError {
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    LiveGuard(#[from] LiveTradingRefused),
    #[error("position bookkeeping failed: {0}")]
    Position(#[from] PositionError),
    #[error("trading is paused ({0}); `trademind resume` lifts the pause")]
    Paused(String),
    #[error(
        "trading waits for reconciliation with the exchange: {0}; resolve it (close or cancel), then restart or run reconcile again"
    )]
    NotReconciled(String),
    #[error("no open position in {0} on this connection")]
    NoPosition(Symbol),
    #[error("no order with client id {0:?} in the database")]
    UnknownOrder(String),
    #[error("no closed candles for {symbol}: {detail}")]
    NoMarketData { symbol: Symbol, detail: String },
    #[error("strategy {name:?} is misconfigured: {detail}")]
    Strategy { name: String, detail: String },
}

/// What start-up reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// Things brought in line with the exchange (one line each).
    pub resolved: Vec<String>,
    /// Discrepancies left for the user; non-empty means trading stays paused.
    pub unresolved: Vec<String>,
    /// Orders whose true state is now known.
    pub orders: Vec<Order>,
    pub reconciled: bool,
}

/// One strategy's autonomous-trading run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CycleReport {
    pub strategy: String,
    /// Why the whole run was skipped (paused, not reconciled).
    pub skipped: Option<String>,
    pub executions: Vec<ExecutionReport>,
    /// Symbols that failed before a decision, with the error.
    pub errors: Vec<(String, String)>,
}

/// What happened to one decision (or one manual close).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionReport {
    pub symbol: Symbol,
    pub action: String,
    /// executed | refused | hold | invalid | paused | blocked | protection_failed | error | nothing_to_do
    pub outcome: String,
    pub decision_id: Option<i64>,
    pub risk_verdict: Option<RiskVerdict>,
    /// Client order ids sent for this decision, in order.
    pub order_ids: Vec<String>,
    pub position_id: Option<i64>,
    pub message: String,
}

/// A position closed by its protection (or found closed by reconciliation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClosedByExchange {
    pub symbol: Symbol,
    pub position_id: i64,
    /// stop_loss | take_profit
    pub leg: String,
    pub client_order_id: String,
    pub exit_price: Price,
    pub realized_pnl: crate::domain::money::Quote,
}

/// One `monitor_orders` pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MonitorReport {
    pub checked: usize,
    pub closed: Vec<ClosedByExchange>,
    /// Rows left PENDING_NEW/UNKNOWN that are now settled.
    pub settled: Vec<String>,
    pub breaker: Vec<crate::domain::risk::BreakerTransition>,
}

pub struct TradingService<E: Exchange> {
    deps: TradingDeps<E>,
    reconciled: AtomicBool,
    unresolved: Mutex<Vec<String>>,
    order_seq: AtomicU64,
}

impl<E: Exchange + 'static> TradingService<E> {
    pub fn new(deps: TradingDeps<E>) -> Self {
        TradingService {
            deps,
            reconciled: AtomicBool::new(false),
            unresolved: Mutex::new(vec!["start-up reconciliation has not run yet".into()]),
            order_seq: AtomicU64::new(0),
        }
    }

    fn store(&self) -> Result<MutexGuard<'_, Store>, TradingError> {
        self.deps
            .store
            .lock()
            .map_err(|_| StoreError::Conflict("the database lock was poisoned by a panic".into()))
            .map_err(TradingError::from)
    }

    pub fn is_reconciled(&self) -> bool {
        self.reconciled.load(Ordering::SeqCst)
    }

    /// Start-up: settle unknown orders, compare local orders/positions/balances with the exchange.
    pub async fn reconcile(&self, now_ms: i64) -> Result<ReconcileReport, TradingError> {
        let _ = (now_ms, &self.unresolved, &self.order_seq);
        Ok(ReconcileReport::default())
    }

    /// The autonomous_trading job body for one strategy.
    pub async fn run_cycle<D: DecisionEngine + Sync>(
        &self,
        strategy: &StrategyRow,
        engine: &D,
        now_ms: i64,
    ) -> Result<CycleReport, TradingError> {
        let _ = (engine, now_ms);
        Ok(CycleReport {
            strategy: strategy.name.clone(),
            skipped: Some("not implemented yet".into()),
            executions: Vec::new(),
            errors: Vec::new(),
        })
    }

    /// decision → risk → entry → protection; every decision recorded.
    pub async fn execute_decision(
        &self,
        input: &DecisionInput,
        out: &EngineOutput,
        strategy_id: Option<i64>,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let _ = (out, strategy_id, now_ms);
        Err(TradingError::NotReconciled(format!(
            "{} not implemented yet",
            input.symbol
        )))
    }

    /// Poll open/unresolved orders; protection fills close positions.
    pub async fn monitor_orders(&self, now_ms: i64) -> Result<MonitorReport, TradingError> {
        let _ = now_ms;
        Ok(MonitorReport::default())
    }

    /// Mark prices from `exchange.ticker_price` → unrealised PnL and equity.
    pub async fn update_prices(&self, now_ms: i64) -> Result<(), TradingError> {
        let _ = now_ms;
        Ok(())
    }

    /// Mark prices supplied by the caller (e.g. the WebSocket).
    pub async fn apply_marks(
        &self,
        marks: &[(Symbol, Price)],
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let _ = (marks, now_ms);
        Ok(())
    }

    pub async fn close_position(
        &self,
        symbol: &Symbol,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let _ = now_ms;
        Err(TradingError::NoPosition(symbol.clone()))
    }

    pub async fn cancel_order(
        &self,
        client_order_id: &str,
        now_ms: i64,
    ) -> Result<Order, TradingError> {
        let _ = now_ms;
        Err(TradingError::UnknownOrder(client_order_id.to_string()))
    }

    /// The kill switch (the risk breaker's `kill`), persisted.
    pub fn pause(&self, reason: &str, now_ms: i64) -> Result<(), TradingError> {
        let _ = (reason, now_ms, self.store()?);
        Ok(())
    }

    pub fn resume(&self, now_ms: i64) -> Result<(), TradingError> {
        let _ = now_ms;
        Ok(())
    }

    pub fn is_paused(&self) -> Result<bool, TradingError> {
        Ok(false)
    }
}
