//! Exits: a position closed at market (its protection taken down first), one order
//! cancelled, and the bookkeeping of exit fills.

use super::settle::position_fill;
use super::{ExecutionOutcome, ExecutionReport, MonitorReport, TradingError, TradingService};
use crate::domain::money::Quote;
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::OrderPurpose;
use crate::domain::trading::order::{Fill, Order, OrderRequest, OrderStatus, OrderType, Side};
use crate::domain::trading::plan::book_exit;
use crate::domain::trading::{Position, PositionFill, SymbolFilters};
use crate::services::exchange::{Exchange, ExchangeError};
use crate::store::orders::{self, OrderLinks, StoredOrder};
use crate::store::positions::{self, PositionRow};

impl<E: Exchange + 'static> TradingService<E> {
    /// Cancel the open protection legs of a position. `Some(realised PnL)` when a leg had
    /// already filled: the position was closed by it (and booked) instead.
    pub(super) async fn cancel_protection(
        &self,
        position_id: i64,
        symbol: &Symbol,
        now_ms: i64,
    ) -> Result<Option<Quote>, TradingError> {
        let legs: Vec<StoredOrder> = {
            let db = self.store()?;
            orders::of_position(db.conn(), position_id)?
                .into_iter()
                .filter(|o| o.purpose.is_protection() && o.order.status.is_open())
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
                Ok(order) => {
                    tracing::info!(client_order_id = %cid, %symbol, position_id,
                        status = %order.status, "protection order cancelled");
                    self.settle_row(&order, now_ms)?
                }
                Err(ExchangeError::UnknownOrder { .. }) => {
                    let order = self.deps.exchange.query_order(symbol, cid).await?;
                    self.settle_row(&order, now_ms)?;
                    if order.status == OrderStatus::Filled {
                        // The protection beat us to it: book that fill instead of selling again.
                        let mut m = MonitorReport::default();
                        self.check_protection_of(symbol, &mut m, None, now_ms)
                            .await?;
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
    /// The caller holds the symbol's trading lock, so a protection fill booked by the monitor
    /// or the user-data stream cannot interleave; `row` may be stale (read before the lock), so
    /// the position is read again once its protection is gone, and what is sold is what is
    /// still open. A position a stop or target has already closed is not sold a second time
    /// (that would sell other holdings of the asset).
    pub(super) async fn close_row(
        &self,
        row: PositionRow,
        report: &mut ExecutionReport,
        now_ms: i64,
    ) -> Result<Quote, TradingError> {
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
            report.outcome = ExecutionOutcome::AlreadyClosed;
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
            trailing_delta: None,
        };
        self.guard()?;
        report.order_ids.push(request.client_order_id.clone());
        let placed = self
            .executor
            .place_linked(
                &request,
                &OrderLinks {
                    purpose: OrderPurpose::Exit,
                    position_id: Some(row.id),
                    strategy_id: row.strategy_id,
                    ..OrderLinks::default()
                },
                now_ms,
            )
            .await?;
        tracing::info!(client_order_id = %request.client_order_id, %symbol, side = "SELL",
            order_type = "MARKET", quantity = %request.quantity, status = %placed.order.status,
            "exit order sent");
        self.publish_order(&placed.order);
        let (fills, to_store) = self.fills_of(&placed.order, placed.fills).await?;
        let order_row = self.store_fills(&request.client_order_id, &fills, to_store)?;
        let (_, realised) =
            self.book_exit_fills(row.id, row.position, &fills, order_row, &filters, now_ms)?;
        tracing::info!(%symbol, position_id = row.id, client_order_id = %request.client_order_id,
            quantity = %request.quantity, realized_pnl = %realised, "position closed at market");
        report.outcome = ExecutionOutcome::Executed;
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
    pub(super) fn book_exit_fills(
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

    /// Store what the exchange says about an order and publish it.
    pub(super) fn settle_row(&self, order: &Order, now_ms: i64) -> Result<(), TradingError> {
        {
            let db = self.store()?;
            orders::update_from_exchange(db.conn(), order, now_ms)?;
        }
        self.publish_order(order);
        Ok(())
    }

    /// Query the other legs of `leg`'s order list and store their state (the exchange expires
    /// or cancels them with the leg).
    pub(super) async fn settle_list_siblings(
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

    /// Store an order's fills (when `to_store`: fills read back from the database are not
    /// stored again); returns the order's row id.
    pub(super) fn store_fills(
        &self,
        client_order_id: &str,
        fills: &[Fill],
        to_store: bool,
    ) -> Result<Option<i64>, TradingError> {
        let db = self.store()?;
        let Some(row) = orders::get(db.conn(), client_order_id)? else {
            return Ok(None);
        };
        if to_store {
            orders::insert_fills(db.conn(), row.id, fills)?;
        }
        Ok(Some(row.id))
    }

    /// Close one book's open position in `symbol` at market (its protection cancelled first):
    /// `book` names it (a strategy, `Some(None)` the default book); `None` closes the only
    /// open position in `symbol`, and refuses when several books hold one. Only that book's
    /// quantity is sold.
    pub async fn close_position(
        &self,
        symbol: &Symbol,
        book: Option<positions::BookId>,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        let row = {
            let db = self.store()?;
            let c = db.conn();
            match book {
                Some(book) => {
                    positions::open_position(c, &self.deps.connection, symbol.as_str(), book)?
                }
                None => {
                    let mut open =
                        positions::open_in_symbol(c, &self.deps.connection, symbol.as_str())?;
                    if open.len() > 1 {
                        return Err(TradingError::SeveralBooks {
                            symbol: symbol.clone(),
                            books: open
                                .iter()
                                .map(|r| r.book().to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                    open.pop()
                }
            }
        }
        .ok_or_else(|| TradingError::NoPosition(symbol.clone()))?;
        self.guard()?;
        let _step = self.lock_symbol(symbol).await?;
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
        // Not while another step on the symbol (a fill of this order being booked) runs.
        let _step = self.lock_symbol(&stored.order.symbol).await?;
        let order = self
            .deps
            .exchange
            .cancel_order(&stored.order.symbol, client_order_id)
            .await?;
        tracing::info!(%client_order_id, symbol = %stored.order.symbol, status = %order.status,
            "order cancelled");
        self.settle_row(&order, now_ms)?;
        self.settle_list_siblings(&stored, now_ms).await?;
        if stored.purpose.is_protection() && order.status == OrderStatus::Canceled {
            // A person took this protection down: it stays down until `trademind protect`.
            // Every leg of its list is marked, whichever of them is the position's latest.
            let legs: Vec<String> = {
                let db = self.store()?;
                match stored.position_id {
                    Some(pid) => orders::of_position(db.conn(), pid)?
                        .into_iter()
                        .filter(|o| {
                            o.order.client_order_id == client_order_id
                                || (o.order_list_id.is_some()
                                    && o.order_list_id == stored.order_list_id
                                    && o.order.status == OrderStatus::Canceled)
                        })
                        .map(|o| o.order.client_order_id)
                        .collect(),
                    None => vec![client_order_id.to_string()],
                }
            };
            for cid in legs {
                self.mark_withdrawn(&cid, now_ms)?;
            }
        }
        Ok(order)
    }
}
