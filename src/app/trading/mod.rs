//! The trading service (the seed's `execute_llm_decision` and its Celery jobs, in-process):
//! decision → risk → a pure `Plan` → entry through the `OrderExecutor` → the fill booked and
//! protected on the exchange by one idempotent step, positions with PnL, order monitoring,
//! restart reconciliation, the kill switch. The daemon's scheduler, the TUI's controls and the
//! one-shot CLI commands all drive this one service, one step per (connection, symbol) at a time
//! (`lock`).
//!
//! - `entry`: a decision carried out (run_cycle, execute_decision, the market entry).
//! - `resting_entry`: a limit or post-only entry while it rests (followed, timed out).
//! - `settle`: the one step that books every fill of an entry and protects the position,
//!   wherever the fill is learnt of.
//! - `exit`: closes, cancels, protection taken down.
//! - `monitor`: protection legs followed (REST monitor and user-data stream).
//! - `reconcile`: start-up reconciliation.
//! - `protect`: a position whose protection a person cancelled, protected again on request.
//! - `account`: equity, the risk context, marks and the circuit breaker.

mod account;
mod book_breaker;
mod entry;
mod exit;
mod lock;
mod monitor;
mod protect;
mod reconcile;
mod resting_entry;
mod settle;

use crate::domain::trading::order::OrderPurpose;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::app::bus::{Event, EventBus};
use crate::config::Settings;
use crate::domain::money::Price;
use crate::domain::risk::RiskVerdict;
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{Order, client_order_id};
use crate::domain::trading::{
    LiveTradingRefused, Position, PositionError, TradingMode, authorize_order,
};
use crate::services::exchange::executor::OrderExecutor;
use crate::services::exchange::{Exchange, ExchangeError};
use crate::services::market_stream::user_data::ExecutionError;
use crate::services::notification::{
    Alert, AlertChannels, AlertKind, AlertOutcome, ResendClient, dispatch,
};
use crate::store::risk::{self as risk_store, GLOBAL_SCOPE, ManualStop};
use crate::store::{Store, StoreError};

pub use crate::domain::trading::plan::{ExecutionOutcome, intent_for};
pub use account::{account_equity, book_stop_exits, build_risk_context, quote_currency};
pub use lock::LockError;

const DAY_MS: i64 = 86_400_000;
/// How old the balances behind a mark-driven equity figure may be.
const BALANCES_MAX_AGE_MS: i64 = 30_000;
/// Candles fetched per decision (enough for MACD and the next interval up).
const CANDLES: u16 = 500;

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
    #[error(
        "several books hold {symbol} ({books}): name one with `--strategy NAME` (`default` for the default book)"
    )]
    SeveralBooks { symbol: Symbol, books: String },
    #[error("no order with client id {0:?} in the database")]
    UnknownOrder(String),
    #[error("no closed candles for {symbol}: {detail}")]
    NoMarketData { symbol: Symbol, detail: String },
    #[error("the configuration cannot be traded: {0}")]
    Config(String),
    #[error("strategy {name:?} is misconfigured: {detail}")]
    Strategy { name: String, detail: String },
    #[error(transparent)]
    StreamExecution(#[from] ExecutionError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A strategy's decision reached a service on another connection (issue #19): refused
    /// before any exchange traffic.
    #[error(
        "strategy {strategy:?} trades on connection {own:?}, not on {service:?}: nothing was sent"
    )]
    NotTheStrategysConnection {
        strategy: String,
        own: String,
        service: String,
    },
    /// An earlier step's fill is not booked and protected yet; no new entry until it is.
    #[error("{symbol} is blocked until an earlier fill is booked and protected: {detail}")]
    Unsettled { symbol: Symbol, detail: String },
}

/// What start-up reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// Things brought in line with the exchange (one line each).
    pub resolved: Vec<String>,
    /// Discrepancies left for the user; non-empty means trading stays paused.
    pub unresolved: Vec<String>,
    /// Base assets held beyond the sum of every book's positions: no strategy sells them.
    pub unmanaged: Vec<crate::store::positions::UnmanagedHolding>,
    /// Open positions that are wholly dust the exchange will not sell (one line each): nothing
    /// protects them and nothing needs to; they never pause trading.
    pub dust: Vec<String>,
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
    pub outcome: ExecutionOutcome,
    pub decision_id: Option<i64>,
    pub risk_verdict: Option<RiskVerdict>,
    /// Client order ids sent for this decision, in order.
    pub order_ids: Vec<String>,
    pub position_id: Option<i64>,
    pub message: String,
}

impl ExecutionReport {
    /// A report for `action` on `symbol` with nothing done yet.
    pub fn new(symbol: &Symbol, action: impl Into<String>) -> Self {
        ExecutionReport {
            symbol: symbol.clone(),
            action: action.into(),
            outcome: ExecutionOutcome::default(),
            decision_id: None,
            risk_verdict: None,
            order_ids: Vec::new(),
            position_id: None,
            message: String::new(),
        }
    }
}

/// A position closed by its protection (or found closed by reconciliation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClosedByExchange {
    pub symbol: Symbol,
    pub position_id: i64,
    pub leg: ProtectionLeg,
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
/// Which protective order closed a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionLeg {
    StopLoss,
    TakeProfit,
}

impl ProtectionLeg {
    /// The leg an order row's purpose names, if it is one.
    pub fn of_purpose(purpose: OrderPurpose) -> Option<ProtectionLeg> {
        match purpose {
            OrderPurpose::StopLoss => Some(ProtectionLeg::StopLoss),
            OrderPurpose::TakeProfit => Some(ProtectionLeg::TakeProfit),
            OrderPurpose::Entry | OrderPurpose::Exit => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProtectionLeg::StopLoss => "stop_loss",
            ProtectionLeg::TakeProfit => "take_profit",
        }
    }
}

impl std::fmt::Display for ProtectionLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn lock_store(store: &Mutex<Store>) -> Result<MutexGuard<'_, Store>, TradingError> {
    store
        .lock()
        .map_err(|_| StoreError::Conflict("the database lock was poisoned by a panic".into()))
        .map_err(TradingError::from)
}

fn day_start(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS) * DAY_MS
}

pub struct TradingService<E: Exchange> {
    deps: TradingDeps<E>,
    executor: OrderExecutor<E>,
    reconciled: AtomicBool,
    unresolved: Mutex<Vec<String>>,
    order_seq: AtomicU64,
    /// Per-process tag in client ids, so a CLI run and the daemon never mint the same id.
    process_tag: u16,
    /// The last balances fetched and when (ms), for equity from frequent marks.
    balances: Mutex<Option<(i64, Vec<crate::services::exchange::Balance>)>>,
    /// Alert channels beyond the notification config's (the Telegram chats).
    extra_channels: Vec<Arc<dyn crate::services::notification::AlertChannel>>,
}

impl<E: Exchange + 'static> TradingService<E> {
    pub fn new(deps: TradingDeps<E>) -> Self {
        // "Not found" is final only once the request is past its recvWindow.
        let executor_config = deps
            .settings
            .exchange
            .executor
            .clone()
            .for_recv_window(deps.settings.exchange.binance.recv_window_ms);
        let executor = OrderExecutor::new(
            deps.exchange.clone(),
            deps.store.clone(),
            &deps.connection,
            executor_config,
        );
        TradingService {
            deps,
            executor,
            reconciled: AtomicBool::new(false),
            unresolved: Mutex::new(vec!["start-up reconciliation has not run yet".into()]),
            order_seq: AtomicU64::new(0),
            process_tag: rand::random::<u16>(),
            balances: Mutex::new(None),
            extra_channels: Vec::new(),
        }
    }

    /// Alerts go out on `channel` too (deduplicated per channel like the others).
    pub fn with_alert_channel(
        mut self,
        channel: Arc<dyn crate::services::notification::AlertChannel>,
    ) -> Self {
        self.extra_channels.push(channel);
        self
    }

    fn store(&self) -> Result<MutexGuard<'_, Store>, TradingError> {
        lock_store(&self.deps.store)
    }

    /// Take the trading lock of `symbol` on this connection (see `lock`). Every public step
    /// that reads the state it then acts on holds it; the private steps assume it is held.
    async fn lock_symbol(&self, symbol: &Symbol) -> Result<lock::SymbolGuard, TradingError> {
        let path = self.store()?.path().map(std::path::Path::to_path_buf);
        let memory_id = Arc::as_ptr(&self.deps.store) as usize;
        Ok(lock::lock_symbol(path.as_deref(), memory_id, &self.deps.connection, symbol).await?)
    }
    pub fn exchange(&self) -> &Arc<E> {
        &self.deps.exchange
    }

    pub fn connection(&self) -> &str {
        &self.deps.connection
    }

    /// The mode the live guard checks before every order.
    pub fn mode(&self) -> TradingMode {
        self.deps.mode
    }

    fn publish(&self, event: Event) {
        self.deps.bus.publish(event);
    }

    /// Whether start-up reconciliation has run and left nothing unresolved.
    pub fn is_reconciled(&self) -> bool {
        self.reconciled.load(Ordering::SeqCst)
    }

    /// What keeps trading paused after reconciliation (empty once reconciled).
    pub fn unresolved(&self) -> Vec<String> {
        self.unresolved
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    fn next_cid(&self, purpose: &str, now_ms: i64) -> String {
        let seq = self.order_seq.fetch_add(1, Ordering::SeqCst);
        client_order_id(
            purpose,
            &format!("{now_ms:x}{:04x}{seq:x}", self.process_tag),
        )
    }

    /// The live-trading guard, asked before every order that leaves.
    fn guard(&self) -> Result<(), TradingError> {
        let confirmation = {
            let db = self.store()?;
            crate::store::live_confirmations::get(db.conn(), &self.deps.connection)?
        };
        authorize_order(
            self.deps.mode,
            &self.deps.connection,
            self.deps.settings.trading.live,
            confirmation.as_ref(),
        )?;
        Ok(())
    }

    /// Send an alert; a failure to alert is logged, never fatal to the trading flow.
    async fn alert(
        &self,
        kind: AlertKind,
        dedup_key: String,
        subject: String,
        body: String,
        now_ms: i64,
    ) {
        // Every alert ends with the account as the faces show it (`store::account`), so a
        // mail never tells a different story from the TUI or `status`.
        let body = match self.account_summary(now_ms) {
            Ok(summary) => format!("{body}\n\n{summary}"),
            Err(e) => {
                tracing::warn!(error = %e, "account summary for an alert could not be read");
                body
            }
        };
        let alert = Alert {
            kind,
            dedup_key,
            subject,
            body,
        };
        if let Err(e) = self.send_alert(&alert, now_ms).await {
            tracing::warn!(error = %e, subject = %alert.subject, "alert could not be recorded");
        }
    }

    /// Send `alert` as it is on every configured channel (e-mail, webhooks, the Telegram
    /// chats), each at most once per alert (see `notification::dispatch`).
    pub async fn send_alert(
        &self,
        alert: &Alert,
        now_ms: i64,
    ) -> crate::store::StoreResult<AlertOutcome> {
        // Every configured channel (e-mail, webhooks), each at most once per alert.
        let cfg = &self.deps.settings.notifications;
        let mut channels = match AlertChannels::from_config(cfg, self.deps.mailer.as_ref()) {
            Ok(channels) => channels,
            Err(e) => {
                tracing::warn!(error = %e, "webhook alerts are off");
                AlertChannels::from_config(
                    &crate::services::notification::NotificationConfig {
                        webhooks: Vec::new(),
                        ..cfg.clone()
                    },
                    self.deps.mailer.as_ref(),
                )
                .unwrap_or_default()
            }
        };
        for extra in &self.extra_channels {
            channels.push(extra.clone());
        }
        Ok(dispatch(&self.deps.store, &channels, cfg, alert, now_ms)
            .await?
            .0)
    }

    /// A paper account's starting cash (what `store::account` shows as its equity until the
    /// engine writes a snapshot, as the TUI and `status` do); `None` on an exchange.
    pub(super) fn paper_starting_balance(&self) -> Option<crate::domain::money::Quote> {
        match self.deps.mode {
            TradingMode::Paper => self
                .deps
                .settings
                .trading
                .paper_starting_balance
                .parse()
                .ok(),
            _ => None,
        }
    }

    /// The account read model's one-line summary as of `now_ms` on the run's clock.
    fn account_summary(&self, now_ms: i64) -> Result<String, TradingError> {
        Ok(self.account_view(now_ms)?.summary())
    }

    /// This connection's account as `status` and the TUI read it (`store::account`), its day
    /// starting at 00:00 UTC of `now_ms`.
    pub fn account_view(
        &self,
        now_ms: i64,
    ) -> Result<crate::store::account::AccountView, TradingError> {
        let paper_starting_balance = match self.deps.mode {
            TradingMode::Paper => self
                .deps
                .settings
                .trading
                .paper_starting_balance
                .parse()
                .ok(),
            _ => None,
        };
        let unresolved = self.unresolved();
        let db = self.store()?;
        let view = crate::store::account::load(
            db.conn(),
            &crate::store::account::AccountQuery {
                connection: &self.deps.connection,
                now_ms,
                day_start_ms: day_start(now_ms),
                paper_starting_balance,
                unresolved,
            },
        )?;
        Ok(view)
    }

    fn publish_position(&self, p: &Position) {
        self.publish(Event::PositionChanged {
            symbol: p.symbol.clone(),
            quantity: p.quantity,
            realized_pnl: p.realized_pnl,
        });
    }

    /// Any order that changed may have moved balances: the next equity asks the exchange.
    fn forget_balances(&self) {
        if let Ok(mut cached) = self.balances.lock() {
            *cached = None;
        }
    }

    fn publish_order(&self, o: &Order) {
        self.forget_balances();
        self.publish(Event::OrderUpdated {
            client_order_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            status: o.status,
        });
    }
}

impl<E: Exchange + 'static> TradingService<E> {
    /// Pause trading (no new entries until resumed), persisted so every process sees it.
    pub fn pause(&self, reason: &str, now_ms: i64) -> Result<(), TradingError> {
        self.stop(ManualStop::Pause, reason, now_ms)
    }

    /// The kill switch: the risk breaker's `kill`, persisted, so every process sees it.
    pub fn kill(&self, reason: &str, now_ms: i64) -> Result<(), TradingError> {
        self.stop(ManualStop::Kill, reason, now_ms)
    }

    fn stop(&self, stop: ManualStop, reason: &str, now_ms: i64) -> Result<(), TradingError> {
        let t = {
            let db = self.store()?;
            let (config, _) = risk_store::load_config(db.conn(), None, &self.deps.settings.risk)?;
            risk_store::stop_trading(db.conn(), &config, stop, "operator", reason, now_ms)?
        };
        tracing::warn!(%reason, ?stop, "trading stopped");
        self.publish(Event::BreakerChanged {
            scope: GLOBAL_SCOPE.into(),
            state: t.to,
            reason: format!("{}: {reason}", t.reason),
        });
        Ok(())
    }

    /// Lift a pause or the kill switch (a manual breaker reset).
    pub fn resume(&self, now_ms: i64) -> Result<(), TradingError> {
        let t = {
            let db = self.store()?;
            risk_store::resume_trading(db.conn(), "operator", now_ms)?
        };
        if let Some(t) = t {
            self.publish(Event::BreakerChanged {
                scope: GLOBAL_SCOPE.into(),
                state: t.to,
                reason: t.reason.to_string(),
            });
        }
        Ok(())
    }

    pub fn is_paused(&self) -> Result<bool, TradingError> {
        let db = self.store()?;
        Ok(is_paused_store(db.conn())?)
    }
}
impl TradingService<crate::services::exchange::any::AnyExchange> {
    /// Give the paper exchange a price (it has no market feed of its own in one-shot commands);
    /// a no-op on Binance.
    pub fn seed_paper_price(&self, symbol: &Symbol, price: Price) -> Result<(), TradingError> {
        if let crate::services::exchange::any::AnyExchange::Paper(p) = self.deps.exchange.as_ref() {
            p.on_price(symbol, price)?;
        }
        Ok(())
    }
}

/// Paused = an operator stopped trading (pause or kill switch; a breaker tripped by a loss
/// rule is not a pause: it still lets closes through and recovers by itself).
pub fn is_paused_store(conn: &rusqlite::Connection) -> Result<bool, StoreError> {
    risk_store::is_manually_stopped(conn)
}

#[cfg(test)]
mod tests;
