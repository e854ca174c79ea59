//! An `executionReport` from the user-data stream applied to the store in one transaction: the
//! order row moves forward (never back: a replayed or late report is recognised) and the fill is
//! recorded once per trade id. Positions are NOT moved here: the trading service books fills
//! into positions (`TradingService::book_stream_execution`), on the same path as the REST
//! monitor, so a fill seen on both paths is booked once.

use rusqlite::Connection;

use crate::bus::Event;
use crate::domain::money::{Qty, Quote};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{Fill, OrderStatus};
use crate::services::market_stream::user_data::{ExecutionFill, ExecutionReport};
use crate::store::{StoreError, orders};

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("execution report for {client_order_id} could not be stored: {source}")]
    Store {
        client_order_id: String,
        source: StoreError,
    },
    #[error("execution report names an invalid symbol {0:?}")]
    BadSymbol(String),
}

/// What the report did to the order row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderOutcome {
    /// Status and filled quantity moved forward.
    Updated { status: OrderStatus },
    /// The row already says as much or more (a duplicate or a late report).
    Unchanged,
    /// No row with this client order id: an order placed outside TradeMind. Nothing is stored.
    NotOurs,
}

/// The result of `apply_execution_report`; `events()` is what to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionApplied {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub order: OrderOutcome,
    /// `Some(true)` when the report's trade was recorded now, `Some(false)` when it was already
    /// stored, `None` when the report carried no fill (or the order is not ours).
    pub fill_recorded: Option<bool>,
}

impl ExecutionApplied {
    /// Bus events for what changed: `OrderUpdated` and `OrderFilled` for a new trade. Nothing
    /// for a pure duplicate.
    pub fn events(&self, report: &ExecutionReport) -> Vec<Event> {
        let mut events = Vec::new();
        if let OrderOutcome::Updated { status } = &self.order {
            events.push(Event::OrderUpdated {
                client_order_id: self.client_order_id.clone(),
                symbol: self.symbol.clone(),
                status: *status,
            });
        }
        if let (Some(true), Some(fill)) = (self.fill_recorded, &report.fill) {
            events.push(Event::OrderFilled {
                client_order_id: self.client_order_id.clone(),
                symbol: self.symbol.clone(),
                side: report.side,
                qty: fill.qty,
                price: fill.price,
                commission: fill.commission,
                commission_asset: fill.commission_asset.clone(),
                trade_id: fill.trade_id,
            });
        }
        events
    }
}

/// Apply one execution report to `orders` and `trades`, atomically.
///
/// The order is found by client order id (for a cancel, the original id `C`). Its row only
/// moves forward: a report whose filled quantity and status are not ahead of the row's is
/// `Unchanged`. A fill is inserted once per trade id.
pub fn apply_execution_report(
    conn: &Connection,
    report: &ExecutionReport,
    now_ms: i64,
) -> Result<ExecutionApplied, ExecutionError> {
    let client_order_id = report
        .original_client_order_id
        .clone()
        .unwrap_or_else(|| report.client_order_id.clone());
    let symbol = Symbol::new(&report.symbol)
        .map_err(|_| ExecutionError::BadSymbol(report.symbol.clone()))?;
    let store_err = |source: StoreError| ExecutionError::Store {
        client_order_id: client_order_id.clone(),
        source,
    };
    // Immediate: the stored order is read and then updated; a deferred transaction's upgrade to
    // a write lock fails at once ("database is locked") if another connection wrote in between.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| store_err(e.into()))?;
    let Some(stored) = orders::get(&tx, &client_order_id).map_err(store_err)? else {
        return Ok(ExecutionApplied {
            client_order_id,
            symbol,
            order: OrderOutcome::NotOurs,
            fill_recorded: None,
        });
    };

    let order = if progress(report.cumulative_qty, report.status)
        > progress(stored.order.filled_quantity, stored.order.status)
    {
        let mut order = stored.order.clone();
        order.exchange_order_id = Some(report.order_id.to_string());
        order.status = report.status;
        order.filled_quantity = report.cumulative_qty;
        order.cumulative_quote = Quote::new(report.cumulative_quote);
        order.updated_at = now_ms;
        orders::update_from_exchange(&tx, &order, now_ms).map_err(store_err)?;
        OrderOutcome::Updated {
            status: report.status,
        }
    } else {
        OrderOutcome::Unchanged
    };

    let fill_recorded = match &report.fill {
        None => None,
        Some(fill) => {
            let row = trade_row(report, &client_order_id, &symbol, fill);
            Some(orders::insert_fill(&tx, stored.id, &row).map_err(store_err)?)
        }
    };
    tx.commit().map_err(|e| store_err(e.into()))?;
    Ok(ExecutionApplied {
        client_order_id,
        symbol,
        order,
        fill_recorded,
    })
}

/// How far along an order is: more filled, or the same filled and a later stage of its life.
fn progress(filled: Qty, status: OrderStatus) -> (Qty, u8) {
    let stage = match status {
        OrderStatus::PendingNew | OrderStatus::Unknown => 0,
        OrderStatus::New => 1,
        OrderStatus::PartiallyFilled | OrderStatus::PendingCancel => 2,
        OrderStatus::Filled
        | OrderStatus::Canceled
        | OrderStatus::Rejected
        | OrderStatus::Expired
        | OrderStatus::ExpiredInMatch => 3,
    };
    (filled, stage)
}

fn trade_row(
    report: &ExecutionReport,
    client_order_id: &str,
    symbol: &Symbol,
    fill: &ExecutionFill,
) -> Fill {
    Fill {
        client_order_id: client_order_id.to_owned(),
        trade_id: Some(fill.trade_id.to_string()),
        symbol: symbol.clone(),
        side: report.side,
        price: fill.price,
        quantity: fill.qty,
        fee: Quote::new(fill.commission),
        fee_asset: fill.commission_asset.clone().unwrap_or_default(),
        is_maker: fill.is_maker,
        time: report.transaction_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Price;
    use crate::domain::trading::order::{OrderRequest, OrderType, Side};
    use crate::store::{Store, positions};
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    fn request(cid: &str, side: Side) -> OrderRequest {
        OrderRequest {
            client_order_id: cid.into(),
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side,
            order_type: OrderType::Limit,
            quantity: Qty::new(dec!(1)),
            price: Some(Price::new(dec!(100))),
            stop_price: None,
            time_in_force: None,
            trailing_delta: None,
        }
    }

    struct Report {
        side: Side,
        execution: &'static str,
        status: OrderStatus,
        fill: Option<(i64, Decimal, Decimal, Decimal, &'static str)>,
        cumulative: (Decimal, Decimal),
    }

    fn report(cid: &str, r: Report) -> ExecutionReport {
        ExecutionReport {
            event_time: 10,
            symbol: "BTCUSDT".into(),
            client_order_id: cid.into(),
            original_client_order_id: None,
            side: r.side,
            order_type: "LIMIT".into(),
            execution_type: r.execution.into(),
            status: r.status,
            reject_reason: "NONE".into(),
            order_id: 555,
            order_qty: Qty::new(dec!(1)),
            order_price: Price::new(dec!(100)),
            fill: r
                .fill
                .map(|(trade_id, qty, price, fee, asset)| ExecutionFill {
                    trade_id,
                    qty: Qty::new(qty),
                    price: Price::new(price),
                    commission: fee,
                    commission_asset: Some(asset.into()),
                    is_maker: true,
                }),
            cumulative_qty: Qty::new(r.cumulative.0),
            cumulative_quote: r.cumulative.1,
            transaction_time: 9,
        }
    }

    /// `fill` is (quantity, price), `fee` is (commission, asset), `cumulative` is (z, Z).
    fn trade(
        side: Side,
        status: OrderStatus,
        id: i64,
        (qty, price): (Decimal, Decimal),
        (fee, asset): (Decimal, &'static str),
        cumulative: (Decimal, Decimal),
    ) -> Report {
        Report {
            side,
            execution: "TRADE",
            status,
            fill: Some((id, qty, price, fee, asset)),
            cumulative,
        }
    }

    #[test]
    fn fills_update_the_order_and_record_each_trade_once_without_moving_a_position() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let row = orders::insert_pending(c, &request("tm-1", Side::Buy), "live", 1).unwrap();
        let new = report(
            "tm-1",
            Report {
                side: Side::Buy,
                execution: "NEW",
                status: OrderStatus::New,
                fill: None,
                cumulative: (dec!(0), dec!(0)),
            },
        );
        let applied = apply_execution_report(c, &new, 2).unwrap();
        assert_eq!(
            applied.order,
            OrderOutcome::Updated {
                status: OrderStatus::New
            }
        );
        assert_eq!(applied.fill_recorded, None);

        // 0.4 @ 100, fee 0.04 USDT.
        let first = report(
            "tm-1",
            trade(
                Side::Buy,
                OrderStatus::PartiallyFilled,
                77,
                (dec!(0.4), dec!(100)),
                (dec!(0.04), "USDT"),
                (dec!(0.4), dec!(40)),
            ),
        );
        let applied = apply_execution_report(c, &first, 3).unwrap();
        assert_eq!(applied.fill_recorded, Some(true));
        // OrderUpdated and OrderFilled; the position is the trading service's to book.
        assert_eq!(applied.events(&first).len(), 2);

        // 0.6 @ 110, fee 0.0006 BTC = 0.066 USDT at the fill price.
        let second = report(
            "tm-1",
            trade(
                Side::Buy,
                OrderStatus::Filled,
                78,
                (dec!(0.6), dec!(110)),
                (dec!(0.0006), "BTC"),
                (dec!(1), dec!(106)),
            ),
        );
        apply_execution_report(c, &second, 4).unwrap();
        // Replaying the first fill changes nothing: the order is ahead, the trade is known.
        let replay = apply_execution_report(c, &first, 5).unwrap();
        assert_eq!(replay.order, OrderOutcome::Unchanged);
        assert_eq!(replay.fill_recorded, Some(false));
        assert!(replay.events(&first).is_empty());

        let order = orders::get(c, "tm-1").unwrap().unwrap().order;
        assert_eq!(order.status, OrderStatus::Filled);
        assert_eq!(order.filled_quantity, Qty::new(dec!(1)));
        assert_eq!(order.exchange_order_id.as_deref(), Some("555"));
        // (40 + 66) / 1 = 106
        assert_eq!(order.average_fill_price(), Some(Price::new(dec!(106))));
        assert_eq!(orders::fill_count(c, row).unwrap(), 2);
        assert!(positions::open_positions(c).unwrap().is_empty());
    }

    #[test]
    fn a_cancel_is_found_by_its_original_id_and_a_late_new_does_not_reopen_it() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        orders::insert_pending(c, &request("tm-9", Side::Buy), "live", 1).unwrap();
        let mut cancel = report(
            "cancel-req-1",
            Report {
                side: Side::Buy,
                execution: "CANCELED",
                status: OrderStatus::Canceled,
                fill: None,
                cumulative: (dec!(0), dec!(0)),
            },
        );
        cancel.original_client_order_id = Some("tm-9".into());
        let applied = apply_execution_report(c, &cancel, 2).unwrap();
        assert_eq!(applied.client_order_id, "tm-9");
        assert_eq!(
            applied.order,
            OrderOutcome::Updated {
                status: OrderStatus::Canceled
            }
        );
        let late_new = report(
            "tm-9",
            Report {
                side: Side::Buy,
                execution: "NEW",
                status: OrderStatus::New,
                fill: None,
                cumulative: (dec!(0), dec!(0)),
            },
        );
        assert_eq!(
            apply_execution_report(c, &late_new, 3).unwrap().order,
            OrderOutcome::Unchanged
        );
        assert_eq!(
            orders::get(c, "tm-9").unwrap().unwrap().order.status,
            OrderStatus::Canceled
        );
    }

    #[test]
    fn reports_for_orders_trademind_did_not_place_store_nothing() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let foreign = report(
            "web-123",
            trade(
                Side::Buy,
                OrderStatus::Filled,
                5,
                (dec!(1), dec!(100)),
                (dec!(0), "USDT"),
                (dec!(1), dec!(100)),
            ),
        );
        let applied = apply_execution_report(c, &foreign, 2).unwrap();
        assert_eq!(applied.order, OrderOutcome::NotOurs);
        assert!(applied.events(&foreign).is_empty());
        assert!(orders::all(c).unwrap().is_empty());
    }
}
