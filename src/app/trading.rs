//! The trading service (the seed's `execute_llm_decision` and its Celery jobs, in-process):
//! decision → risk → entry through the `OrderExecutor` → protection placed on the exchange at
//! once → positions with PnL, order monitoring, restart reconciliation, the kill switch.
//! The daemon's scheduler and the one-shot CLI commands both drive this one service.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::Serialize;

use crate::app::bus::{Event, EventBus};
use crate::app::decide::{DecisionEngine, EngineOutput, record};
use crate::config::Settings;
use crate::domain::decision::{Action, DecisionInput, TradingDecision, level_price};
use crate::domain::market::candle::Interval;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::{
    BreakerInputs, BreakerReason, BreakerTransition, IntentKind, MarketSnapshot, OpenPosition,
    RiskContext, RiskManagementService, RiskVerdict, TradeIntent, daily_loss_pct, drawdown_pct,
};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{
    Fill, Order, OrderRequest, OrderStatus, OrderType, Side, client_order_id,
};
use crate::domain::trading::{
    LiveTradingRefused, Position, PositionError, PositionFill, PositionService, PositionSide,
    SymbolFilters, TradingMode, authorize_order,
};
use crate::services::exchange::executor::OrderExecutor;
use crate::services::exchange::{Exchange, ExchangeError, OcoRequest, balance_of};
use crate::services::market_stream::user_data::{
    ExecutionError, ExecutionReport as StreamExecution, OrderOutcome, apply_execution_report,
};
use crate::services::notification::{Alert, AlertKind, ResendClient, notify};
use crate::store::orders::{self, OrderLinks, StoredOrder};
use crate::store::positions::{self, PositionRow};
use crate::store::risk::{self as risk_store, GLOBAL_SCOPE, ManualStop};
use crate::store::strategies::StrategyRow;
use crate::store::{Store, StoreError, decisions as recorder, equity as equity_store};

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

impl ExecutionReport {
    /// A report for `action` on `symbol` with nothing done yet.
    pub fn new(symbol: &Symbol, action: impl Into<String>) -> Self {
        ExecutionReport {
            symbol: symbol.clone(),
            action: action.into(),
            outcome: String::new(),
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

fn lock_store(store: &Mutex<Store>) -> Result<MutexGuard<'_, Store>, TradingError> {
    store
        .lock()
        .map_err(|_| StoreError::Conflict("the database lock was poisoned by a panic".into()))
        .map_err(TradingError::from)
}

fn day_start(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS) * DAY_MS
}

/// The currency a connection's equity is measured in: the quote asset (as the exchange's
/// filters name it) of the first of `trading.symbols`. One currency per connection, whatever
/// symbol is being decided or which position happens to be open, so start-of-day, peak and
/// drawdown compare like with like. Symbols quoted in another asset are not converted.
pub async fn quote_currency<E: Exchange>(
    exchange: &E,
    settings: &Settings,
) -> Result<String, TradingError> {
    let first = settings.trading.symbols.first().ok_or_else(|| {
        TradingError::Config("trading.symbols is empty: list at least one symbol".into())
    })?;
    let symbol =
        Symbol::new(first).map_err(|e| TradingError::Config(format!("trading.symbols: {e}")))?;
    Ok(exchange.symbol_filters(&symbol).await?.quote_asset)
}

/// Equity in `currency`: that balance (free and locked) plus the open positions at their
/// marks (`marks` first, else the stored mark, else the entry); returns (equity, unrealised
/// PnL). The risk context and the equity series both come from here.
pub fn account_equity(
    balances: &[crate::services::exchange::Balance],
    currency: &str,
    open: &[PositionRow],
    marks: &[(Symbol, Price)],
) -> (Quote, Quote) {
    let mut equity = Quote(balance_of(balances, currency).total());
    let mut unrealised = Quote::ZERO;
    for row in open {
        let p = &row.position;
        let mark = marks
            .iter()
            .find(|(s, _)| s == &p.symbol)
            .map(|(_, m)| *m)
            .or(row.mark_price)
            .unwrap_or(p.entry_price);
        equity += PositionService::market_value(p, mark);
        unrealised += PositionService::unrealized_pnl(p, mark);
    }
    (equity, unrealised)
}

/// The risk layer's view of the account for one symbol: the connection's equity
/// (`account_equity`, the traded symbol marked at its ticker price), open positions,
/// today's PnL, start-of-day and peak equity, closed trades, the limits and the breaker.
/// `execute_decision` and `trademind decide` both build their context here.
#[allow(clippy::too_many_arguments)]
pub async fn build_risk_context<E: Exchange>(
    exchange: &E,
    store: &Mutex<Store>,
    settings: &Settings,
    connection: &str,
    symbol: &Symbol,
    strategy: Option<&str>,
    atr: Option<f64>,
    now_ms: i64,
) -> Result<RiskContext, TradingError> {
    let filters = exchange.symbol_filters(symbol).await?;
    let price = exchange.ticker_price(symbol).await?;
    let balances = exchange.balances().await?;
    let currency = quote_currency(exchange, settings).await?;
    let db = lock_store(store)?;
    let c = db.conn();
    let rows = positions::open_for_connection(c, connection)?;
    let open = rows
        .iter()
        .map(|row| OpenPosition {
            symbol: row.position.symbol.clone(),
            quantity: row.position.quantity,
            entry: row.position.entry_price,
            stop: row.position.stop_loss,
        })
        .collect();
    let (equity, unrealised) =
        account_equity(&balances, &currency, &rows, &[(symbol.clone(), price)]);
    let start_of_day =
        equity_store::start_of_day(c, connection, day_start(now_ms))?.unwrap_or(equity);
    let peak = equity_store::peak(c, connection)?.map_or(equity, |(p, _)| p.max(equity));
    let config = match risk_store::load_config(c, strategy, &settings.risk) {
        Ok((config, _)) => config,
        // A strategy without its own row in the database trades on the default limits.
        Err(StoreError::NotFound(_)) => risk_store::load_config(c, None, &settings.risk)?.0,
        Err(e) => return Err(e.into()),
    };
    Ok(RiskContext {
        equity,
        // What pays for an order is the traded symbol's own quote balance.
        available_balance: Quote(balance_of(&balances, &filters.quote_asset).free),
        open_positions: open,
        realised_pnl_today: positions::realized_since(c, connection, day_start(now_ms))?,
        unrealised_pnl: unrealised,
        start_of_day_equity: start_of_day,
        peak_equity: peak,
        closed_trades: positions::closed_trades(c, connection)?,
        config,
        market: MarketSnapshot {
            price,
            atr: atr.and_then(Decimal::from_f64).map(Price),
            filters,
        },
        breaker: risk_store::load_breaker(c, GLOBAL_SCOPE)?.state,
    })
}

/// The risk intent a decision asks for, given the open position (if any); `None` when the
/// decision asks for nothing the account can do (HOLD, a SELL with no long open: shorts are
/// not traded). Percent levels are measured from the snapshot's price.
pub fn intent_for(
    decision: &TradingDecision,
    input: &DecisionInput,
    market_price: Price,
    position: Option<&Position>,
    strategy: Option<String>,
) -> Option<TradeIntent> {
    let confidence = Decimal::from_f64(decision.confidence).unwrap_or(Decimal::ZERO);
    let reference = input.price.get();
    match decision.action {
        Action::Buy => Some(TradeIntent {
            symbol: input.symbol.clone(),
            side: Side::Buy,
            kind: IntentKind::Entry,
            confidence,
            size_pct: Decimal::from_f64(decision.position_size_pct),
            entry: market_price,
            stop_loss: decision
                .stop_loss
                .and_then(|l| level_price(l, reference, true))
                .map(Price),
            take_profit: decision
                .take_profit
                .and_then(|l| level_price(l, reference, false))
                .map(Price),
            quantity: None,
            strategy,
        }),
        Action::Sell | Action::Close => {
            let p = position.filter(|p| p.side == PositionSide::Long)?;
            Some(TradeIntent {
                symbol: input.symbol.clone(),
                side: Side::Sell,
                kind: IntentKind::Close,
                confidence,
                size_pct: None,
                entry: market_price,
                stop_loss: None,
                take_profit: None,
                quantity: Some(p.quantity),
                strategy,
            })
        }
        Action::Hold => None,
    }
}

/// A fill as the position sees it: a fee charged in the base asset shrinks the quantity held
/// and is valued at the fill price; a fee in another asset (BNB) is not booked in quote.
fn position_fill(fill: &Fill, filters: &SymbolFilters) -> PositionFill {
    let (position_fill, third_asset) =
        PositionFill::from_fill(fill, &filters.base_asset, &filters.quote_asset);
    if third_asset {
        tracing::warn!(asset = %fill.fee_asset, "fee paid in a third asset is not booked in PnL");
    }
    position_fill
}

/// Apply closing fills; a remainder below one lot step (fee dust the exchange will not sell)
/// is closed at the last fill's price so the position does not linger.
fn book_exit(
    position: &mut Position,
    fills: &[PositionFill],
    filters: &SymbolFilters,
) -> Result<Quote, TradingError> {
    let mut realised = Quote::ZERO;
    let mut last_price = None;
    for f in fills {
        if position.closed_at.is_some() {
            break;
        }
        let mut f = f.clone();
        f.quantity = f.quantity.min(position.quantity);
        if !f.quantity.is_positive() {
            continue;
        }
        last_price = Some((f.price, f.time));
        realised += match PositionService::apply(position, &f)? {
            crate::domain::trading::FillEffect::Reduced { realized }
            | crate::domain::trading::FillEffect::Closed { realized } => realized,
            _ => Quote::ZERO,
        };
    }
    if position.closed_at.is_none()
        && filters.round_qty_down(position.quantity).is_zero()
        && let Some((price, time)) = last_price
    {
        let dust = PositionFill {
            symbol: position.symbol.clone(),
            side: position.side.opening_side().opposite(),
            price,
            quantity: position.quantity,
            fee: Quote::ZERO,
            time,
        };
        if let crate::domain::trading::FillEffect::Closed { realized } =
            PositionService::apply(position, &dust)?
        {
            realised += realized;
        }
    }
    Ok(realised)
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
    /// Held while protection fills are booked, by the REST monitor or the user-data stream,
    /// so the two never book the same fill at once.
    booking: tokio::sync::Mutex<()>,
}

impl<E: Exchange + 'static> TradingService<E> {
    pub fn new(deps: TradingDeps<E>) -> Self {
        let executor = OrderExecutor::new(
            deps.exchange.clone(),
            deps.store.clone(),
            &deps.connection,
            deps.settings.exchange.executor.clone(),
        );
        TradingService {
            deps,
            executor,
            reconciled: AtomicBool::new(false),
            unresolved: Mutex::new(vec!["start-up reconciliation has not run yet".into()]),
            order_seq: AtomicU64::new(0),
            process_tag: rand::random::<u16>(),
            balances: Mutex::new(None),
            booking: tokio::sync::Mutex::new(()),
        }
    }

    fn store(&self) -> Result<MutexGuard<'_, Store>, TradingError> {
        lock_store(&self.deps.store)
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
        let alert = Alert {
            kind,
            dedup_key,
            subject,
            body,
        };
        if let Err(e) = notify(
            &self.deps.store,
            self.deps.mailer.as_ref(),
            &self.deps.settings.notifications,
            &alert,
            now_ms,
        )
        .await
        {
            tracing::warn!(error = %e, subject = %alert.subject, "alert could not be recorded");
        }
    }

    fn publish_position(&self, p: &Position) {
        self.publish(Event::PositionChanged {
            symbol: p.symbol.clone(),
            quantity: p.quantity.to_string(),
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
            status: o.status.to_string(),
        });
    }

    /// The fills of an order: those the placement returned, else the exchange's trade list.
    /// An exchange that reports a fill but no trades gets one synthetic fill at the average
    /// price, fee unknown (zero).
    async fn fills_of(&self, order: &Order, given: Vec<Fill>) -> Result<Vec<Fill>, TradingError> {
        if !given.is_empty() || order.filled_quantity.is_zero() {
            return Ok(given);
        }
        let mine: Vec<Fill> = self
            .deps
            .exchange
            .my_trades(&order.symbol)
            .await?
            .into_iter()
            .filter(|f| {
                // `myTrades` names the exchange order id only (`order:<id>`).
                f.client_order_id == order.client_order_id
                    || order
                        .exchange_order_id
                        .as_ref()
                        .is_some_and(|id| f.client_order_id == format!("order:{id}"))
            })
            .map(|mut f| {
                f.client_order_id.clone_from(&order.client_order_id);
                f
            })
            .collect();
        if !mine.is_empty() {
            return Ok(mine);
        }
        Ok(order
            .average_fill_price()
            .map(|price| Fill {
                client_order_id: order.client_order_id.clone(),
                trade_id: None,
                symbol: order.symbol.clone(),
                side: order.side,
                price,
                quantity: order.filled_quantity,
                fee: Quote::ZERO,
                fee_asset: String::new(),
                is_maker: false,
                time: order.updated_at,
            })
            .into_iter()
            .collect())
    }

    fn store_fills(
        &self,
        client_order_id: &str,
        fills: &[Fill],
    ) -> Result<Option<i64>, TradingError> {
        let db = self.store()?;
        let Some(row) = orders::get(db.conn(), client_order_id)? else {
            return Ok(None);
        };
        orders::insert_fills(db.conn(), row.id, fills)?;
        Ok(Some(row.id))
    }

    /// Book entry fills into the open position (adding) or a new one.
    fn book_entry(
        &self,
        fills: &[PositionFill],
        strategy_id: Option<i64>,
        stop: Option<Price>,
        target: Option<Price>,
        now_ms: i64,
    ) -> Result<Option<(i64, Position)>, TradingError> {
        let Some(first) = fills.first() else {
            return Ok(None);
        };
        let db = self.store()?;
        let c = db.conn();
        let existing = positions::open_position(c, &self.deps.connection, first.symbol.as_str())?;
        let (id, position) = match existing {
            Some(mut row) => {
                for f in fills {
                    PositionService::apply(&mut row.position, f)?;
                }
                row.position.stop_loss = stop.or(row.position.stop_loss);
                row.position.take_profit = target.or(row.position.take_profit);
                positions::update(c, row.id, &row.position, now_ms)?;
                (row.id, row.position)
            }
            None => {
                let mut p = PositionService::open(first, PositionSide::Long)?;
                for f in &fills[1..] {
                    PositionService::apply(&mut p, f)?;
                }
                p.stop_loss = stop;
                p.take_profit = target;
                let id = positions::insert(c, &self.deps.connection, strategy_id, &p, now_ms)?;
                (id, p)
            }
        };
        Ok(Some((id, position)))
    }

    /// Place the exchange-side protection of a position: an OCO (take-profit LIMIT_MAKER +
    /// STOP_LOSS_LIMIT) when it has a target, else a stop-limit alone. Returns the client ids.
    async fn protect(
        &self,
        position_id: i64,
        position: &Position,
        filters: &SymbolFilters,
        strategy_id: Option<i64>,
        now_ms: i64,
    ) -> Result<Vec<String>, TradingError> {
        let stop = position.stop_loss.ok_or_else(|| {
            TradingError::Exchange(ExchangeError::OrderRejected(
                "the position has no stop-loss to protect it with".into(),
            ))
        })?;
        let quantity = filters.round_qty_down(position.quantity);
        let stop_price = filters.round_price(stop);
        let offset = self.deps.settings.trading.stop_limit_offset_pct / Decimal::ONE_HUNDRED;
        let stop_limit =
            filters.round_price_down(Price(stop_price.get() * (Decimal::ONE - offset)));
        let links = OrderLinks {
            purpose: "stop_loss".into(),
            position_id: Some(position_id),
            order_list_id: None,
            strategy_id,
        };
        self.guard()?;
        match position.take_profit {
            Some(target) => {
                let request = OcoRequest {
                    list_client_order_id: self.next_cid("oco", now_ms),
                    symbol: position.symbol.clone(),
                    side: Side::Sell,
                    quantity,
                    take_profit_client_order_id: self.next_cid("tp", now_ms),
                    take_profit_price: filters.round_price(target),
                    stop_client_order_id: self.next_cid("sl", now_ms),
                    stop_price,
                    stop_limit_price: stop_limit,
                };
                let list = self.executor.place_oco(&request, &links, now_ms).await?;
                for o in &list.orders {
                    self.publish_order(o);
                }
                Ok(vec![
                    request.take_profit_client_order_id,
                    request.stop_client_order_id,
                ])
            }
            None => {
                let request = OrderRequest {
                    client_order_id: self.next_cid("sl", now_ms),
                    symbol: position.symbol.clone(),
                    side: Side::Sell,
                    order_type: OrderType::StopLossLimit,
                    quantity,
                    price: Some(stop_limit),
                    stop_price: Some(stop_price),
                    time_in_force: Some(crate::domain::trading::TimeInForce::Gtc),
                };
                let placed = self.executor.place_linked(&request, &links, now_ms).await?;
                self.publish_order(&placed.order);
                Ok(vec![request.client_order_id])
            }
        }
    }

    /// Record the decision with its outcome, verdict and orders; link the orders to it.
    fn record_decision(
        &self,
        input: &DecisionInput,
        out: &EngineOutput,
        strategy_id: Option<i64>,
        report: &mut ExecutionReport,
    ) -> Result<(), TradingError> {
        let verdict =
            recorder::DecisionRecord::of_execution(report.risk_verdict.clone(), &report.message)
                .map(|r| serde_json::to_value(r).unwrap_or_default());
        let db = self.store()?;
        let id = record(
            &db,
            input,
            out,
            strategy_id,
            &report.outcome,
            verdict,
            Some(&self.deps.bus),
        )?;
        if !report.order_ids.is_empty() {
            recorder::set_order_ids(db.conn(), id, &report.order_ids)?;
            for cid in &report.order_ids {
                orders::link(db.conn(), cid, None, Some(id))?;
            }
        }
        report.decision_id = Some(id);
        Ok(())
    }

    /// Start-up: settle unknown orders, then compare local orders, positions and balances with
    /// the exchange. What cannot be resolved keeps trading paused (and is alerted).
    pub async fn reconcile(&self, now_ms: i64) -> Result<ReconcileReport, TradingError> {
        let mut report = ReconcileReport::default();
        let before: Vec<StoredOrder> = {
            let db = self.store()?;
            orders::unresolved(db.conn(), &self.deps.connection)?
        };
        report.orders = self.executor.reconcile(now_ms).await?;
        for o in &report.orders {
            report.resolved.push(format!(
                "order {} ({} {}) is {} on the exchange",
                o.client_order_id, o.side, o.symbol, o.status
            ));
            self.publish_order(o);
        }
        for stored in &before {
            let cid = &stored.order.client_order_id;
            if !report.orders.iter().any(|o| &o.client_order_id == cid) {
                report.resolved.push(format!(
                    "order {cid} never reached the exchange: marked REJECTED"
                ));
            }
        }
        // Entries that filled while we were down (or crashed before booking).
        let unbooked = {
            let db = self.store()?;
            orders::unbooked_entries(db.conn(), &self.deps.connection)?
        };
        for stored in unbooked {
            let order = &stored.order;
            let filters = self.deps.exchange.symbol_filters(&order.symbol).await?;
            let fills = self.fills_of(order, Vec::new()).await?;
            self.store_fills(&order.client_order_id, &fills)?;
            let pfills: Vec<PositionFill> =
                fills.iter().map(|f| position_fill(f, &filters)).collect();
            if let Some((id, p)) =
                self.book_entry(&pfills, stored.strategy_id, None, None, now_ms)?
            {
                let db = self.store()?;
                orders::link(db.conn(), &order.client_order_id, Some(id), None)?;
                report.resolved.push(format!(
                    "entry {} filled while down: position in {} booked ({} at {})",
                    order.client_order_id, p.symbol, p.quantity, p.entry_price
                ));
                self.publish_position(&p);
            }
        }
        // Protection legs: filled, cancelled or lost while we were down.
        let mut monitor = MonitorReport::default();
        self.check_protection(&mut monitor, Some(&mut report), now_ms)
            .await?;
        for closed in &monitor.closed {
            report.resolved.push(format!(
                "{} of {} filled while down at {}: position closed, realised {}",
                closed.leg, closed.symbol, closed.exit_price, closed.realized_pnl
            ));
        }
        // Every open position must be protected and covered by the balance.
        let open = {
            let db = self.store()?;
            positions::open_for_connection(db.conn(), &self.deps.connection)?
        };
        let balances = self.deps.exchange.balances().await?;
        for row in &open {
            let p = &row.position;
            let protected = {
                let db = self.store()?;
                orders::of_position(db.conn(), row.id)?.iter().any(|o| {
                    o.purpose != "entry" && o.purpose != "exit" && o.order.status.is_open()
                })
            };
            if !protected {
                report.unresolved.push(format!(
                    "position in {} ({}) has no protective order on the exchange: \
                     close it (`trademind close {}`) or protect it by hand",
                    p.symbol, p.quantity, p.symbol
                ));
            }
            let filters = self.deps.exchange.symbol_filters(&p.symbol).await?;
            let held = balance_of(&balances, &filters.base_asset).total();
            if held < filters.round_qty_down(p.quantity).get() {
                report.unresolved.push(format!(
                    "the exchange holds {held} {} but the open position in {} is {}",
                    filters.base_asset, p.symbol, p.quantity
                ));
            }
        }
        report.reconciled = report.unresolved.is_empty();
        self.reconciled.store(report.reconciled, Ordering::SeqCst);
        if let Ok(mut u) = self.unresolved.lock() {
            u.clone_from(&report.unresolved);
        }
        if !report.reconciled {
            let detail = report.unresolved.join("\n");
            tracing::error!(%detail, "reconciliation left discrepancies; trading stays paused");
            self.publish(Event::HealthChanged {
                component: "reconciliation".into(),
                healthy: false,
                detail: detail.clone(),
            });
            self.alert(
                AlertKind::ReconciliationDiscrepancy,
                format!("reconciliation/{}", self.deps.connection),
                format!(
                    "TradeMind: {} discrepancy(ies) with the exchange; trading paused",
                    report.unresolved.len()
                ),
                detail,
                now_ms,
            )
            .await;
        } else {
            self.publish(Event::HealthChanged {
                component: "reconciliation".into(),
                healthy: true,
                detail: format!("{} item(s) resolved", report.resolved.len()),
            });
        }
        Ok(report)
    }

    /// The autonomous_trading job body for one strategy and each of its symbols.
    pub async fn run_cycle<D: DecisionEngine + Sync>(
        &self,
        strategy: &StrategyRow,
        engine: &D,
        now_ms: i64,
    ) -> Result<CycleReport, TradingError> {
        let mut report = CycleReport {
            strategy: strategy.name.clone(),
            skipped: None,
            executions: Vec::new(),
            errors: Vec::new(),
        };
        if self.is_paused()? {
            report.skipped = Some("trading is paused (kill switch)".into());
        } else if !self.is_reconciled() {
            report.skipped = Some(format!(
                "not reconciled with the exchange: {}",
                self.unresolved().join("; ")
            ));
        }
        if let Some(why) = &report.skipped {
            tracing::info!(strategy = %strategy.name, reason = %why, "autonomous trading skipped");
            return Ok(report);
        }
        let interval: Interval = strategy.interval.parse().map_err(
            |e: crate::domain::market::candle::InvalidInterval| TradingError::Strategy {
                name: strategy.name.clone(),
                detail: e.to_string(),
            },
        )?;
        for raw in &strategy.symbols {
            let symbol = match Symbol::new(raw) {
                Ok(s) => s,
                Err(e) => {
                    report.errors.push((raw.clone(), e.to_string()));
                    continue;
                }
            };
            match self
                .cycle_symbol(strategy, engine, &symbol, interval, now_ms)
                .await
            {
                Ok(r) => report.executions.push(r),
                Err(e) => {
                    tracing::warn!(strategy = %strategy.name, %symbol, error = %e, "trading cycle failed");
                    report.errors.push((symbol.to_string(), e.to_string()));
                }
            }
        }
        Ok(report)
    }

    /// The decision input for a symbol from the exchange's CLOSED candles, with the open
    /// position, the risk state and the last decisions filled in.
    pub async fn decision_input(
        &self,
        symbol: &Symbol,
        interval: Interval,
        now_ms: i64,
    ) -> Result<DecisionInput, TradingError> {
        let mut candles = self
            .deps
            .exchange
            .klines(symbol, interval, None, CANDLES)
            .await?;
        candles.retain(|c| c.close_time(interval) <= now_ms);
        let mut input = DecisionInput::from_candles(symbol.clone(), interval, &candles, now_ms)
            .ok_or_else(|| TradingError::NoMarketData {
                symbol: symbol.clone(),
                detail: format!("the exchange returned no closed {interval} candles"),
            })?;
        self.complete_input(&mut input)?;
        Ok(input)
    }

    /// Fill a snapshot's position, risk and history parts from the database.
    pub fn complete_input(&self, input: &mut DecisionInput) -> Result<(), TradingError> {
        let settings = &self.deps.settings;
        let unresolved = self.unresolved();
        let db = self.store()?;
        let c = db.conn();
        // The same account read model the faces show (`decide` builds its prompt from it too).
        let view = crate::store::account::load(
            c,
            &crate::store::account::AccountQuery {
                connection: &self.deps.connection,
                now_ms: input.now_ms,
                day_start_ms: day_start(input.now_ms),
                paper_starting_balance: None,
                unresolved,
            },
        )?;
        crate::app::decide::apply_account(input, &view);
        input.risk.max_position_pct = settings.llm.max_position_pct;
        input.recent_decisions = recorder::past_decisions(
            c,
            input.symbol.as_str(),
            input.now_ms,
            settings.llm.recent_decisions,
        )?;
        Ok(())
    }

    async fn cycle_symbol<D: DecisionEngine + Sync>(
        &self,
        strategy: &StrategyRow,
        engine: &D,
        symbol: &Symbol,
        interval: Interval,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let input = self.decision_input(symbol, interval, now_ms).await?;
        let out = engine.decide(&input).await;
        self.execute_decision(&input, &out, Some(strategy.id), now_ms)
            .await
    }

    /// decision → risk → entry → protection; every decision recorded with its outcome.
    pub async fn execute_decision(
        &self,
        input: &DecisionInput,
        out: &EngineOutput,
        strategy_id: Option<i64>,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let decision = &out.validated.decision;
        let mut report = ExecutionReport::new(&input.symbol, decision.action.to_string());
        if out.error.is_some() || !out.validated.is_valid() || decision.action == Action::Hold {
            report.outcome = match out.dry_run_outcome() {
                "dry_run" => "hold",
                other => other,
            }
            .to_string();
            report.message = "nothing to execute".into();
            self.record_decision(input, out, strategy_id, &mut report)?;
            return Ok(report);
        }
        let blocked = if self.is_paused()? {
            Some("trading is paused (kill switch); `trademind resume` lifts it".to_string())
        } else if !self.is_reconciled() {
            Some(format!(
                "not reconciled with the exchange: {}",
                self.unresolved().join("; ")
            ))
        } else {
            None
        };
        if let Some(why) = blocked {
            report.outcome = "paused".into();
            report.message = why;
            self.record_decision(input, out, strategy_id, &mut report)?;
            return Ok(report);
        }
        // The live guard comes before any exchange traffic for this decision.
        if let Err(e) = self.guard() {
            report.outcome = "blocked".into();
            report.message = e.to_string();
            self.record_decision(input, out, strategy_id, &mut report)?;
            return Err(e);
        }
        let strategy_name = match strategy_id {
            Some(id) => {
                let db = self.store()?;
                crate::store::strategies::list_strategies(db.conn())?
                    .into_iter()
                    .find(|s| s.id == id)
                    .map(|s| s.name)
            }
            None => None,
        };
        let position = {
            let db = self.store()?;
            positions::open_position(db.conn(), &self.deps.connection, input.symbol.as_str())?
        };
        let context = build_risk_context(
            self.deps.exchange.as_ref(),
            &self.deps.store,
            &self.deps.settings,
            &self.deps.connection,
            &input.symbol,
            strategy_name.as_deref(),
            input.indicators.atr,
            now_ms,
        )
        .await?;
        let Some(intent) = intent_for(
            decision,
            input,
            context.market.price,
            position.as_ref().map(|r| &r.position),
            strategy_name,
        ) else {
            report.outcome = "nothing_to_do".into();
            report.message = format!(
                "{} with no open long in {}: short selling is not traded",
                decision.action, input.symbol
            );
            self.record_decision(input, out, strategy_id, &mut report)?;
            return Ok(report);
        };
        let verdict = RiskManagementService::validate(&intent, &context);
        report.risk_verdict = Some(verdict.clone());
        let RiskVerdict::Approved {
            quantity,
            stop,
            take_profit,
            ..
        } = verdict
        else {
            if let RiskVerdict::Refused { reasons, .. } = &verdict {
                report.message = reasons.join("; ");
            }
            report.outcome = "refused".into();
            self.record_decision(input, out, strategy_id, &mut report)?;
            return Ok(report);
        };
        let result = match (intent.kind, position) {
            (IntentKind::Entry, _) => {
                self.enter(
                    &input.symbol,
                    quantity,
                    stop,
                    take_profit,
                    &context.market.filters,
                    strategy_id,
                    &mut report,
                    now_ms,
                )
                .await
            }
            (_, Some(row)) => {
                report.position_id = Some(row.id);
                self.close_row(row, &mut report, now_ms).await.map(|_| ())
            }
            (_, None) => Ok(()),
        };
        if let Err(e) = &result {
            report.outcome = "error".into();
            report.message = e.to_string();
        }
        self.record_decision(input, out, strategy_id, &mut report)?;
        result.map(|()| report)
    }

    /// Market entry, booking, protection (or a market close and an alert when protection fails).
    #[allow(clippy::too_many_arguments)]
    async fn enter(
        &self,
        symbol: &Symbol,
        quantity: Qty,
        stop: Option<Price>,
        take_profit: Option<Price>,
        filters: &SymbolFilters,
        strategy_id: Option<i64>,
        report: &mut ExecutionReport,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let request = OrderRequest {
            client_order_id: self.next_cid("e", now_ms),
            symbol: symbol.clone(),
            side: Side::Buy,
            order_type: OrderType::Market,
            quantity: filters.round_market_qty_down(quantity),
            price: None,
            stop_price: None,
            time_in_force: None,
        };
        self.guard()?;
        report.order_ids.push(request.client_order_id.clone());
        let placed = self
            .executor
            .place_linked(
                &request,
                &OrderLinks {
                    purpose: "entry".into(),
                    strategy_id,
                    ..OrderLinks::default()
                },
                now_ms,
            )
            .await?;
        self.publish_order(&placed.order);
        let fills = self.fills_of(&placed.order, placed.fills).await?;
        self.store_fills(&request.client_order_id, &fills)?;
        let pfills: Vec<PositionFill> = fills.iter().map(|f| position_fill(f, filters)).collect();
        let Some((position_id, position)) =
            self.book_entry(&pfills, strategy_id, stop, take_profit, now_ms)?
        else {
            report.outcome = "not_filled".into();
            report.message = format!(
                "entry {} is {}",
                request.client_order_id, placed.order.status
            );
            return Ok(());
        };
        {
            let db = self.store()?;
            orders::link(db.conn(), &request.client_order_id, Some(position_id), None)?;
        }
        report.position_id = Some(position_id);
        // Adding to a position: its old protection covers only the old quantity and holds
        // that balance on the exchange; replace it with protection of the whole position.
        let symbol = position.symbol.clone();
        let position = if self
            .cancel_protection(position_id, &symbol, now_ms)
            .await?
            .is_some()
        {
            let db = self.store()?;
            match positions::open_position(db.conn(), &self.deps.connection, symbol.as_str())? {
                Some(row) => row.position,
                None => {
                    report.message = "bought, but the position's earlier protection filled \
                        meanwhile and closed it"
                        .into();
                    return Ok(());
                }
            }
        } else {
            position
        };
        self.publish_position(&position);
        let price = placed
            .order
            .average_fill_price()
            .unwrap_or(position.entry_price);
        match self
            .protect(position_id, &position, filters, strategy_id, now_ms)
            .await
        {
            Ok(ids) => {
                report.order_ids.extend(ids);
                report.outcome = "executed".into();
                report.message = format!(
                    "bought {} {} at {price}; protected (stop {}, target {})",
                    position.quantity,
                    symbol,
                    position.stop_loss.map_or("-".into(), |p| p.to_string()),
                    position.take_profit.map_or("-".into(), |p| p.to_string()),
                );
                self.alert(
                    AlertKind::TradeExecuted,
                    format!("trade_executed/{}", request.client_order_id),
                    format!(
                        "TradeMind: bought {} {symbol} at {price}",
                        position.quantity
                    ),
                    report.message.clone(),
                    now_ms,
                )
                .await;
            }
            Err(protect_error) => {
                tracing::error!(%symbol, error = %protect_error,
                    "protection could not be placed; closing the position at market");
                let row = {
                    let db = self.store()?;
                    positions::get(db.conn(), position_id)?
                };
                let closed = match row {
                    Some(row) => self.close_row(row, report, now_ms).await,
                    None => Err(TradingError::NoPosition(symbol.clone())),
                };
                report.outcome = "protection_failed".into();
                report.message = match &closed {
                    Ok(pnl) => format!(
                        "bought {} {symbol} at {price} but protection failed ({protect_error}); \
                         closed at market, realised {pnl}",
                        position.quantity
                    ),
                    Err(e) => format!(
                        "bought {} {symbol} at {price} but protection failed ({protect_error}) \
                         AND the market close failed ({e}): the position is OPEN AND UNPROTECTED",
                        position.quantity
                    ),
                };
                self.alert(
                    AlertKind::ProtectionFailed,
                    format!("protection_failed/{symbol}"),
                    format!("TradeMind: could not protect {symbol}; position closed"),
                    report.message.clone(),
                    now_ms,
                )
                .await;
                closed?;
            }
        }
        Ok(())
    }

    /// Cancel the open protection legs of a position. `Some(realised PnL)` when a leg had
    /// already filled: the position was closed by it (and booked) instead.
    async fn cancel_protection(
        &self,
        position_id: i64,
        symbol: &Symbol,
        now_ms: i64,
    ) -> Result<Option<Quote>, TradingError> {
        let legs: Vec<StoredOrder> = {
            let db = self.store()?;
            orders::of_position(db.conn(), position_id)?
                .into_iter()
                .filter(|o| o.purpose != "entry" && o.purpose != "exit" && o.order.status.is_open())
                .collect()
        };
        for leg in &legs {
            let cid = &leg.order.client_order_id;
            let current = {
                let db = self.store()?;
                orders::get(db.conn(), cid)?
            };
            if current.is_none_or(|c| !c.order.status.is_open()) {
                continue; // its OCO sibling's cancel took it along
            }
            match self.deps.exchange.cancel_order(symbol, cid).await {
                Ok(order) => self.settle_row(&order, now_ms)?,
                Err(ExchangeError::UnknownOrder { .. }) => {
                    let order = self.deps.exchange.query_order(symbol, cid).await?;
                    self.settle_row(&order, now_ms)?;
                    if order.status == OrderStatus::Filled {
                        // The protection beat us to it: book that fill instead of selling again.
                        let mut m = MonitorReport::default();
                        self.check_protection_locked(&mut m, None, now_ms).await?;
                        return Ok(Some(m.closed.iter().map(|c| c.realized_pnl).sum()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.settle_list_siblings(leg, now_ms).await?;
        }
        Ok(None)
    }

    /// Cancel a position's protection, sell it at market and book the close. Returns the
    /// realised PnL of the closing fills.
    ///
    /// Holds `booking` throughout, so a protection fill booked meanwhile by the monitor or the
    /// user-data stream cannot interleave; `row` may be stale (read before the lock), so the
    /// position is read again once its protection is gone, and what is sold is what is still
    /// open. A position a stop or target has already closed is not sold a second time (that
    /// would sell other holdings of the asset).
    async fn close_row(
        &self,
        row: PositionRow,
        report: &mut ExecutionReport,
        now_ms: i64,
    ) -> Result<Quote, TradingError> {
        let _booking = self.booking.lock().await;
        let symbol = row.position.symbol.clone();
        let filters = self.deps.exchange.symbol_filters(&symbol).await?;
        if let Some(pnl) = self.cancel_protection(row.id, &symbol, now_ms).await? {
            return Ok(pnl);
        }
        let row = {
            let db = self.store()?;
            positions::get(db.conn(), row.id)?
        };
        let Some(row) = row.filter(|r| r.position.closed_at.is_none()) else {
            report.outcome = "already_closed".into();
            report.message =
                format!("the {symbol} position was already closed by its protection; nothing sold");
            return Ok(Quote::ZERO);
        };
        let request = OrderRequest {
            client_order_id: self.next_cid("x", now_ms),
            symbol: symbol.clone(),
            side: Side::Sell,
            order_type: OrderType::Market,
            quantity: filters.round_market_qty_down(row.position.quantity),
            price: None,
            stop_price: None,
            time_in_force: None,
        };
        self.guard()?;
        report.order_ids.push(request.client_order_id.clone());
        let placed = self
            .executor
            .place_linked(
                &request,
                &OrderLinks {
                    purpose: "exit".into(),
                    position_id: Some(row.id),
                    strategy_id: row.strategy_id,
                    order_list_id: None,
                },
                now_ms,
            )
            .await?;
        self.publish_order(&placed.order);
        let fills = self.fills_of(&placed.order, placed.fills).await?;
        let order_row = self.store_fills(&request.client_order_id, &fills)?;
        let (_, realised) =
            self.book_exit_fills(row.id, row.position, &fills, order_row, &filters, now_ms)?;
        report.outcome = "executed".into();
        report.message = format!(
            "sold {} {symbol} at {}; realised {realised}",
            request.quantity,
            placed
                .order
                .average_fill_price()
                .map_or("?".into(), |p| p.to_string())
        );
        Ok(realised)
    }

    /// Book an exit order's fills (already stored as `order_row`) on position `id`: fees as
    /// the position sees them, dust closed with the exit; the position and the order's
    /// realised PnL are saved and the position published. Returns the position after and the
    /// realised PnL of these fills.
    fn book_exit_fills(
        &self,
        id: i64,
        mut position: Position,
        fills: &[Fill],
        order_row: Option<i64>,
        filters: &SymbolFilters,
        now_ms: i64,
    ) -> Result<(Position, Quote), TradingError> {
        let pfills: Vec<PositionFill> = fills.iter().map(|f| position_fill(f, filters)).collect();
        let realised = book_exit(&mut position, &pfills, filters)?;
        {
            let db = self.store()?;
            positions::update(db.conn(), id, &position, now_ms)?;
            if let Some(order) = order_row {
                orders::set_realized_pnl(db.conn(), order, realised)?;
            }
        }
        self.publish_position(&position);
        Ok((position, realised))
    }

    fn settle_row(&self, order: &Order, now_ms: i64) -> Result<(), TradingError> {
        {
            let db = self.store()?;
            orders::update_from_exchange(db.conn(), order, now_ms)?;
        }
        self.publish_order(order);
        Ok(())
    }

    /// Query the other legs of `leg`'s order list and store their state (the exchange expires
    /// or cancels them with the leg).
    async fn settle_list_siblings(
        &self,
        leg: &StoredOrder,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let Some(list) = &leg.order_list_id else {
            return Ok(());
        };
        let siblings: Vec<StoredOrder> = {
            let db = self.store()?;
            match leg.position_id {
                Some(pid) => orders::of_position(db.conn(), pid)?,
                None => Vec::new(),
            }
        };
        for s in siblings.iter().filter(|s| {
            s.order_list_id.as_ref() == Some(list)
                && s.order.client_order_id != leg.order.client_order_id
                && s.order.status.is_open()
        }) {
            match self
                .deps
                .exchange
                .query_order(&s.order.symbol, &s.order.client_order_id)
                .await
            {
                Ok(order) => self.settle_row(&order, now_ms)?,
                Err(e) => tracing::warn!(client_order_id = %s.order.client_order_id, error = %e,
                    "could not query the other leg of the order list"),
            }
        }
        Ok(())
    }

    /// Query every open protection leg; a FILLED one closes its position with the realised
    /// PnL net of fees and alerts; one the exchange does not know is marked.
    async fn check_protection(
        &self,
        monitor: &mut MonitorReport,
        reconcile: Option<&mut ReconcileReport>,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let _booking = self.booking.lock().await;
        self.check_protection_locked(monitor, reconcile, now_ms)
            .await
    }

    /// [`check_protection`](Self::check_protection) for a caller already holding `booking`.
    async fn check_protection_locked(
        &self,
        monitor: &mut MonitorReport,
        mut reconcile: Option<&mut ReconcileReport>,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let legs = {
            let db = self.store()?;
            orders::open_protection(db.conn(), &self.deps.connection)?
        };
        for leg in legs {
            // An earlier leg of the same list may have settled this one already.
            let still_open = {
                let db = self.store()?;
                orders::get(db.conn(), &leg.order.client_order_id)?
                    .is_some_and(|o| o.order.status.is_open())
            };
            if !still_open {
                continue;
            }
            monitor.checked += 1;
            let cid = leg.order.client_order_id.clone();
            let order = match self
                .deps
                .exchange
                .query_order(&leg.order.symbol, &cid)
                .await
            {
                Ok(order) => order,
                Err(ExchangeError::UnknownOrder { .. }) => {
                    let why = "the exchange has no such order (lost); marked EXPIRED";
                    {
                        let db = self.store()?;
                        orders::mark(db.conn(), &cid, OrderStatus::Expired, Some(why), now_ms)?;
                    }
                    if let Some(r) = reconcile.as_deref_mut() {
                        r.resolved.push(format!("protective order {cid}: {why}"));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.settle_row(&order, now_ms)?;
            if order.status != OrderStatus::Filled {
                continue;
            }
            let booked = self
                .book_protection_fill(&leg, &order, Vec::new(), now_ms)
                .await?;
            if let Some(closed) = booked {
                monitor.closed.push(closed);
            }
        }
        Ok(())
    }

    /// Book a FILLED protection leg: settle its list siblings, store its fills (`given`, else
    /// the exchange's trade list), close the position with the realised PnL and alert once.
    async fn book_protection_fill(
        &self,
        leg: &StoredOrder,
        order: &Order,
        given: Vec<Fill>,
        now_ms: i64,
    ) -> Result<Option<ClosedByExchange>, TradingError> {
        self.settle_list_siblings(leg, now_ms).await?;
        let fills = self.fills_of(order, given).await?;
        let order_row = self.store_fills(&order.client_order_id, &fills)?;
        let Some(pid) = leg.position_id else {
            return Ok(None);
        };
        let row = {
            let db = self.store()?;
            positions::get(db.conn(), pid)?
        };
        let Some(row) = row.filter(|r| r.position.closed_at.is_none()) else {
            return Ok(None);
        };
        let filters = self.deps.exchange.symbol_filters(&order.symbol).await?;
        let (position, realised) =
            self.book_exit_fills(pid, row.position, &fills, order_row, &filters, now_ms)?;
        let exit_price = order.average_fill_price().unwrap_or(position.entry_price);
        let (leg_name, what) = if leg.purpose == "take_profit" {
            ("take_profit", "target hit")
        } else {
            ("stop_loss", "stop hit")
        };
        self.alert(
            AlertKind::StopOrTargetHit,
            format!("stop_or_target_hit/{}", order.client_order_id),
            format!("TradeMind: {what} on {}", position.symbol),
            format!(
                "{what}: {} {} sold at {exit_price}; position closed with realised PnL {} (fees included, total {})",
                order.filled_quantity, position.symbol, realised, position.realized_pnl
            ),
            now_ms,
        )
        .await;
        Ok(Some(ClosedByExchange {
            symbol: position.symbol.clone(),
            position_id: pid,
            leg: leg_name.into(),
            client_order_id: order.client_order_id.clone(),
            exit_price,
            realized_pnl: position.realized_pnl,
        }))
    }

    /// monitor_orders: settle unresolved rows, follow protection legs, feed the breaker.
    pub async fn monitor_orders(&self, now_ms: i64) -> Result<MonitorReport, TradingError> {
        let mut report = MonitorReport::default();
        for o in self.executor.reconcile(now_ms).await? {
            self.publish_order(&o);
            report.settled.push(o.client_order_id);
        }
        self.check_protection(&mut report, None, now_ms).await?;
        report.breaker = self.evaluate_breaker(now_ms).await?;
        Ok(report)
    }

    /// An execution report from the user-data stream. The order and trade rows move forward
    /// (`apply_execution_report`, once per trade id); a protection leg that has now FILLED is
    /// booked exactly as `monitor_orders` books it (siblings settled, position closed with its
    /// realised PnL, one alert, the breaker fed), from the fills the stream delivered. Entry
    /// and exit fills only update their rows: the flow that placed them books the position. A
    /// later monitor pass finds the leg settled and books nothing more.
    pub async fn book_stream_execution(
        &self,
        report: &StreamExecution,
        now_ms: i64,
    ) -> Result<Option<ClosedByExchange>, TradingError> {
        let _booking = self.booking.lock().await;
        let (status_before, applied) = {
            let db = self.store()?;
            let cid = report
                .original_client_order_id
                .as_deref()
                .unwrap_or(&report.client_order_id);
            let before = orders::get(db.conn(), cid)?.map(|o| o.order.status);
            (before, apply_execution_report(db.conn(), report, now_ms)?)
        };
        if applied.order == OrderOutcome::NotOurs {
            tracing::info!(client_order_id = %applied.client_order_id,
                "execution report for an order TradeMind did not place; not stored");
            return Ok(None);
        }
        if matches!(applied.order, OrderOutcome::Updated { .. }) {
            self.forget_balances();
        }
        for event in applied.events(report) {
            self.publish(event);
        }
        let leg = {
            let db = self.store()?;
            orders::get(db.conn(), &applied.client_order_id)?
        };
        let Some(leg) = leg.filter(|l| {
            applied.order
                == (OrderOutcome::Updated {
                    status: OrderStatus::Filled,
                })
                && (l.purpose == "stop_loss" || l.purpose == "take_profit")
        }) else {
            return Ok(None);
        };
        let stored = {
            let db = self.store()?;
            orders::fills_of_order(db.conn(), leg.id)?
        };
        // A report missed across a reconnect leaves the stored fills short: ask the exchange.
        let streamed: Qty = stored.iter().map(|f| f.quantity).sum();
        let given = if streamed == leg.order.filled_quantity {
            stored
        } else {
            Vec::new()
        };
        let closed = match self
            .book_protection_fill(&leg, &leg.order, given, now_ms)
            .await
        {
            Ok(closed) => closed,
            Err(e) => {
                // Reopen the leg so the next monitor pass books it from the exchange (its
                // trades are kept once per id); a FILLED leg would never be looked at again.
                let db = self.store()?;
                orders::mark(
                    db.conn(),
                    &leg.order.client_order_id,
                    status_before.unwrap_or(OrderStatus::New),
                    Some(&format!("fill from the stream not booked yet: {e}")),
                    now_ms,
                )?;
                return Err(e);
            }
        };
        if closed.is_some()
            && let Err(e) = self.evaluate_breaker(now_ms).await
        {
            // Booked; the next monitor pass evaluates the breaker again.
            tracing::warn!(error = %e, "circuit breaker not evaluated after a stream fill");
        }
        Ok(closed)
    }

    /// Equity now (`account_equity` in the connection's `quote_currency`). Returns (equity,
    /// unrealised PnL).
    /// `balances_max_age_ms`: reuse balances fetched that recently (marks from the WebSocket
    /// arrive far more often than the account endpoint's request weight allows).
    async fn equity(
        &self,
        marks: &[(Symbol, Price)],
        now_ms: i64,
        balances_max_age_ms: i64,
    ) -> Result<(Quote, Quote), TradingError> {
        let rows = {
            let db = self.store()?;
            positions::open_for_connection(db.conn(), &self.deps.connection)?
        };
        let cached = self
            .balances
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|(at, _)| now_ms - *at < balances_max_age_ms && *at <= now_ms)
            .map(|(_, b)| b);
        let balances = match cached {
            Some(b) => b,
            None => {
                let fresh = self.deps.exchange.balances().await?;
                if let Ok(mut c) = self.balances.lock() {
                    *c = Some((now_ms, fresh.clone()));
                }
                fresh
            }
        };
        let currency = quote_currency(self.deps.exchange.as_ref(), &self.deps.settings).await?;
        Ok(account_equity(&balances, &currency, &rows, marks))
    }

    async fn evaluate_breaker(&self, now_ms: i64) -> Result<Vec<BreakerTransition>, TradingError> {
        let (equity, unrealised) = self.equity(&[], now_ms, 0).await?;
        let transitions = {
            let db = self.store()?;
            let c = db.conn();
            let (config, _) = risk_store::load_config(c, None, &self.deps.settings.risk)?;
            let start = equity_store::start_of_day(c, &self.deps.connection, day_start(now_ms))?
                .unwrap_or(equity);
            let peak = equity_store::peak(c, &self.deps.connection)?
                .map_or(equity, |(p, _)| p.max(equity));
            let realised = positions::realized_since(c, &self.deps.connection, day_start(now_ms))?;
            let trades = positions::closed_trades(c, &self.deps.connection)?;
            let inputs = BreakerInputs {
                daily_loss_pct: daily_loss_pct(realised, unrealised, start),
                drawdown_pct: drawdown_pct(equity, peak),
                closed_trades: &trades,
            };
            let mut breaker = risk_store::load_breaker(c, GLOBAL_SCOPE)?;
            let transitions = breaker.evaluate(&inputs, &config, now_ms);
            for t in &transitions {
                risk_store::record_transition(c, GLOBAL_SCOPE, t)?;
            }
            transitions
        };
        for t in &transitions {
            self.announce_breaker(t, None, now_ms).await;
        }
        Ok(transitions)
    }

    async fn announce_breaker(&self, t: &BreakerTransition, note: Option<&str>, now_ms: i64) {
        let reason = match note {
            Some(n) => format!("{}: {n}", t.reason),
            None => t.reason.to_string(),
        };
        self.publish(Event::BreakerChanged {
            scope: GLOBAL_SCOPE.into(),
            state: t.to.to_string(),
            reason: reason.clone(),
        });
        let kind = if t.reason == BreakerReason::DailyLossLimit {
            AlertKind::DailyLossLimit
        } else {
            AlertKind::BreakerChanged
        };
        let subject = if t.to == crate::domain::risk::BreakerState::Active {
            format!("TradeMind: circuit breaker reset ({reason})")
        } else {
            format!("TradeMind: circuit breaker tripped to {} ({reason})", t.to)
        };
        self.alert(
            kind,
            format!("breaker/{}/{}", t.to, t.reason),
            subject.clone(),
            format!("{subject} at {} ms; was {}", t.at, t.from),
            now_ms,
        )
        .await;
    }

    /// update_prices: marks from `exchange.ticker_price` for every open position.
    pub async fn update_prices(&self, now_ms: i64) -> Result<(), TradingError> {
        self.update_prices_except(|_| false, now_ms).await
    }

    /// `update_prices` for the open positions whose symbol is not `fresh` (marked by the
    /// market stream recently); nothing is asked of the exchange when all are.
    pub async fn update_prices_except(
        &self,
        fresh: impl Fn(&Symbol) -> bool,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let open = {
            let db = self.store()?;
            positions::open_for_connection(db.conn(), &self.deps.connection)?
        };
        let any_open = !open.is_empty();
        let rows: Vec<PositionRow> = open
            .into_iter()
            .filter(|r| !fresh(&r.position.symbol))
            .collect();
        if any_open && rows.is_empty() {
            // The stream marks every position (and records the equity with them).
            return Ok(());
        }
        let mut marks = Vec::new();
        for r in rows {
            let price = self.deps.exchange.ticker_price(&r.position.symbol).await?;
            marks.push((r.position.symbol, price));
        }
        self.apply_marks(&marks, now_ms).await
    }

    /// Marks supplied by the caller (e.g. the WebSocket): unrealised PnL per position and the
    /// equity are stored and published.
    pub async fn apply_marks(
        &self,
        marks: &[(Symbol, Price)],
        now_ms: i64,
    ) -> Result<(), TradingError> {
        {
            let db = self.store()?;
            for (symbol, price) in marks {
                if let Some(row) =
                    positions::open_position(db.conn(), &self.deps.connection, symbol.as_str())?
                {
                    let u = PositionService::unrealized_pnl(&row.position, *price);
                    positions::mark(db.conn(), row.id, *price, u, now_ms)?;
                }
            }
        }
        for (symbol, price) in marks {
            self.publish(Event::PriceUpdated {
                symbol: symbol.clone(),
                price: *price,
                time_ms: now_ms,
            });
        }
        let (equity, unrealised) = self.equity(marks, now_ms, BALANCES_MAX_AGE_MS).await?;
        {
            let db = self.store()?;
            equity_store::insert(db.conn(), &self.deps.connection, equity, unrealised, now_ms)?;
        }
        self.publish(Event::EquityUpdated {
            connection: self.deps.connection.clone(),
            equity,
            unrealized_pnl: unrealised,
        });
        Ok(())
    }

    /// Close the open position in `symbol` at market (its protection cancelled first).
    pub async fn close_position(
        &self,
        symbol: &Symbol,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let row = {
            let db = self.store()?;
            positions::open_position(db.conn(), &self.deps.connection, symbol.as_str())?
        }
        .ok_or_else(|| TradingError::NoPosition(symbol.clone()))?;
        self.guard()?;
        let mut report = ExecutionReport {
            position_id: Some(row.id),
            ..ExecutionReport::new(symbol, "CLOSE")
        };
        self.close_row(row, &mut report, now_ms).await?;
        Ok(report)
    }

    /// Cancel one of our open orders (an OCO leg cancels its whole list).
    pub async fn cancel_order(
        &self,
        client_order_id: &str,
        now_ms: i64,
    ) -> Result<Order, TradingError> {
        let stored = {
            let db = self.store()?;
            orders::get(db.conn(), client_order_id)?
        }
        .ok_or_else(|| TradingError::UnknownOrder(client_order_id.to_string()))?;
        // Not while a fill of this order (or its list) is being booked.
        let _booking = self.booking.lock().await;
        let order = self
            .deps
            .exchange
            .cancel_order(&stored.order.symbol, client_order_id)
            .await?;
        self.settle_row(&order, now_ms)?;
        self.settle_list_siblings(&stored, now_ms).await?;
        Ok(order)
    }

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
            state: t.to.to_string(),
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
                state: t.to.to_string(),
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
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn filters() -> SymbolFilters {
        let mut f = SymbolFilters::permissive("BTC", "USDT");
        f.step_size = dec!(0.00001);
        f
    }

    fn fill(side: Side, price: Decimal, qty: Decimal, fee: Decimal, asset: &str) -> Fill {
        Fill {
            client_order_id: "x".into(),
            trade_id: None,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side,
            price: Price(price),
            quantity: Qty(qty),
            fee: Quote(fee),
            fee_asset: asset.into(),
            is_maker: false,
            time: 1,
        }
    }

    #[test]
    fn a_fee_in_the_base_asset_shrinks_the_holding_and_is_valued_at_the_fill_price() {
        let f = position_fill(
            &fill(Side::Buy, dec!(50000), dec!(0.02), dec!(0.00002), "BTC"),
            &filters(),
        );
        assert_eq!(f.quantity, Qty(dec!(0.01998)));
        assert_eq!(f.fee, Quote(dec!(1)));
        let f = position_fill(
            &fill(Side::Sell, dec!(50000), dec!(0.02), dec!(1), "USDT"),
            &filters(),
        );
        assert_eq!((f.quantity, f.fee), (Qty(dec!(0.02)), Quote(dec!(1))));
        let f = position_fill(
            &fill(Side::Sell, dec!(50000), dec!(0.02), dec!(0.003), "BNB"),
            &filters(),
        );
        assert_eq!(
            f.fee,
            Quote::ZERO,
            "a third-asset fee is not booked in quote"
        );
    }

    #[test]
    fn a_remainder_below_one_lot_step_is_closed_with_the_exit() {
        let open = position_fill(
            &fill(Side::Buy, dec!(100), dec!(1.000005), dec!(0), "USDT"),
            &filters(),
        );
        let mut p = PositionService::open(&open, PositionSide::Long).unwrap();
        let exit = position_fill(
            &fill(Side::Sell, dec!(110), dec!(1), dec!(0.11), "USDT"),
            &filters(),
        );
        let realised = book_exit(&mut p, &[exit], &filters()).unwrap();
        assert!(p.closed_at.is_some());
        // 1 × 10 − 0.11, plus the 0.000005 dust at 110: 0.00005.
        assert_eq!(realised, Quote(dec!(9.89005)));
        assert_eq!(p.quantity, Qty::ZERO);
    }

    #[test]
    fn sell_without_a_long_is_no_intent_and_buy_levels_come_from_the_snapshot_price() {
        let input = DecisionInput::from_candles(
            Symbol::new("BTCUSDT").unwrap(),
            Interval::H1,
            &[crate::domain::market::Candle {
                open_time: 0,
                open: Price(dec!(100)),
                high: Price(dec!(100)),
                low: Price(dec!(100)),
                close: Price(dec!(100)),
                volume: Qty(dec!(1)),
            }],
            1,
        )
        .unwrap();
        let mut d = TradingDecision::hold("BTCUSDT", "");
        d.action = Action::Sell;
        assert_eq!(intent_for(&d, &input, Price(dec!(101)), None, None), None);
        d.action = Action::Buy;
        d.confidence = 0.7;
        d.stop_loss = Some(crate::domain::decision::Level {
            kind: crate::domain::decision::LevelKind::Percent,
            value: 2.0,
        });
        let intent = intent_for(&d, &input, Price(dec!(101)), None, None).unwrap();
        assert_eq!(intent.kind, IntentKind::Entry);
        assert_eq!(intent.entry, Price(dec!(101)));
        assert_eq!(intent.stop_loss, Some(Price(dec!(98))));
    }
}

#[cfg(test)]
mod close_race_tests {
    use super::*;
    use crate::services::exchange::paper::{PaperConfig, PaperExchange};
    use rust_decimal_macros::dec;

    const NOW: i64 = 1_767_225_600_000;

    /// A paper account that also holds 1 BTC the bot did not buy: a second sale of a closed
    /// position would succeed here, as it would on a real account.
    fn service() -> (
        TradingService<PaperExchange>,
        Arc<PaperExchange>,
        Arc<Mutex<Store>>,
    ) {
        let config = PaperConfig {
            slippage_bps: Decimal::ZERO,
            initial_balances: [
                ("USDT".to_string(), dec!(5000)),
                ("BTC".to_string(), dec!(1)),
            ]
            .into_iter()
            .collect(),
            symbols: vec![],
            ..PaperConfig::default()
        };
        let paper = Arc::new(PaperExchange::in_memory(&config));
        let btc = Symbol::new("BTCUSDT").unwrap();
        paper
            .add_symbol(btc.clone(), SymbolFilters::permissive("BTC", "USDT"))
            .unwrap();
        paper.on_price(&btc, Price(dec!(50000))).unwrap();
        let mut settings = Settings::default();
        settings.trading.symbols = vec!["BTCUSDT".into()];
        let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let service = TradingService::new(TradingDeps {
            exchange: paper.clone(),
            store: store.clone(),
            connection: "paper".into(),
            mode: TradingMode::Paper,
            settings: Arc::new(settings),
            bus: EventBus::new(16),
            mailer: None,
        });
        (service, paper, store)
    }

    /// A close decided on a position row read just before its stop filled and was booked (the
    /// user-data stream or the monitor got there first) must not sell the quantity again.
    #[tokio::test]
    async fn a_close_on_a_stale_row_does_not_sell_what_the_stop_already_sold() {
        let (service, paper, store) = service();
        let btc = Symbol::new("BTCUSDT").unwrap();
        service.reconcile(NOW).await.unwrap();
        let filters = SymbolFilters::permissive("BTC", "USDT");
        let mut entry = ExecutionReport::new(&btc, "BUY");
        service
            .enter(
                &btc,
                Qty(dec!(0.01)),
                Some(Price(dec!(49000))),
                Some(Price(dec!(52000))),
                &filters,
                None,
                &mut entry,
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(entry.outcome, "executed", "{}", entry.message);
        let stale = positions::open_position(store.lock().unwrap().conn(), "paper", "BTCUSDT")
            .unwrap()
            .expect("an open position");

        // The stop fills on the exchange and is booked.
        paper.on_price(&btc, Price(dec!(48900))).unwrap();
        let monitored = service.monitor_orders(NOW + 1).await.unwrap();
        assert_eq!(monitored.closed.len(), 1, "the stop closed the position");
        let btc_after_stop = balance_of(&paper.balances().await.unwrap(), "BTC");

        let mut close = ExecutionReport::new(&btc, "CLOSE");
        let realised = service.close_row(stale, &mut close, NOW + 2).await.unwrap();
        assert_eq!(close.outcome, "already_closed", "{}", close.message);
        assert_eq!(realised, Quote::ZERO);
        assert!(close.order_ids.is_empty(), "no exit order was placed");
        assert_eq!(
            balance_of(&paper.balances().await.unwrap(), "BTC"),
            btc_after_stop,
            "the account's other BTC is untouched"
        );
        let exits = orders::of_position(store.lock().unwrap().conn(), entry.position_id.unwrap())
            .unwrap()
            .into_iter()
            .filter(|o| o.purpose == "exit")
            .count();
        assert_eq!(exits, 0);
    }
}
