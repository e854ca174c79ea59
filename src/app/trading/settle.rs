//! The one step that brings a symbol's account in line after any order: orders whose outcome
//! was lost are resolved by query, every filled entry is booked into its position (once: the
//! fills, the position and the order's link are written in one transaction) into the position
//! of its strategy's book, and every book's open position in the symbol is protected on the
//! exchange for exactly its own sellable quantity, from the stop and target stored with the
//! entry before it was sent.
//!
//! Whatever path learns of a fill — the entry's own reply, a status query, `monitor_orders`,
//! the user-data stream, start-up reconciliation after a crash — calls this same step under the
//! symbol's trading lock. Until it has finished, the symbol takes no new entry: a step that
//! failed half-way (a 503 on the trade list, a full disk) is retried by the next one instead of
//! leaving a fill untracked and unprotected.

use crate::domain::trading::order::OrderPurpose;
use rust_decimal::Decimal;

use super::{ClosedByExchange, ExecutionOutcome, ProtectionLeg, TradingError, TradingService};
use crate::domain::backtest::strategies;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::TrailingDelta;
use crate::domain::trading::order::{
    Fill, OrderRequest, OrderStatus, OrderType, Side, TimeInForce,
};
use crate::domain::trading::plan::{ProtectionNeed, protection_need, sellable_part};
use crate::domain::trading::scale_out::{self, Split};
use crate::domain::trading::{
    Position, PositionFill, PositionService, PositionSide, SymbolFilters,
};
use crate::services::exchange::{Exchange, ExchangeError, OcoRequest};
use crate::services::notification::AlertKind;
use crate::store::orders::{self, OrderLinks, StoredOrder};
use crate::store::{self, positions};

/// An entry booked by a settle step.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BookedEntry {
    pub client_order_id: String,
    pub position_id: i64,
    /// What this entry added to the position (after a fee in the base asset).
    pub bought: Qty,
    pub price: Option<Price>,
}

/// What happened to the open position's protection.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Protection {
    /// No open position (closed meanwhile).
    NotNeeded,
    /// The whole position is dust the exchange will not sell (under one lot step, `minQty` or
    /// the minimum notional): nothing can protect it, and nothing needs to.
    Dust { quantity: Qty },
    /// Already covered by an open stop for the whole sellable quantity.
    InPlace,
    /// Placed now: the client ids sent; `replaced` when an open stop for another quantity (an
    /// add, a partial fill) was taken down first; `note` says what was not done as asked (a
    /// scale-out kept whole because the exchange would refuse its part or rest).
    Placed {
        ids: Vec<String>,
        replaced: bool,
        note: Option<String>,
    },
    /// No stop level is known: a person must protect or close it.
    NoStopLevel,
    /// Its protection was cancelled outside TradeMind (on the exchange, or a leg cancelled by
    /// `trademind cancel`): a person took it down on purpose, so it is not put back behind
    /// their back; `trademind protect` puts it back (see `protect`).
    Withdrawn,
    /// Could not be placed; the position was closed at market (`closed` is the close's
    /// outcome, an error text when that failed too).
    Failed {
        error: String,
        closed: Result<Quote, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Settled {
    pub booked: Vec<BookedEntry>,
    /// Each book's open position in the symbol (by position id) and its protection.
    pub protections: Vec<(i64, Protection)>,
    /// Orders whose lost outcome is now known.
    pub resolved: Vec<String>,
    /// Positions closed by a protection leg whose lost answer turned out filled.
    pub closed: Vec<ClosedByExchange>,
}

/// A fill as the position sees it (`PositionFill::from_fill`); a fee in a third asset is
/// logged, since it is not booked in quote.
pub(super) fn position_fill(fill: &Fill, filters: &SymbolFilters) -> PositionFill {
    let (position_fill, third_asset) =
        PositionFill::from_fill(fill, &filters.base_asset, &filters.quote_asset);
    if third_asset {
        tracing::warn!(asset = %fill.fee_asset, "fee paid in a third asset is not booked in PnL");
    }
    position_fill
}

impl<E: Exchange + 'static> TradingService<E> {
    /// Settle `symbol` (the caller holds its trading lock): resolve, book, protect. An error
    /// leaves the symbol blocked for entries; the next step on it tries again.
    pub(super) async fn settle_symbol(
        &self,
        symbol: &Symbol,
        now_ms: i64,
    ) -> Result<Settled, TradingError> {
        let mut resolved = Vec::new();
        let mut closed = Vec::new();
        for o in self.executor.reconcile_symbol(Some(symbol), now_ms).await? {
            self.publish_order(&o);
            resolved.push(format!(
                "order {} ({} {}) is {} on the exchange",
                o.client_order_id, o.side, o.symbol, o.status
            ));
            // A protection leg whose answer was lost may turn out filled: book its close.
            let leg = {
                let db = self.store()?;
                orders::get(db.conn(), &o.client_order_id)?
            };
            if let Some(leg) = leg.filter(|l| {
                o.status == OrderStatus::Filled && ProtectionLeg::of_purpose(l.purpose).is_some()
            }) && let Some(c) = self
                .book_protection_fill(&leg, &o, Vec::new(), now_ms)
                .await?
            {
                closed.push(c);
            }
        }
        let unbooked = {
            let db = self.store()?;
            orders::unbooked_entries_in(db.conn(), &self.deps.connection, Some(symbol.as_str()))?
        };
        let mut booked = Vec::new();
        for entry in unbooked {
            if let Some(b) = self.book_entry_order(&entry, now_ms).await? {
                booked.push(b);
            }
        }
        let protections = self.ensure_all_protected(symbol, now_ms).await?;
        Ok(Settled {
            booked,
            protections,
            resolved,
            closed,
        })
    }

    /// Why `symbol` cannot take a new entry yet, if anything: orders whose outcome is still
    /// unknown, or filled entries not booked.
    pub(super) fn unsettled(&self, symbol: &Symbol) -> Result<Option<String>, TradingError> {
        let db = self.store()?;
        let c = db.conn();
        let pending = orders::unresolved_in(c, &self.deps.connection, Some(symbol.as_str()))?;
        let unbooked =
            orders::unbooked_entries_in(c, &self.deps.connection, Some(symbol.as_str()))?;
        let ids: Vec<String> = pending
            .iter()
            .map(|o| format!("{} is {}", o.order.client_order_id, o.order.status))
            .chain(
                unbooked
                    .iter()
                    .map(|o| format!("{} filled but is not booked", o.order.client_order_id)),
            )
            .collect();
        Ok((!ids.is_empty()).then(|| ids.join("; ")))
    }

    /// The fills of an order: those stored for it when they add up to what it filled (the
    /// placement's reply or the stream stored them), else the exchange's trade list. An
    /// exchange that reports a fill but no trades gets one synthetic fill at the average price,
    /// fee unknown (zero). The flag says whether the fills still need storing.
    pub(super) async fn fills_of(
        &self,
        order: &crate::domain::trading::Order,
        given: Vec<Fill>,
    ) -> Result<(Vec<Fill>, bool), TradingError> {
        if !given.is_empty() || order.filled_quantity.is_zero() {
            return Ok((given, true));
        }
        let stored = {
            let db = self.store()?;
            match orders::get(db.conn(), &order.client_order_id)? {
                Some(row) => orders::fills_of_order(db.conn(), row.id)?,
                None => Vec::new(),
            }
        };
        let stored_qty: Qty = stored.iter().map(|f| f.quantity).sum();
        if !stored.is_empty() && stored_qty == order.filled_quantity {
            return Ok((stored, false));
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
            return Ok((mine, true));
        }
        let synthetic = order.average_fill_price().map(|price| Fill {
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
        });
        Ok((synthetic.into_iter().collect(), stored.is_empty()))
    }

    /// Book the executed part of an entry not booked yet (all of a market entry; each new part
    /// of a limit entry that fills in parts): its fills, the position (added to or opened, with
    /// the stop and target stored with the entry), the order's link to it and the quantity now
    /// booked, in one transaction, so a crash leaves either all or nothing and a second pass
    /// finds it booked.
    async fn book_entry_order(
        &self,
        entry: &StoredOrder,
        now_ms: i64,
    ) -> Result<Option<BookedEntry>, TradingError> {
        let order = &entry.order;
        let filters = self.deps.exchange.symbol_filters(&order.symbol).await?;
        let (fills, to_store) = self.fills_of(order, Vec::new()).await?;
        let new_fills = super::resting_entry::unbooked_fills(&fills, entry.booked_quantity);
        let pfills: Vec<PositionFill> = new_fills
            .iter()
            .map(|f| position_fill(f, &filters))
            .collect();
        let Some(first) = pfills.first() else {
            return Ok(None);
        };
        let bought: Qty = pfills.iter().map(|f| f.quantity).sum();
        let booked_now: Qty = entry.booked_quantity + new_fills.iter().map(|f| f.quantity).sum();
        let connection = self.deps.connection.clone();
        let booked = {
            let db = self.store()?;
            store::write_tx::<_, store::StoreError>(db.conn(), |c| {
                let Some(row) = orders::get(c, &order.client_order_id)? else {
                    return Ok(None);
                };
                if row.booked_quantity != entry.booked_quantity {
                    return Ok(None); // booked by another path meanwhile
                }
                if to_store {
                    orders::insert_fills(c, row.id, &fills)?;
                }
                let stop = entry.protect_stop;
                let target = entry.protect_target;
                // The entry's own strategy's book: another strategy's position in the symbol is
                // never added to.
                let open = positions::open_position(
                    c,
                    &connection,
                    order.symbol.as_str(),
                    entry.strategy_id,
                )?;
                let (id, position) = match open {
                    Some(mut p) => {
                        for f in &pfills {
                            PositionService::apply(&mut p.position, f).map_err(position_err)?;
                        }
                        p.position.stop_loss = stop.or(p.position.stop_loss);
                        p.position.take_profit = target.or(p.position.take_profit);
                        positions::update(c, p.id, &p.position, now_ms)?;
                        (p.id, p.position)
                    }
                    None => {
                        let mut p = PositionService::open(first, PositionSide::Long)
                            .map_err(position_err)?;
                        for f in &pfills[1..] {
                            PositionService::apply(&mut p, f).map_err(position_err)?;
                        }
                        p.stop_loss = stop;
                        p.take_profit = target;
                        let id = positions::insert(c, &connection, entry.strategy_id, &p, now_ms)?;
                        (id, p)
                    }
                };
                orders::link(c, &order.client_order_id, Some(id), None)?;
                orders::set_booked(c, &order.client_order_id, booked_now)?;
                Ok(Some((id, position)))
            })?
        };
        let Some((position_id, position)) = booked else {
            return Ok(None);
        };
        tracing::info!(client_order_id = %order.client_order_id, symbol = %order.symbol,
            %bought, position = %position.quantity, executed = %order.filled_quantity,
            ordered = %order.quantity, "entry fill booked");
        self.publish_position(&position);
        Ok(Some(BookedEntry {
            client_order_id: order.client_order_id.clone(),
            position_id,
            bought,
            price: order.average_fill_price(),
        }))
    }

    /// `ensure_protected` for every book's open position in `symbol`, each with its own
    /// protection for its own quantity.
    async fn ensure_all_protected(
        &self,
        symbol: &Symbol,
        now_ms: i64,
    ) -> Result<Vec<(i64, Protection)>, TradingError> {
        let rows = {
            let db = self.store()?;
            positions::open_in_symbol(db.conn(), &self.deps.connection, symbol.as_str())?
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            out.push((id, self.ensure_protected(row, now_ms).await?));
        }
        Ok(out)
    }

    /// Make the exchange hold a stop for exactly the open position's sellable quantity: place
    /// it when missing, replace it when its quantity differs (after an add), leave it when it
    /// covers. When it cannot be placed, the position is closed at market and alerted.
    pub(super) async fn ensure_protected(
        &self,
        row: positions::PositionRow,
        now_ms: i64,
    ) -> Result<Protection, TradingError> {
        self.ensure_protected_as(row, false, now_ms).await
    }

    /// `ensure_protected`; `restore` puts back a protection withdrawn outside TradeMind (the
    /// `protect` command), which the automatic steps leave to a person.
    pub(super) async fn ensure_protected_as(
        &self,
        row: positions::PositionRow,
        restore: bool,
        now_ms: i64,
    ) -> Result<Protection, TradingError> {
        let symbol = row.position.symbol.clone();
        let filters = self.deps.exchange.symbol_filters(&symbol).await?;
        let (open_stop, withdrawn, partly_withdrawn) = {
            let db = self.store()?;
            let legs = orders::of_position(db.conn(), row.id)?;
            // A scale-out is protected by two stops (the part's OCO leg and the rest's): what
            // they cover together is what counts.
            let open_stop = legs
                .iter()
                .filter(|o| o.purpose == OrderPurpose::StopLoss && o.order.status.is_open())
                .map(|o| o.order.quantity)
                .reduce(|a, b| a + b);
            (
                open_stop,
                super::protect::withdrawn(&legs),
                super::protect::partly_withdrawn(&legs),
            )
        };
        let need = protection_need(&row.position, open_stop, &filters);
        {
            // What the protection cannot cover, for the faces: dust, not an unprotected part.
            let db = self.store()?;
            let dust = sellable_part(&row.position, &filters).dust;
            positions::set_dust(db.conn(), row.id, dust)?;
        }
        let position = match need {
            ProtectionNeed::Covered => return Ok(Protection::InPlace),
            ProtectionNeed::Dust => {
                return Ok(Protection::Dust {
                    quantity: row.position.quantity,
                });
            }
            ProtectionNeed::NoStopLevel => return Ok(Protection::NoStopLevel),
            ProtectionNeed::Place if withdrawn && !restore => return Ok(Protection::Withdrawn),
            ProtectionNeed::Replace if partly_withdrawn && !restore => {
                return Ok(Protection::Withdrawn);
            }
            ProtectionNeed::Place => row.position,
            ProtectionNeed::Replace => {
                // Its old protection covers another quantity (and holds that balance on the
                // exchange): take it down, then protect what is open now.
                if self
                    .cancel_protection(row.id, &symbol, now_ms)
                    .await?
                    .is_some()
                {
                    return Ok(Protection::NotNeeded); // a leg filled meanwhile and closed it
                }
                let db = self.store()?;
                match positions::get(db.conn(), row.id)? {
                    Some(r) if r.position.closed_at.is_none() => r.position,
                    _ => return Ok(Protection::NotNeeded),
                }
            }
        };
        match self
            .place_protection(row.id, &position, &filters, row.strategy_id, now_ms)
            .await
        {
            Ok((ids, note)) => Ok(Protection::Placed {
                ids,
                replaced: need == ProtectionNeed::Replace,
                note,
            }),
            Err(e) => {
                self.protection_failed(&symbol, row.id, &position, e, now_ms)
                    .await
            }
        }
    }

    /// Protection could not be placed: close the position at market and alert.
    async fn protection_failed(
        &self,
        symbol: &Symbol,
        position_id: i64,
        position: &Position,
        e: TradingError,
        now_ms: i64,
    ) -> Result<Protection, TradingError> {
        let error = e.to_string();
        tracing::error!(%symbol, %error,
            "protection could not be placed; closing the position at market");
        let mut close = super::ExecutionReport::new(symbol, "CLOSE");
        let current = {
            let db = self.store()?;
            positions::get(db.conn(), position_id)?
        };
        let closed = match current {
            Some(r) => self
                .close_row(r, &mut close, now_ms)
                .await
                .map_err(|e| e.to_string()),
            None => Err(format!("no open position in {symbol}")),
        };
        let body = match &closed {
            Ok(pnl) => format!(
                "{} {symbol} could not be protected ({error}); closed at market, realised {pnl}",
                position.quantity
            ),
            Err(close_error) => format!(
                "{} {symbol} could not be protected ({error}) AND the market close failed \
                 ({close_error}): the position is OPEN AND UNPROTECTED",
                position.quantity
            ),
        };
        self.alert(
            AlertKind::ProtectionFailed,
            format!("protection_failed/{symbol}/{position_id}"),
            format!("TradeMind: could not protect {symbol}; position closed"),
            body,
            now_ms,
        )
        .await;
        Ok(Protection::Failed { error, closed })
    }

    /// Place the exchange-side protection of a position: an OCO (take-profit LIMIT_MAKER +
    /// STOP_LOSS_LIMIT) when it has a target, else a stop-limit alone, for its sellable
    /// quantity; a strategy with `trail_bips` and no target gets a trailing stop-limit
    /// (Binance's `trailingDelta`, no stop price: it tracks from the last price, so it keeps
    /// trailing while TradeMind is down).
    ///
    /// A strategy with `scale_out_pct` splits it ([`scale_out::split`]): an OCO for the part
    /// (its target and the stop) and a stop-limit for the rest (trailing with `trail_bips`),
    /// each for exactly its quantity; when the exchange would refuse the part or the rest, the
    /// whole is protected as one and the note says why. Returns the client ids and the note.
    async fn place_protection(
        &self,
        position_id: i64,
        position: &Position,
        filters: &SymbolFilters,
        strategy_id: Option<i64>,
        now_ms: i64,
    ) -> Result<(Vec<String>, Option<String>), TradingError> {
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
        let levels = StopLevels {
            stop_price,
            stop_limit,
        };
        let parameters = self.strategy_parameters(strategy_id)?;
        let trailing = parameters.as_ref().and_then(strategies::trailing_of);
        let links = OrderLinks {
            purpose: OrderPurpose::StopLoss,
            position_id: Some(position_id),
            strategy_id,
            ..OrderLinks::default()
        };
        self.guard()?;
        let Some(target) = position.take_profit else {
            let id = self
                .place_stop(position, quantity, levels, trailing, &links, now_ms)
                .await?;
            return Ok((vec![id], None));
        };
        let target = filters.round_price(target);
        let split = parameters
            .as_ref()
            .and_then(strategies::scale_out_of)
            .map(|share| scale_out::split(quantity, share, target, stop_limit, filters));
        match split {
            Some(Split::Parts { part, rest }) => {
                let mut ids = self
                    .place_oco_protection(position, part, target, levels, &links, now_ms)
                    .await?;
                ids.push(
                    self.place_stop(position, rest, levels, trailing, &links, now_ms)
                        .await?,
                );
                tracing::info!(symbol = %position.symbol, position_id, %part, %rest, %target,
                    trailing = ?trailing, "scale-out protection: the part's OCO and the rest's stop");
                Ok((ids, None))
            }
            Some(Split::Whole(why)) => {
                tracing::warn!(symbol = %position.symbol, position_id, reason = %why,
                    "scale-out not split; the position is protected whole");
                let ids = self
                    .place_oco_protection(position, quantity, target, levels, &links, now_ms)
                    .await?;
                Ok((ids, Some(why.to_string())))
            }
            None => Ok((
                self.place_oco_protection(position, quantity, target, levels, &links, now_ms)
                    .await?,
                None,
            )),
        }
    }

    /// An OCO (take-profit LIMIT_MAKER at `target` + STOP_LOSS_LIMIT) selling `quantity`.
    async fn place_oco_protection(
        &self,
        position: &Position,
        quantity: Qty,
        target: Price,
        levels: StopLevels,
        links: &OrderLinks,
        now_ms: i64,
    ) -> Result<Vec<String>, TradingError> {
        let request = OcoRequest {
            list_client_order_id: self.next_cid("oco", now_ms),
            symbol: position.symbol.clone(),
            side: Side::Sell,
            quantity,
            take_profit_client_order_id: self.next_cid("tp", now_ms),
            take_profit_price: target,
            stop_client_order_id: self.next_cid("sl", now_ms),
            stop_price: levels.stop_price,
            stop_limit_price: levels.stop_limit,
        };
        let list = self.executor.place_oco(&request, links, now_ms).await?;
        tracing::info!(symbol = %position.symbol, position_id = ?links.position_id,
            quantity = %request.quantity, stop = %request.stop_price,
            stop_limit = %request.stop_limit_price, target = %request.take_profit_price,
            list_client_order_id = %request.list_client_order_id,
            "protection placed: OCO stop and target");
        for o in &list.orders {
            self.publish_order(o);
        }
        Ok(vec![
            request.take_profit_client_order_id,
            request.stop_client_order_id,
        ])
    }

    /// A stop-limit selling `quantity`: trailing (no stop price) when `trailing` is given.
    async fn place_stop(
        &self,
        position: &Position,
        quantity: Qty,
        levels: StopLevels,
        trailing: Option<TrailingDelta>,
        links: &OrderLinks,
        now_ms: i64,
    ) -> Result<String, TradingError> {
        let request = OrderRequest {
            client_order_id: self.next_cid("sl", now_ms),
            symbol: position.symbol.clone(),
            side: Side::Sell,
            order_type: OrderType::StopLossLimit,
            quantity,
            price: Some(levels.stop_limit),
            stop_price: Some(levels.stop_price).filter(|_| trailing.is_none()),
            time_in_force: Some(TimeInForce::Gtc),
            trailing_delta: trailing,
        };
        let placed = self.executor.place_linked(&request, links, now_ms).await?;
        tracing::info!(symbol = %position.symbol, position_id = ?links.position_id,
            quantity = %request.quantity, stop = %levels.stop_price,
            stop_limit = %levels.stop_limit, trailing = ?trailing,
            client_order_id = %request.client_order_id, "protection placed: stop-limit");
        self.publish_order(&placed.order);
        Ok(request.client_order_id)
    }
}

/// A protective stop's trigger and its limit, on the tick.
#[derive(Debug, Clone, Copy)]
struct StopLevels {
    stop_price: Price,
    stop_limit: Price,
}

impl<E: Exchange + 'static> TradingService<E> {
    /// The stored parameters of a position's strategy (its exits: `trail_bips`, `breakeven_r`).
    pub(super) fn strategy_parameters(
        &self,
        strategy_id: Option<i64>,
    ) -> Result<Option<serde_json::Value>, TradingError> {
        let Some(id) = strategy_id else {
            return Ok(None);
        };
        let db = self.store()?;
        Ok(store::strategies::list_strategies(db.conn())?
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.parameters))
    }
}

fn position_err(e: crate::domain::trading::PositionError) -> store::StoreError {
    store::StoreError::Conflict(format!("position bookkeeping failed: {e}"))
}

impl Settled {
    /// The protection of position `id` (`NotNeeded` when it is no longer open).
    pub(super) fn protection_of(&self, id: i64) -> &Protection {
        self.protections
            .iter()
            .find(|(p, _)| *p == id)
            .map_or(&Protection::NotNeeded, |(_, p)| p)
    }
}

/// `outcome` and message of an entry step from what its settle did.
pub(super) fn entry_outcome(
    settled: &Settled,
    entry_cid: &str,
    symbol: &Symbol,
) -> (ExecutionOutcome, String) {
    let Some(b) = settled
        .booked
        .iter()
        .find(|b| b.client_order_id == entry_cid)
    else {
        return (
            ExecutionOutcome::NotFilled,
            format!("entry {entry_cid} did not fill"),
        );
    };
    let price = b.price.map_or("?".into(), |p| p.to_string());
    match settled.protection_of(b.position_id) {
        Protection::Failed { error, closed } => (
            ExecutionOutcome::ProtectionFailed,
            match closed {
                Ok(pnl) => format!(
                    "bought {} {symbol} at {price} but protection failed ({error}); closed at \
                     market, realised {pnl}",
                    b.bought
                ),
                Err(e) => format!(
                    "bought {} {symbol} at {price} but protection failed ({error}) AND the \
                     market close failed ({e}): the position is OPEN AND UNPROTECTED",
                    b.bought
                ),
            },
        ),
        Protection::Dust { quantity } => (
            ExecutionOutcome::Executed,
            format!(
                "bought {} {symbol} at {price}; the position's {quantity} is dust the exchange \
                 will not sell (under its lot step, minimum quantity or minimum notional): \
                 nothing to protect",
                b.bought
            ),
        ),
        Protection::NotNeeded => (
            ExecutionOutcome::Executed,
            format!(
                "bought {} {symbol} at {price}; the position's earlier protection filled \
                 meanwhile and closed it",
                b.bought
            ),
        ),
        Protection::Placed {
            note: Some(note), ..
        } => (
            ExecutionOutcome::Executed,
            format!(
                "bought {} {symbol} at {price}; protected ({note})",
                b.bought
            ),
        ),
        _ => (
            ExecutionOutcome::Executed,
            format!("bought {} {symbol} at {price}; protected", b.bought),
        ),
    }
}
