//! Protection legs followed to their end: the REST `monitor_orders` pass and the user-data
//! stream book a filled stop or target the same way (siblings settled, the position closed with
//! its realised PnL, one alert, the breaker fed), each under the symbol's trading lock. A
//! position whose strategy asks for a break-even move has its stop moved here too.

use super::{
    ClosedByExchange, ExecutionReport, MonitorReport, ProtectionLeg, ReconcileReport, TradingError,
    TradingService,
};
use crate::domain::backtest::fills::break_even_stop;
use crate::domain::backtest::strategies::{self, break_even_of, time_exit_of};
use crate::domain::market::candle::Interval;
use crate::domain::money::Qty;
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::OrderPurpose;
use crate::domain::trading::order::{Fill, Order, OrderStatus};
use crate::domain::trading::scale_out;
use crate::services::exchange::{Exchange, ExchangeError};
use crate::services::market_stream::user_data::{
    ExecutionReport as StreamExecution, OrderOutcome, apply_execution_report,
};
use crate::services::notification::AlertKind;
use crate::store::orders::{self, StoredOrder};
use crate::store::positions;

impl<E: Exchange + 'static> TradingService<E> {
    /// Query every open protection leg of `symbol` (the caller holds its trading lock); a
    /// FILLED one closes its position with the realised PnL net of fees and alerts; one the
    /// exchange does not know is marked.
    pub(super) async fn check_protection_of(
        &self,
        symbol: &Symbol,
        monitor: &mut MonitorReport,
        mut reconcile: Option<&mut ReconcileReport>,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let legs = {
            let db = self.store()?;
            orders::open_protection_in(db.conn(), &self.deps.connection, Some(symbol.as_str()))?
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
            if order.status == OrderStatus::Canceled {
                // Our own steps record their cancels before this pass can query: a leg still
                // open here was cancelled by a person, who is not overruled (see `protect`).
                self.mark_withdrawn(&cid, now_ms)?;
            }
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
    pub(super) async fn book_protection_fill(
        &self,
        leg: &StoredOrder,
        order: &Order,
        given: Vec<Fill>,
        now_ms: i64,
    ) -> Result<Option<ClosedByExchange>, TradingError> {
        self.settle_list_siblings(leg, now_ms).await?;
        let (fills, to_store) = self.fills_of(order, given).await?;
        let order_row = self.store_fills(&order.client_order_id, &fills, to_store)?;
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
        let (mut position, realised) =
            self.book_exit_fills(pid, row.position, &fills, order_row, &filters, now_ms)?;
        let exit_price = order.average_fill_price().unwrap_or(position.entry_price);
        if position.closed_at.is_none() {
            return self
                .book_scale_out_part(leg, order, &mut position, realised, now_ms)
                .await;
        }
        let (leg_name, what) = if leg.purpose == OrderPurpose::TakeProfit {
            (ProtectionLeg::TakeProfit, "target hit")
        } else {
            (ProtectionLeg::StopLoss, "stop hit")
        };
        tracing::info!(symbol = %position.symbol, position_id = pid,
            client_order_id = %order.client_order_id, quantity = %order.filled_quantity,
            %exit_price, realized_pnl = %realised, position_realized_pnl = %position.realized_pnl,
            "{what}: position closed");
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
            leg: leg_name,
            client_order_id: order.client_order_id.clone(),
            exit_price,
            realized_pnl: position.realized_pnl,
        }))
    }

    /// A protection leg sold part of its position (a scale-out's part, at its target or its
    /// stop): the rest stays open under its own stop. Either way the position has no target
    /// left — after its stop the first target went with the part it was for — so protecting
    /// the rest again never splits it a second time (an OCO at the old target, which the
    /// exchange may refuse with the price at the stop, closing the rest at market).
    async fn book_scale_out_part(
        &self,
        leg: &StoredOrder,
        order: &Order,
        position: &mut crate::domain::trading::Position,
        realised: crate::domain::money::Quote,
        now_ms: i64,
    ) -> Result<Option<ClosedByExchange>, TradingError> {
        let Some(pid) = leg.position_id else {
            return Ok(None);
        };
        position.take_profit = None;
        {
            let db = self.store()?;
            positions::update(db.conn(), pid, position, now_ms)?;
        }
        let what = if leg.purpose == OrderPurpose::TakeProfit {
            "first target hit"
        } else {
            "stop hit on the scale-out's part"
        };
        let exit_price = order.average_fill_price().unwrap_or(position.entry_price);
        tracing::info!(symbol = %position.symbol, position_id = pid,
            client_order_id = %order.client_order_id, quantity = %order.filled_quantity,
            %exit_price, realized_pnl = %realised, left = %position.quantity,
            "{what}: part of the position sold");
        self.publish_position(position);
        self.alert(
            AlertKind::StopOrTargetHit,
            format!("stop_or_target_hit/{}", order.client_order_id),
            format!("TradeMind: {what} on {}", position.symbol),
            format!(
                "{what}: {} {} sold at {exit_price} (realised {realised}); {} kept under its stop",
                order.filled_quantity, position.symbol, position.quantity
            ),
            now_ms,
        )
        .await;
        Ok(None)
    }

    /// monitor_orders: for each symbol with trading work, under its lock: protection legs
    /// followed, then the settle step (lost answers resolved, filled entries booked, open
    /// positions protected); then the breaker is fed. A symbol that fails is logged and left
    /// for the next pass; the others go on.
    pub async fn monitor_orders(&self, now_ms: i64) -> Result<MonitorReport, TradingError> {
        let mut report = MonitorReport::default();
        let symbols = {
            let db = self.store()?;
            orders::symbols_with_work(db.conn(), &self.deps.connection)?
        };
        let mut first_error = None;
        for raw in symbols {
            let Ok(symbol) = Symbol::new(&raw) else {
                continue;
            };
            let _step = self.lock_symbol(&symbol).await?;
            let checked = self
                .check_protection_of(&symbol, &mut report, None, now_ms)
                .await;
            // Resting limit entries: their parts filled are booked and protected by the settle
            // step right after; one past its time-out is cancelled first.
            let checked = match checked {
                Ok(()) => self
                    .follow_resting_entries(&symbol, now_ms)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            let settled = match checked {
                Ok(()) => self.settle_symbol(&symbol, now_ms).await,
                Err(e) => Err(e),
            };
            let settled = match settled {
                Ok(s) => self.move_to_break_even(&symbol, now_ms).await.map(|()| s),
                Err(e) => Err(e),
            };
            let settled = match settled {
                Ok(s) => self.time_exit(&symbol, now_ms).await.map(|()| s),
                Err(e) => Err(e),
            };
            match settled {
                Ok(s) => {
                    report.settled.extend(s.resolved);
                    report.settled.extend(
                        s.booked
                            .iter()
                            .map(|b| format!("entry {} booked", b.client_order_id)),
                    );
                }
                Err(e) => {
                    tracing::warn!(%symbol, error = %e, "monitor_orders: symbol not settled; retried next pass");
                    first_error.get_or_insert(e);
                }
            }
        }
        report.breaker = self.evaluate_breaker(now_ms).await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The break-even move (issue #19) of `symbol`'s open position, when its strategy has
    /// `breakeven_r`: once the last price (at the pass right after a candle closes: that close)
    /// reaches entry + N·R, the protection is cancelled, the stop set to entry + fees
    /// ([`break_even_stop`], rounded up to the tick) and the position protected again, exactly
    /// as the backtest moves it. Once moved the stop is at or over the entry, so it moves once.
    async fn move_to_break_even(&self, symbol: &Symbol, now_ms: i64) -> Result<(), TradingError> {
        for row in self.open_books_in(symbol)? {
            self.move_book_to_break_even(symbol, row, now_ms).await?;
        }
        Ok(())
    }

    /// Every book's open position in `symbol` (each strategy's own, issue #19).
    fn open_books_in(&self, symbol: &Symbol) -> Result<Vec<positions::PositionRow>, TradingError> {
        let db = self.store()?;
        Ok(positions::open_in_symbol(
            db.conn(),
            &self.deps.connection,
            symbol.as_str(),
        )?)
    }

    /// [`Self::move_to_break_even`] for one book's position; a scale-out's rest (no trailing
    /// stop) moves to break-even at the first pass after its part sold, as the backtest moves
    /// it at that close ([`scale_out::rest_break_even_stop`]).
    async fn move_book_to_break_even(
        &self,
        symbol: &Symbol,
        row: positions::PositionRow,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let parameters = self.strategy_parameters(row.strategy_id)?;
        let Some(stop) = row.position.stop_loss else {
            return Ok(());
        };
        let fee_rate = self.deps.settings.risk.fee_rate;
        let entry = row.position.entry_price;
        let rest_moves = parameters.as_ref().is_some_and(|p| {
            strategies::scale_out_of(p).is_some() && strategies::trailing_of(p).is_none()
        }) && self.part_sold_at_target(row.id)?;
        let level = if rest_moves {
            let last = self.deps.exchange.ticker_price(symbol).await?;
            let filters = self.deps.exchange.symbol_filters(symbol).await?;
            scale_out::rest_break_even_stop(entry, stop, fee_rate, last, &filters)
                .map(|level| (level, last))
        } else {
            None
        };
        let level = match (level, parameters.as_ref().and_then(break_even_of)) {
            (Some(found), _) => found,
            (None, Some(r_multiple)) if stop < entry => {
                let last = self.deps.exchange.ticker_price(symbol).await?;
                let Some(level) = break_even_stop(entry, stop, r_multiple, fee_rate, last) else {
                    return Ok(());
                };
                let filters = self.deps.exchange.symbol_filters(symbol).await?;
                (filters.round_price_up(level).max(stop), last)
            }
            _ => return Ok(()),
        };
        let (level, last) = level;
        if self
            .cancel_protection(row.id, symbol, now_ms)
            .await?
            .is_some()
        {
            return Ok(()); // a leg filled meanwhile and closed the position
        }
        let mut position = row.position.clone();
        position.stop_loss = Some(level);
        {
            let db = self.store()?;
            positions::update(db.conn(), row.id, &position, now_ms)?;
        }
        tracing::info!(%symbol, %entry, from = %stop, to = %level, %last, "stop moved to break-even");
        let mut row = row;
        row.position = position;
        self.ensure_protected(row, now_ms).await?;
        Ok(())
    }

    /// Whether a take-profit leg of position `id` has filled while the position stays open:
    /// a scale-out's part sold at its target.
    fn part_sold_at_target(&self, id: i64) -> Result<bool, TradingError> {
        let db = self.store()?;
        Ok(orders::of_position(db.conn(), id)?.iter().any(|o| {
            o.purpose == OrderPurpose::TakeProfit && o.order.status == OrderStatus::Filled
        }))
    }

    /// The time exit (issue #19) of `symbol`'s open position, when its strategy has
    /// `time_exit_candles = N`: at the pass after the Nth candle since the entry closed, the
    /// position is sold at market (protection cancelled first), as the backtest sells it at
    /// that close. Candles are counted in the strategy's interval from the position's opening,
    /// rounded to the nearest, so a fill a few milliseconds after the cycle does not make it
    /// one candle late.
    async fn time_exit(&self, symbol: &Symbol, now_ms: i64) -> Result<(), TradingError> {
        for row in self.open_books_in(symbol)? {
            self.time_exit_book(symbol, row, now_ms).await?;
        }
        Ok(())
    }

    /// [`Self::time_exit`] for one book's position.
    async fn time_exit_book(
        &self,
        symbol: &Symbol,
        row: positions::PositionRow,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let Some(id) = row.strategy_id else {
            return Ok(());
        };
        let strategy = {
            let db = self.store()?;
            crate::store::strategies::list_strategies(db.conn())?
                .into_iter()
                .find(|s| s.id == id)
        };
        let Some((n, interval)) = strategy.and_then(|s| {
            Some((
                time_exit_of(&s.parameters)?,
                s.interval.parse::<Interval>().ok()?,
            ))
        }) else {
            return Ok(());
        };
        let step = interval.millis();
        let held = (now_ms - row.position.opened_at + step / 2) / step;
        if held < i64::from(n) {
            return Ok(());
        }
        let mut report = ExecutionReport {
            position_id: Some(row.id),
            ..ExecutionReport::new(symbol, "TIME_EXIT")
        };
        self.close_row(row, &mut report, now_ms).await?;
        tracing::info!(%symbol, candles = held, "time exit: position sold");
        Ok(())
    }

    /// An execution report from the user-data stream. The order and trade rows move forward
    /// (`apply_execution_report`, once per trade id); a protection leg that has now FILLED is
    /// booked exactly as `monitor_orders` books it (siblings settled, position closed with its
    /// realised PnL, one alert, the breaker fed), from the fills the stream delivered. A filled
    /// entry goes through the settle step (booked and protected once, whichever path is first).
    /// A later monitor pass finds the leg settled and books nothing more.
    pub async fn book_stream_execution(
        &self,
        report: &StreamExecution,
        now_ms: i64,
    ) -> Result<Option<ClosedByExchange>, TradingError> {
        let Ok(symbol) = Symbol::new(&report.symbol) else {
            tracing::warn!(symbol = %report.symbol, "execution report for an unknown symbol");
            return Ok(None);
        };
        let _step = self.lock_symbol(&symbol).await?;
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
        let filled = applied.order
            == (OrderOutcome::Updated {
                status: OrderStatus::Filled,
            });
        // An entry with an executed part not booked yet (this report — a limit entry's part
        // fill too —, or one whose own step failed to book it) goes through the settle step.
        if leg
            .as_ref()
            .is_some_and(|l| l.unbooked_quantity().is_positive())
        {
            self.settle_symbol(&symbol, now_ms).await?;
            return Ok(None);
        }
        let Some(leg) = leg.filter(|l| filled && ProtectionLeg::of_purpose(l.purpose).is_some())
        else {
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
}
