//! The account as every face shows it (`AccountView`): one typed read model built from the rows
//! the trading service writes — positions, orders, trades, equity snapshots, the breaker
//! history — for one connection. The TUI, `status`, `positions` and the decision prompt read
//! this instead of re-deriving numbers with their own SQL, so they cannot disagree.

use rusqlite::Connection;
use serde::Serialize;

use super::StoreResult;
use super::orders::{self, StoredOrder};
use super::positions::{self, PositionRow};
use super::risk::{self, BreakerRecord, GLOBAL_SCOPE};
use crate::domain::market::candle::TimestampMs;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::{BreakerReason, BreakerState, CircuitBreaker};
use crate::domain::trading::order::OrderPurpose;

/// What the caller knows that the rows do not: which connection, the run's clock and day.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountQuery<'a> {
    pub connection: &'a str,
    /// Now on the run's clock (the replay's simulated time in the demo).
    pub now_ms: TimestampMs,
    /// Where "today" starts on the run's clock.
    pub day_start_ms: TimestampMs,
    /// The paper account's starting cash: `Some` only for a paper connection, used until the
    /// engine has written an equity snapshot. Never used on a Binance connection.
    pub paper_starting_balance: Option<Quote>,
    /// What reconciliation left unresolved (empty when reconciled or not known here).
    pub unresolved: Vec<String>,
}

/// Where the equity figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum EquitySource {
    /// The latest snapshot the engine wrote for the connection (balances marked to market).
    Snapshot { at_ms: TimestampMs },
    /// No snapshot yet on a paper connection: starting cash + realised + unrealised PnL.
    PaperBalance,
    /// No snapshot yet on an exchange connection: nothing honest to show.
    Unknown,
}

/// Whether new entries may be opened, and who or what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TradingState {
    Active,
    /// An operator's pause (`trademind pause`, `p`).
    Paused {
        by: Option<String>,
        why: Option<String>,
        since: TimestampMs,
    },
    /// The kill switch (`risk kill`, `K`).
    Killed {
        by: Option<String>,
        why: Option<String>,
        since: TimestampMs,
    },
    /// A loss rule tripped the breaker: closes only.
    ReduceOnly {
        reason: BreakerReason,
        since: TimestampMs,
        until: Option<TimestampMs>,
    },
    /// A loss rule halted trading.
    Halted {
        reason: BreakerReason,
        since: TimestampMs,
        until: Option<TimestampMs>,
    },
    /// Reconciliation with the exchange left discrepancies.
    NotReconciled {
        discrepancies: Vec<String>,
    },
}

impl TradingState {
    /// From the latest global breaker row and what reconciliation left. An operator's stop
    /// comes first (it says who to ask), then reconciliation, then a loss rule.
    pub fn from_parts(latest: Option<&BreakerRecord>, unresolved: &[String]) -> TradingState {
        if let Some(r) = latest.filter(|r| r.state != BreakerState::Active) {
            let (by, why, since) = (r.actor.clone(), r.note.clone(), r.changed_at);
            match r.reason {
                Some(BreakerReason::ManualPause) => return TradingState::Paused { by, why, since },
                Some(BreakerReason::ManualKill) | None => {
                    return TradingState::Killed { by, why, since };
                }
                Some(_) => {}
            }
        }
        if !unresolved.is_empty() {
            return TradingState::NotReconciled {
                discrepancies: unresolved.to_vec(),
            };
        }
        match latest {
            Some(r) if r.state != BreakerState::Active => {
                let reason = r.reason.unwrap_or(BreakerReason::ManualKill);
                let (since, until) = (r.changed_at, r.until);
                if r.state == BreakerState::ReduceOnly {
                    TradingState::ReduceOnly {
                        reason,
                        since,
                        until,
                    }
                } else {
                    TradingState::Halted {
                        reason,
                        since,
                        until,
                    }
                }
            }
            _ => TradingState::Active,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            TradingState::Active => "ACTIVE",
            TradingState::Paused { .. } => "PAUSED",
            TradingState::Killed { .. } => "KILLED",
            TradingState::ReduceOnly { .. } => "REDUCE ONLY",
            TradingState::Halted { .. } => "HALTED",
            TradingState::NotReconciled { .. } => "NOT RECONCILED",
        }
    }

    /// Stopped by an operator: `resume` lifts it.
    pub fn is_manually_stopped(&self) -> bool {
        matches!(
            self,
            TradingState::Paused { .. } | TradingState::Killed { .. }
        )
    }

    /// One line for people: state, who/why, since when.
    pub fn describe(&self, time: impl Fn(TimestampMs) -> String) -> String {
        let who = |by: &Option<String>, why: &Option<String>| {
            let mut s = String::new();
            if let Some(b) = by {
                s.push_str(&format!(" by {b}"));
            }
            if let Some(w) = why.as_deref().filter(|w| !w.is_empty()) {
                s.push_str(&format!(" ({w})"));
            }
            s
        };
        match self {
            TradingState::Active => "active".into(),
            TradingState::Paused { by, why, since } => {
                format!("paused{} since {}", who(by, why), time(*since))
            }
            TradingState::Killed { by, why, since } => {
                format!("kill switch engaged{} since {}", who(by, why), time(*since))
            }
            TradingState::ReduceOnly { reason, since, .. } => {
                format!("reduce only ({reason}) since {}", time(*since))
            }
            TradingState::Halted { reason, since, .. } => {
                format!("halted ({reason}) since {}", time(*since))
            }
            TradingState::NotReconciled { discrepancies } => {
                format!("not reconciled ({} discrepancy(ies))", discrepancies.len())
            }
        }
    }
}

/// What protects an open position, from its LIVE protection orders (not the stop and target
/// the position was opened with: a cancelled leg no longer protects anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    BothLegs,
    StopOnly,
    TargetOnly,
    /// The whole position is dust the exchange will not sell (under its lot step, minimum
    /// quantity or minimum notional): nothing can protect it and nothing needs to.
    Dust,
    Unprotected,
}

impl Protection {
    pub fn label(self) -> &'static str {
        match self {
            Protection::BothLegs => "stop+target",
            Protection::StopOnly => "stop only",
            Protection::TargetOnly => "target only",
            Protection::Dust => "dust",
            Protection::Unprotected => "UNPROTECTED",
        }
    }
}

/// An open position with what protects it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionStatus {
    #[serde(flatten)]
    pub row: PositionRow,
    pub protection: Protection,
    /// The live stop-loss leg's trigger price.
    pub live_stop: Option<Price>,
    /// The live stop-loss leg's limit price (a STOP_LOSS_LIMIT fills no worse than this);
    /// `None` for a stop-market leg or no stop.
    pub live_stop_limit: Option<Price>,
    /// The live take-profit leg's price.
    pub live_target: Option<Price>,
    /// The part of the quantity the exchange will not sell, as the engine last judged it: the
    /// residue under one lot step a base-asset fee leaves beside the protected quantity, or the
    /// whole position (`Protection::Dust`). Shown as dust, never as unprotected.
    pub dust: Qty,
    /// The mark the engine last wrote (the entry when never marked).
    pub mark: Price,
    /// The stop the position was opened with (its first entry order's planned stop, else the
    /// stored one): the R of its R multiple, which a break-even move must not shrink to zero.
    pub initial_stop: Option<Price>,
    /// Why the position was opened: its entry decision's reasoning and invalidation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thesis: Option<crate::domain::decision::Thesis>,
}

/// Exact row counts (no cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    pub decisions: u64,
    pub trades: u64,
    pub open_orders: u64,
    pub closed_positions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountView {
    pub connection: String,
    pub as_of_ms: TimestampMs,
    pub equity: Quote,
    pub equity_source: EquitySource,
    /// Every position's realised PnL on this connection, net of every fee (entries included).
    pub realised_pnl: Quote,
    /// Open positions' unrealised PnL at the engine's last marks.
    pub unrealised_pnl: Quote,
    pub day_start_ms: TimestampMs,
    /// Realised today (positions closed today, and the entry fees of positions opened today
    /// and still open) + unrealised, net of every fee.
    pub day_pnl: Quote,
    /// `day_pnl` as % of the equity the day started with (0 when that is not positive).
    pub day_pnl_pct: f64,
    pub trading: TradingState,
    /// The global breaker as last persisted.
    pub breaker: CircuitBreaker,
    /// Whether the breaker ever moved (a fresh database: "never tripped").
    pub breaker_ever_moved: bool,
    /// Every book's open positions (a strategy's, or the default book's).
    pub positions: Vec<PositionStatus>,
    /// Base assets the exchange holds beyond every book's positions, as reconciliation last
    /// measured them: no strategy owns or sells them.
    pub unmanaged: Vec<positions::UnmanagedHolding>,
    /// Each strategy's book on this connection: its daily loss, drawdown and own breaker.
    pub books: Vec<super::book_risk::BookRisk>,
    pub counts: Counts,
}

/// "HALTED (daily_loss_limit) since …", or "never tripped" for a breaker that never moved:
/// the account's and each strategy's breaker, said the same way everywhere.
pub fn describe_breaker(
    breaker: &CircuitBreaker,
    ever_moved: bool,
    time: impl Fn(TimestampMs) -> String,
) -> String {
    if !ever_moved {
        return "never tripped".into();
    }
    let reason = breaker
        .reason
        .map(|r| format!(" ({})", r.as_str()))
        .unwrap_or_default();
    format!("{}{reason} since {}", breaker.state, time(breaker.since))
}

impl AccountView {
    /// "ACTIVE (reason) since …" or "never tripped": the breaker as `status`, the daily
    /// summary and the chat say it.
    pub fn describe_breaker(&self, time: impl Fn(TimestampMs) -> String) -> String {
        describe_breaker(&self.breaker, self.breaker_ever_moved, time)
    }

    /// One line for an alert's body: the account right after what the alert reports, with the
    /// same figures the TUI, `status` and the decision prompt show.
    pub fn summary(&self) -> String {
        let unprotected = self
            .positions
            .iter()
            .filter(|p| p.protection == Protection::Unprotected)
            .count();
        let equity = match self.equity_source {
            EquitySource::Unknown => "unknown".to_string(),
            _ => self.equity.to_string(),
        };
        let mut line = format!(
            "Account {}: equity {equity} · realised {} · unrealised {} · today {} · trading {} · {} open position(s)",
            self.connection,
            self.realised_pnl,
            self.unrealised_pnl,
            self.day_pnl,
            self.trading.label(),
            self.positions.len(),
        );
        if unprotected > 0 {
            line.push_str(&format!(", {unprotected} UNPROTECTED"));
        }
        line
    }
}

fn is_live_leg(o: &StoredOrder) -> bool {
    o.order.status.is_open() && o.purpose.is_protection()
}

/// Protection of one position from its orders.
pub fn protection_of(
    position_orders: &[StoredOrder],
) -> (Protection, Option<Price>, Option<Price>) {
    let live: Vec<&StoredOrder> = position_orders.iter().filter(|o| is_live_leg(o)).collect();
    let stop = live
        .iter()
        .find(|o| o.purpose == OrderPurpose::StopLoss)
        .and_then(|o| o.order.stop_price.or(o.order.price));
    let target = live
        .iter()
        .find(|o| o.purpose == OrderPurpose::TakeProfit)
        .and_then(|o| o.order.price.or(o.order.stop_price));
    let has_stop = live.iter().any(|o| o.purpose == OrderPurpose::StopLoss);
    let has_target = live.iter().any(|o| o.purpose == OrderPurpose::TakeProfit);
    let p = match (has_stop, has_target) {
        (true, true) => Protection::BothLegs,
        (true, false) => Protection::StopOnly,
        (false, true) => Protection::TargetOnly,
        (false, false) => Protection::Unprotected,
    };
    (p, stop, target)
}

/// The limit price of the live stop-loss leg, when it has both a trigger and a limit.
fn stop_limit_of(position_orders: &[StoredOrder]) -> Option<Price> {
    position_orders
        .iter()
        .filter(|o| is_live_leg(o) && o.purpose == OrderPurpose::StopLoss)
        .find_map(|o| o.order.stop_price.and(o.order.price))
}

/// One open position with the protection its live orders give it now.
fn position_status(conn: &Connection, row: PositionRow) -> StoreResult<PositionStatus> {
    let position_orders = orders::of_position(conn, row.id)?;
    let (mut protection, live_stop, live_target) = protection_of(&position_orders);
    let live_stop_limit = stop_limit_of(&position_orders);
    let dust = positions::dust_of(conn, row.id)?;
    if protection == Protection::Unprotected && !dust.is_zero() && dust >= row.position.quantity {
        protection = Protection::Dust;
    }
    let mark = row.mark_price.unwrap_or(row.position.entry_price);
    let thesis = thesis_of(conn, &position_orders)?;
    let initial_stop = initial_stop(&position_orders).or(row.position.stop_loss);
    Ok(PositionStatus {
        row,
        protection,
        live_stop,
        live_stop_limit,
        live_target,
        dust,
        mark,
        initial_stop,
        thesis,
    })
}

/// The stop planned with a position's first entry order: the risk it opened with. A
/// break-even move rewrites the position's stored stop, never this.
pub fn initial_stop(position_orders: &[StoredOrder]) -> Option<Price> {
    position_orders
        .iter()
        .filter(|o| o.purpose == OrderPurpose::Entry)
        .min_by_key(|o| o.id)
        .and_then(|o| o.protect_stop)
}

/// The thesis of the decision behind a position's first entry order, read back through the
/// decision's own type (a decision that cannot be read gives none).
fn thesis_of(
    conn: &Connection,
    position_orders: &[StoredOrder],
) -> StoreResult<Option<crate::domain::decision::Thesis>> {
    let Some(decision_id) = position_orders
        .iter()
        .filter(|o| o.purpose == OrderPurpose::Entry)
        .min_by_key(|o| o.id)
        .and_then(|o| o.decision_id)
    else {
        return Ok(None);
    };
    let Some(row) = super::decisions::get(conn, decision_id)? else {
        return Ok(None);
    };
    Ok(row
        .fields
        .decision
        .as_deref()
        .and_then(|d| serde_json::from_str::<crate::domain::decision::TradingDecision>(d).ok())
        .map(|d| crate::domain::decision::Thesis::of_entry(row.fields.decided_at, &d)))
}

/// The thesis of open position `position_id` (see [`PositionStatus::thesis`]).
pub fn position_thesis(
    conn: &Connection,
    position_id: i64,
) -> StoreResult<Option<crate::domain::decision::Thesis>> {
    thesis_of(conn, &orders::of_position(conn, position_id)?)
}

/// Every connection's open positions as `AccountView::positions` shows them (`trademind
/// positions` lists all connections; the account view is one connection's).
pub fn open_positions(conn: &Connection) -> StoreResult<Vec<PositionStatus>> {
    positions::open_positions(conn)?
        .into_iter()
        .map(|row| position_status(conn, row))
        .collect()
}

/// Build the account of `q.connection` from the store. Blocking.
pub fn load(conn: &Connection, q: &AccountQuery<'_>) -> StoreResult<AccountView> {
    let statuses = positions::open_for_connection(conn, q.connection)?
        .into_iter()
        .map(|row| position_status(conn, row))
        .collect::<StoreResult<Vec<_>>>()?;
    let unrealised = statuses
        .iter()
        .fold(Quote::ZERO, |a, p| a + p.row.unrealized_pnl);
    let realised = positions::realized_total(conn, q.connection)?;
    let realised_today = positions::realized_since(conn, q.connection, q.day_start_ms)?
        + statuses
            .iter()
            .filter(|p| p.row.position.opened_at >= q.day_start_ms)
            .map(|p| p.row.position.realized_pnl)
            .fold(Quote::ZERO, |a, b| a + b);
    let day_pnl = realised_today + unrealised;
    let (equity, equity_source) = match super::equity::latest(conn, q.connection)? {
        Some((e, _, at)) => (e, EquitySource::Snapshot { at_ms: at }),
        None => match q.paper_starting_balance {
            Some(start) => (start + realised + unrealised, EquitySource::PaperBalance),
            None => (Quote::ZERO, EquitySource::Unknown),
        },
    };
    let start_equity = equity - day_pnl;
    let day_pnl_pct = if start_equity.get() > rust_decimal::Decimal::ZERO {
        Quote(day_pnl.get() / start_equity.get() * rust_decimal::Decimal::ONE_HUNDRED).to_f64()
    } else {
        0.0
    };
    let latest = risk::breaker_history(conn, GLOBAL_SCOPE, 1)?
        .into_iter()
        .next();
    let breaker = risk::load_breaker(conn, GLOBAL_SCOPE)?;
    let trading = TradingState::from_parts(latest.as_ref(), &q.unresolved);
    Ok(AccountView {
        connection: q.connection.to_string(),
        as_of_ms: q.now_ms,
        equity,
        equity_source,
        realised_pnl: realised,
        unrealised_pnl: unrealised,
        day_start_ms: q.day_start_ms,
        day_pnl,
        day_pnl_pct,
        trading,
        breaker,
        breaker_ever_moved: latest.is_some(),
        positions: statuses,
        unmanaged: positions::unmanaged(conn, q.connection)?,
        books: super::book_risk::load(conn, q.connection, equity, q.day_start_ms)?,
        counts: Counts {
            decisions: super::decisions::count(conn)?,
            trades: orders::trade_count(conn)?,
            open_orders: orders::open_count(conn)?,
            closed_positions: positions::closed_count(conn, q.connection)?,
        },
    })
}

/// Start of the UTC day containing `now_ms` (on whatever clock `now_ms` comes from).
pub fn utc_day_start(now_ms: TimestampMs) -> TimestampMs {
    const DAY_MS: i64 = 86_400_000;
    now_ms.div_euclid(DAY_MS) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Symbol;
    use crate::domain::money::Qty;
    use crate::domain::trading::order::{OrderRequest, OrderStatus, OrderType, Side};
    use crate::domain::trading::{Position, PositionSide};
    use crate::store::Store;
    use crate::store::orders::OrderLinks;
    use rust_decimal_macros::dec;

    /// 2025-01-15 00:00 UTC: a replay's simulated day, far from the wall clock.
    const REPLAY_DAY: i64 = 1_736_899_200_000;

    fn query(connection: &str, now_ms: i64) -> AccountQuery<'_> {
        AccountQuery {
            connection,
            now_ms,
            day_start_ms: utc_day_start(now_ms),
            paper_starting_balance: None,
            unresolved: Vec::new(),
        }
    }

    fn position(opened_at: i64) -> Position {
        Position {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: PositionSide::Long,
            quantity: Qty(dec!(0.1)),
            entry_price: Price(dec!(50000)),
            stop_loss: Some(Price(dec!(49000))),
            take_profit: Some(Price(dec!(53000))),
            // the entry's fee, booked on opening
            realized_pnl: Quote(dec!(-4.49)),
            fees_paid: Quote(dec!(4.49)),
            opened_at,
            closed_at: None,
        }
    }

    fn leg(conn: &Connection, cid: &str, purpose: OrderPurpose, position_id: i64, stop: bool) {
        let request = OrderRequest {
            client_order_id: cid.into(),
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Sell,
            order_type: if stop {
                OrderType::StopLossLimit
            } else {
                OrderType::LimitMaker
            },
            quantity: Qty(dec!(0.1)),
            price: Some(Price(if stop { dec!(48990) } else { dec!(53000) })),
            stop_price: stop.then_some(Price(dec!(49000))),
            time_in_force: None,
            trailing_delta: None,
        };
        let links = OrderLinks {
            purpose,
            position_id: Some(position_id),
            order_list_id: Some("oco-1".into()),
            ..OrderLinks::default()
        };
        orders::insert_pending_linked(conn, &request, "binance", &links, 1).unwrap();
        orders::mark(conn, cid, OrderStatus::New, None, 2).unwrap();
    }

    #[test]
    fn the_live_stop_leg_reports_its_trigger_and_its_limit() {
        // Issue 18: the cockpit showed the stop's limit, not its trigger; both are needed.
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let id = positions::insert(c, "binance", None, &position(1), 1).unwrap();
        leg(c, "sl-1", OrderPurpose::StopLoss, id, true);
        let view = load(c, &query("binance", 10)).unwrap();
        let p = &view.positions[0];
        assert_eq!(p.live_stop, Some(Price(dec!(49000))));
        assert_eq!(p.live_stop_limit, Some(Price(dec!(48990))));
    }

    #[test]
    fn a_stop_moved_to_break_even_keeps_the_risk_the_position_opened_with() {
        // The R multiple (TUI, reflections) is measured against the stop planned with the
        // entry; a break-even move rewrites the position's stop and left R at zero ("n/a").
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let mut p = position(1);
        p.stop_loss = Some(Price(dec!(50100.1))); // moved to break-even after fees
        let id = positions::insert(c, "binance", None, &p, 1).unwrap();
        let entry = OrderRequest {
            client_order_id: "entry-1".into(),
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            order_type: OrderType::Market,
            quantity: Qty(dec!(0.1)),
            price: None,
            stop_price: None,
            time_in_force: None,
            trailing_delta: None,
        };
        let links = OrderLinks {
            position_id: Some(id),
            protect_stop: Some(Price(dec!(49000))),
            protect_target: Some(Price(dec!(53000))),
            ..OrderLinks::default()
        };
        orders::insert_pending_linked(c, &entry, "binance", &links, 1).unwrap();
        let view = load(c, &query("binance", 10)).unwrap();
        assert_eq!(view.positions[0].initial_stop, Some(Price(dec!(49000))));
    }

    #[test]
    fn a_cancelled_stop_leg_leaves_the_position_unprotected() {
        // Symptom 10: after `x` on one OCO leg the row kept its stop, target and heat.
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let id = positions::insert(c, "binance", None, &position(1), 1).unwrap();
        leg(c, "sl-1", OrderPurpose::StopLoss, id, true);
        leg(c, "tp-1", OrderPurpose::TakeProfit, id, false);
        let view = load(c, &query("binance", 10)).unwrap();
        let p = &view.positions[0];
        assert_eq!(p.protection, Protection::BothLegs);
        assert_eq!(
            (p.live_stop, p.live_target),
            (Some(Price(dec!(49000))), Some(Price(dec!(53000))))
        );
        orders::mark(c, "sl-1", OrderStatus::Canceled, None, 3).unwrap();
        let p = load(c, &query("binance", 10)).unwrap().positions[0].clone();
        assert_eq!(p.protection, Protection::TargetOnly);
        assert_eq!(p.live_stop, None);
        orders::mark(c, "tp-1", OrderStatus::Canceled, None, 4).unwrap();
        let p = load(c, &query("binance", 10)).unwrap().positions[0].clone();
        assert_eq!(p.protection, Protection::Unprotected);
        assert_eq!((p.live_stop, p.live_target), (None, None));
        // The position row still carries the levels it was opened with; they protect nothing.
        assert_eq!(p.row.position.stop_loss, Some(Price(dec!(49000))));
    }

    #[test]
    fn binance_equity_is_the_latest_snapshot_never_the_paper_starting_balance() {
        // Symptom 5: 49,998.83 shown (paper starting balance + PnL) for an account worth ~9,997.
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        positions::insert(c, "binance", None, &position(1), 1).unwrap();
        let mut q = query("binance", 10);
        assert_eq!(load(c, &q).unwrap().equity_source, EquitySource::Unknown);
        super::super::equity::insert(c, "binance", Quote(dec!(9997.12)), Quote::ZERO, 5).unwrap();
        // Even if a caller passed a starting balance, the engine's snapshot wins.
        q.paper_starting_balance = Some(Quote(dec!(50000)));
        let view = load(c, &q).unwrap();
        assert_eq!(view.equity, Quote(dec!(9997.12)));
        assert_eq!(view.equity_source, EquitySource::Snapshot { at_ms: 5 });
        // A paper connection without a snapshot yet: its cash + realised + unrealised.
        let paper = load(
            c,
            &AccountQuery {
                paper_starting_balance: Some(Quote(dec!(10000))),
                ..query("paper", 10)
            },
        )
        .unwrap();
        assert_eq!(paper.equity, Quote(dec!(10000)));
        assert_eq!(paper.equity_source, EquitySource::PaperBalance);
    }

    #[test]
    fn day_pnl_counts_entry_fees_and_starts_at_the_callers_day() {
        // Symptom 4: the demo's day came from the wall clock while trades carried the replay's
        // time (day +0.00 after a realised -7.57); on Binance the entry fee was left out.
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let opened = REPLAY_DAY + 3_600_000;
        let mut p = position(opened);
        let id = positions::insert(c, "binance", None, &p, opened).unwrap();
        // Sold at a loss: -4.49 entry fee, -4.69 exit fee, -4.49 price move = -13.67 net.
        p.quantity = Qty::ZERO;
        p.realized_pnl = Quote(dec!(-13.67));
        p.fees_paid = Quote(dec!(9.18));
        p.closed_at = Some(opened + 1_800_000);
        positions::update(c, id, &p, opened + 1_800_000).unwrap();
        let now = REPLAY_DAY + 10 * 3_600_000;
        let view = load(c, &query("binance", now)).unwrap();
        assert_eq!(view.day_pnl, Quote(dec!(-13.67)));
        assert_eq!(view.realised_pnl, Quote(dec!(-13.67)));
        // The next simulated day starts at zero.
        let tomorrow = load(c, &query("binance", now + 86_400_000)).unwrap();
        assert_eq!(tomorrow.day_pnl, Quote::ZERO);
        // An open position opened today counts its entry fee today.
        positions::insert(c, "binance", None, &position(now - 60_000), now).unwrap();
        let view = load(c, &query("binance", now)).unwrap();
        assert_eq!(view.day_pnl, Quote(dec!(-18.16)));
    }

    #[test]
    fn pause_kill_and_a_loss_rule_are_told_apart_with_who_why_and_since() {
        use crate::domain::risk::RiskConfig;
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let config = RiskConfig::default();
        let state = |c: &Connection| load(c, &query("paper", 100)).unwrap();
        let fresh = state(c);
        assert_eq!(fresh.trading, TradingState::Active);
        assert!(!fresh.breaker_ever_moved);
        risk::stop_trading(
            c,
            &config,
            risk::ManualStop::Pause,
            "tui",
            "news at 14:00",
            7,
        )
        .unwrap();
        assert_eq!(
            state(c).trading,
            TradingState::Paused {
                by: Some("tui".into()),
                why: Some("news at 14:00".into()),
                since: 7
            }
        );
        risk::resume_trading(c, "cli", 8).unwrap();
        risk::stop_trading(c, &config, risk::ManualStop::Kill, "tui", "panic", 9).unwrap();
        assert_eq!(state(c).trading.label(), "KILLED");
        risk::resume_trading(c, "cli", 10).unwrap();
        assert_eq!(state(c).trading, TradingState::Active);
        let unresolved = AccountQuery {
            unresolved: vec!["order x unknown".into()],
            ..query("paper", 100)
        };
        assert_eq!(
            load(c, &unresolved).unwrap().trading.label(),
            "NOT RECONCILED"
        );
    }

    #[test]
    fn counts_are_exact() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        for i in 0..616 {
            c.execute(
                "INSERT INTO decisions (symbol, engine, action, input_snapshot, outcome, decided_at)
                 VALUES ('BTCUSDT', 'rules', 'HOLD', '{}', 'hold', ?1)",
                [i],
            )
            .unwrap();
        }
        assert_eq!(load(c, &query("paper", 1)).unwrap().counts.decisions, 616);
    }
}
