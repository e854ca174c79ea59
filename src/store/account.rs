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
use crate::domain::money::{Price, Quote};
use crate::domain::risk::{BreakerReason, BreakerState, CircuitBreaker};

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
    Unprotected,
}

impl Protection {
    pub fn label(self) -> &'static str {
        match self {
            Protection::BothLegs => "stop+target",
            Protection::StopOnly => "stop only",
            Protection::TargetOnly => "target only",
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
    /// The live take-profit leg's price.
    pub live_target: Option<Price>,
    /// The mark the engine last wrote (the entry when never marked).
    pub mark: Price,
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
    pub positions: Vec<PositionStatus>,
    pub counts: Counts,
}

fn is_live_leg(o: &StoredOrder) -> bool {
    o.order.status.is_open() && matches!(o.purpose.as_str(), "stop_loss" | "take_profit")
}

/// Protection of one position from its orders.
pub fn protection_of(
    position_orders: &[StoredOrder],
) -> (Protection, Option<Price>, Option<Price>) {
    let live: Vec<&StoredOrder> = position_orders.iter().filter(|o| is_live_leg(o)).collect();
    let stop = live
        .iter()
        .find(|o| o.purpose == "stop_loss")
        .and_then(|o| o.order.stop_price.or(o.order.price));
    let target = live
        .iter()
        .find(|o| o.purpose == "take_profit")
        .and_then(|o| o.order.price.or(o.order.stop_price));
    let has_stop = live.iter().any(|o| o.purpose == "stop_loss");
    let has_target = live.iter().any(|o| o.purpose == "take_profit");
    let p = match (has_stop, has_target) {
        (true, true) => Protection::BothLegs,
        (true, false) => Protection::StopOnly,
        (false, true) => Protection::TargetOnly,
        (false, false) => Protection::Unprotected,
    };
    (p, stop, target)
}

/// Build the account of `q.connection` from the store. Blocking.
pub fn load(conn: &Connection, q: &AccountQuery<'_>) -> StoreResult<AccountView> {
    let open = positions::open_for_connection(conn, q.connection)?;
    let mut statuses = Vec::with_capacity(open.len());
    let mut unrealised = Quote::ZERO;
    for row in open {
        let (protection, live_stop, live_target) =
            protection_of(&orders::of_position(conn, row.id)?);
        let mark = row.mark_price.unwrap_or(row.position.entry_price);
        unrealised += row.unrealized_pnl;
        statuses.push(PositionStatus {
            row,
            protection,
            live_stop,
            live_target,
            mark,
        });
    }
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
