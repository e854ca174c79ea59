//! An `executionReport` from the user-data stream applied to the store in one transaction: the
//! order row moves forward (never back: a replayed or late report is recognised), the fill is
//! recorded once per trade id, and the first time a trade is recorded it moves the position
//! through `PositionService`. Because the position moves only when the trade row is new, a
//! report replayed after a reconnect, or seen again after a REST reconcile, changes nothing.

use rusqlite::Connection;

use crate::app::bus::Event;
use crate::domain::money::{Qty, Quote};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{Fill, OrderStatus, Side};
use crate::domain::trading::{FillEffect, PositionFill, PositionService, PositionSide};
use crate::services::exchange::paper::split_symbol;
use crate::services::market_stream::user_data::{ExecutionFill, ExecutionReport};
use crate::store::{StoreError, orders, positions};

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

/// What the report's fill did to the position (only for a newly recorded trade).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionOutcome {
    Changed {
        effect: FillEffect,
        quantity: Qty,
        realized_pnl: Quote,
        /// The commission was in neither the base nor the quote asset (BNB, usually), so the
        /// position's fees do not include it; the trade row keeps it in its own asset.
        fee_not_in_position: bool,
    },
    /// The fill could not be applied (a sell with no open position, an over-fill); the trade is
    /// stored and the reason explains why the position was left alone.
    Skipped { reason: String },
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
    pub position: Option<PositionOutcome>,
}

impl ExecutionApplied {
    /// Bus events for what changed: `OrderUpdated`, `OrderFilled` for a new trade, and
    /// `PositionChanged`. Nothing for a pure duplicate. The position is already updated in the
    /// store when these are published: listeners must not apply `OrderFilled` to it again.
    pub fn events(&self, report: &ExecutionReport) -> Vec<Event> {
        let mut events = Vec::new();
        if let OrderOutcome::Updated { status } = &self.order {
            events.push(Event::OrderUpdated {
                client_order_id: self.client_order_id.clone(),
                symbol: self.symbol.clone(),
                status: status.to_string(),
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
        if let Some(PositionOutcome::Changed {
            quantity,
            realized_pnl,
            ..
        }) = &self.position
        {
            events.push(Event::PositionChanged {
                symbol: self.symbol.clone(),
                quantity: quantity.to_string(),
                realized_pnl: *realized_pnl,
            });
        }
        events
    }
}

/// Apply one execution report to `orders`, `trades` and `positions`, atomically.
///
/// The order is found by client order id (for a cancel, the original id `C`). Its row only
/// moves forward: a report whose filled quantity and status are not ahead of the row's is
/// `Unchanged`. A fill is inserted once per trade id; only a newly inserted fill moves the
/// position (a buy opens or adds to a long, a sell reduces or closes it). Commission in the
/// quote asset counts as paid; in the base asset it is valued at the fill price.
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
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| store_err(e.into()))?;
    let Some(stored) = orders::get(&tx, &client_order_id).map_err(store_err)? else {
        return Ok(ExecutionApplied {
            client_order_id,
            symbol,
            order: OrderOutcome::NotOurs,
            fill_recorded: None,
            position: None,
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

    let (fill_recorded, position) = match &report.fill {
        None => (None, None),
        Some(fill) => {
            let row = trade_row(report, &client_order_id, &symbol, fill);
            let new = orders::insert_fill(&tx, stored.id, &row).map_err(store_err)?;
            let position = if new {
                let strategy = orders::strategy_of(&tx, stored.id).map_err(store_err)?;
                Some(
                    move_position(&tx, &stored.connection, strategy, &row, now_ms)
                        .map_err(store_err)?,
                )
            } else {
                None
            };
            (Some(new), position)
        }
    };
    tx.commit().map_err(|e| store_err(e.into()))?;
    Ok(ExecutionApplied {
        client_order_id,
        symbol,
        order,
        fill_recorded,
        position,
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

fn move_position(
    conn: &Connection,
    connection: &str,
    strategy_id: Option<i64>,
    fill: &Fill,
    now_ms: i64,
) -> Result<PositionOutcome, StoreError> {
    let symbol = &fill.symbol;
    let (position_fill, fee_not_in_position) = match split_symbol(symbol.as_str()) {
        Some((base, quote)) => PositionFill::from_fill(fill, &base, &quote),
        None => PositionFill::from_fill(fill, "", ""),
    };
    let skipped = |reason: String| Ok(PositionOutcome::Skipped { reason });
    let changed = |effect, p: &crate::domain::trading::Position| PositionOutcome::Changed {
        effect,
        quantity: p.quantity,
        realized_pnl: p.realized_pnl,
        fee_not_in_position,
    };
    match positions::open_position(conn, connection, symbol.as_str())? {
        None if fill.side == Side::Buy => {
            match PositionService::open(&position_fill, PositionSide::Long) {
                Ok(position) => {
                    positions::insert(conn, connection, strategy_id, &position, now_ms)?;
                    Ok(changed(FillEffect::Opened, &position))
                }
                Err(e) => skipped(e.to_string()),
            }
        }
        None => skipped(format!(
            "a sell of {} {symbol} with no open position (holdings bought outside TradeMind)",
            fill.quantity
        )),
        Some(row) => {
            let mut position = row.position;
            match PositionService::apply(&mut position, &position_fill) {
                Ok(effect) => {
                    positions::update(conn, row.id, &position, now_ms)?;
                    Ok(changed(effect, &position))
                }
                Err(e) => skipped(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Price;
    use crate::domain::trading::order::{OrderRequest, OrderType};
    use crate::store::Store;
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
    fn fills_update_the_order_record_trades_and_open_then_add_to_the_position_once() {
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
        assert_eq!(
            applied.position,
            Some(PositionOutcome::Changed {
                effect: FillEffect::Opened,
                quantity: Qty::new(dec!(0.4)),
                realized_pnl: Quote::new(dec!(-0.04)),
                fee_not_in_position: false,
            })
        );
        assert_eq!(applied.events(&first).len(), 3);

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
        assert_eq!(replay.position, None);
        assert!(replay.events(&first).is_empty());

        let order = orders::get(c, "tm-1").unwrap().unwrap().order;
        assert_eq!(order.status, OrderStatus::Filled);
        assert_eq!(order.filled_quantity, Qty::new(dec!(1)));
        assert_eq!(order.exchange_order_id.as_deref(), Some("555"));
        // (40 + 66) / 1 = 106
        assert_eq!(order.average_fill_price(), Some(Price::new(dec!(106))));
        assert_eq!(orders::fill_count(c, row).unwrap(), 2);
        let position = positions::open_position(c, "live", "BTCUSDT")
            .unwrap()
            .unwrap()
            .position;
        // The 0.0006 BTC fee is not held: 0.4 + 0.6 − 0.0006 = 0.9994.
        assert_eq!(position.quantity, Qty::new(dec!(0.9994)));
        // Cost of what is held: 0.4×100 + 0.5994×110 = 40 + 65.934 = 105.934 (the fee's
        // 0.066 counts in fees, not in the entry price); fees 0.04 + 0.066 = 0.106.
        assert_eq!(
            (position.entry_price.get() * position.quantity.get()).round_dp(6),
            dec!(105.934)
        );
        assert_eq!(position.fees_paid, Quote::new(dec!(0.106)));
        assert_eq!(position.realized_pnl, Quote::new(dec!(-0.106)));
    }

    #[test]
    fn a_sell_fill_closes_the_position_and_realises_pnl_net_of_fees() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        orders::insert_pending(c, &request("buy", Side::Buy), "live", 1).unwrap();
        orders::insert_pending(c, &request("sell", Side::Sell), "live", 1).unwrap();
        apply_execution_report(
            c,
            &report(
                "buy",
                trade(
                    Side::Buy,
                    OrderStatus::Filled,
                    1,
                    (dec!(1), dec!(100)),
                    (dec!(0), "USDT"),
                    (dec!(1), dec!(100)),
                ),
            ),
            2,
        )
        .unwrap();
        let applied = apply_execution_report(
            c,
            &report(
                "sell",
                trade(
                    Side::Sell,
                    OrderStatus::Filled,
                    2,
                    (dec!(1), dec!(120)),
                    (dec!(0.12), "USDT"),
                    (dec!(1), dec!(120)),
                ),
            ),
            3,
        )
        .unwrap();
        // (120 − 100) × 1 − 0.12 = 19.88
        assert_eq!(
            applied.position,
            Some(PositionOutcome::Changed {
                effect: FillEffect::Closed {
                    realized: Quote::new(dec!(19.88))
                },
                quantity: Qty::ZERO,
                realized_pnl: Quote::new(dec!(19.88)),
                fee_not_in_position: false,
            })
        );
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
    fn unknown_orders_and_sells_without_a_position_store_no_position() {
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

        orders::insert_pending(c, &request("s", Side::Sell), "live", 1).unwrap();
        let sell = report(
            "s",
            trade(
                Side::Sell,
                OrderStatus::Filled,
                6,
                (dec!(1), dec!(100)),
                (dec!(0.1), "BNB"),
                (dec!(1), dec!(100)),
            ),
        );
        let applied = apply_execution_report(c, &sell, 3).unwrap();
        assert_eq!(applied.fill_recorded, Some(true));
        assert!(matches!(
            applied.position,
            Some(PositionOutcome::Skipped { ref reason }) if reason.contains("no open position")
        ));
        assert!(positions::open_positions(c).unwrap().is_empty());
    }
}
