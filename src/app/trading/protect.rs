//! Re-protection (issue #19): a position whose protection was cancelled outside TradeMind — on
//! the exchange, or a leg cancelled with `trademind cancel` — is not protected again behind the
//! user's back (they may be selling it by hand); reconciliation reports it unprotected and
//! keeps trading paused, and `trademind protect SYMBOL` puts the protection back from the stop
//! and target stored with the position (or with its entry) through the settle step's
//! `ensure_protected`, under the symbol's trading lock.

use super::settle::Protection;
use super::{ExecutionOutcome, ExecutionReport, TradingError, TradingService};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{OrderPurpose, OrderStatus};
use crate::services::exchange::Exchange;
use crate::store::orders::{self, StoredOrder};
use crate::store::positions::{self, BookId, PositionRow};

/// The reason stored on a protection leg found cancelled by someone other than TradeMind.
pub(super) const WITHDRAWN: &str = "protection cancelled outside TradeMind";

/// Whether a position's protection was withdrawn outside TradeMind: its latest protection leg
/// was cancelled by a person and no entry has been added to the position since (an add is
/// protected for the whole quantity again, as every entry is).
pub(super) fn withdrawn(position_orders: &[StoredOrder]) -> bool {
    let Some(last_leg) = position_orders
        .iter()
        .filter(|o| o.purpose.is_protection())
        .max_by_key(|o| o.id)
    else {
        return false;
    };
    let entry_since = position_orders
        .iter()
        .any(|o| o.purpose == OrderPurpose::Entry && o.id > last_leg.id);
    !last_leg.order.status.is_open()
        && last_leg.order.status == OrderStatus::Canceled
        && last_leg.error.as_deref() == Some(WITHDRAWN)
        && !entry_since
}

/// Whether a person cancelled any protection leg of a position since its latest entry. A
/// scale-out is protected by two orders; when a person takes one down, the other stays open and
/// the position is covered only in part: the automatic steps must not replace both behind the
/// person's back either.
pub(super) fn partly_withdrawn(position_orders: &[StoredOrder]) -> bool {
    let latest_entry = position_orders
        .iter()
        .filter(|o| o.purpose == OrderPurpose::Entry)
        .map(|o| o.id)
        .max()
        .unwrap_or(i64::MIN);
    position_orders.iter().any(|o| {
        o.purpose.is_protection()
            && o.id > latest_entry
            && o.order.status == OrderStatus::Canceled
            && o.error.as_deref() == Some(WITHDRAWN)
    })
}

impl<E: Exchange + 'static> TradingService<E> {
    /// Record that a protection leg was cancelled by a person, not by one of our steps.
    pub(super) fn mark_withdrawn(
        &self,
        client_order_id: &str,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let db = self.store()?;
        orders::mark(
            db.conn(),
            client_order_id,
            OrderStatus::Canceled,
            Some(WITHDRAWN),
            now_ms,
        )?;
        Ok(())
    }

    /// `trademind protect SYMBOL [--strategy NAME]`: protect one book's open position in
    /// `symbol` again from its stored stop and target (the position's, else those stored with
    /// its entry). `book` names the book when several hold the symbol. Protection already in
    /// place is left alone. Trading paused by the missing protection is reconciled again.
    pub async fn protect(
        &self,
        symbol: &Symbol,
        book: Option<BookId>,
        now_ms: i64,
    ) -> Result<ExecutionReport, TradingError> {
        self.guard()?;
        let mut report = {
            let _step = self.lock_symbol(symbol).await?;
            let row = self.open_row(symbol, book)?;
            let row = self.with_stored_levels(row, now_ms)?;
            let mut report = ExecutionReport {
                position_id: Some(row.id),
                ..ExecutionReport::new(symbol, "PROTECT")
            };
            let quantity = row.position.quantity;
            let book_name = row.book().to_string();
            match self.ensure_protected_as(row, true, now_ms).await? {
                Protection::Placed { ids, .. } => {
                    report.outcome = ExecutionOutcome::Executed;
                    report.message = format!(
                        "{quantity} {symbol} (book {book_name}) protected again: placed {}",
                        ids.join(", ")
                    );
                    report.order_ids = ids;
                }
                Protection::InPlace => {
                    report.outcome = ExecutionOutcome::Executed;
                    report.message = format!(
                        "{quantity} {symbol} (book {book_name}) is already protected for its \
                         whole quantity: nothing sent"
                    );
                }
                Protection::NotNeeded => {
                    report.outcome = ExecutionOutcome::Executed;
                    report.message = format!(
                        "{symbol} (book {book_name}) was closed meanwhile: nothing to protect"
                    );
                }
                Protection::Dust { quantity } => {
                    report.outcome = ExecutionOutcome::Executed;
                    report.message = format!(
                        "{quantity} {symbol} (book {book_name}) is dust the exchange will not \
                         sell (under its lot step, minimum quantity or minimum notional): \
                         nothing to protect"
                    );
                }
                Protection::NoStopLevel | Protection::Withdrawn => {
                    return Err(TradingError::Config(format!(
                        "the position in {symbol} (book {book_name}) has no stored stop-loss to \
                         protect it with: close it (`trademind close {symbol} --strategy \
                         {book_name}`) or protect it on the exchange by hand"
                    )));
                }
                Protection::Failed { error, closed } => {
                    report.outcome = ExecutionOutcome::ProtectionFailed;
                    report.message = match closed {
                        Ok(pnl) => format!(
                            "protection of {symbol} failed ({error}); closed at market, realised \
                             {pnl}"
                        ),
                        Err(e) => format!(
                            "protection of {symbol} failed ({error}) AND the market close failed \
                             ({e}): the position is OPEN AND UNPROTECTED"
                        ),
                    };
                }
            }
            report
        };
        // What paused trading may have been this position: reconcile again (the lock is free).
        if !self.is_reconciled() {
            let again = self.reconcile(now_ms).await?;
            report.message.push_str(if again.reconciled {
                "; reconciled with the exchange, trading may resume"
            } else {
                "; trading stays paused: reconciliation still finds discrepancies"
            });
        }
        Ok(report)
    }

    /// One book's open position in `symbol` (the only one when `book` is not given).
    fn open_row(&self, symbol: &Symbol, book: Option<BookId>) -> Result<PositionRow, TradingError> {
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
        .ok_or_else(|| TradingError::NoPosition(symbol.clone()))
    }

    /// The row with the stop and target its latest entry stored filled in where the position
    /// itself has none (a position booked before they were copied to it), saved.
    fn with_stored_levels(
        &self,
        mut row: PositionRow,
        now_ms: i64,
    ) -> Result<PositionRow, TradingError> {
        if row.position.stop_loss.is_some() && row.position.take_profit.is_some() {
            return Ok(row);
        }
        let db = self.store()?;
        let entry = orders::of_position(db.conn(), row.id)?
            .into_iter()
            .filter(|o| o.purpose == OrderPurpose::Entry && o.protect_stop.is_some())
            .max_by_key(|o| o.id);
        if let Some(entry) = entry {
            let p = &mut row.position;
            if p.stop_loss.is_none() {
                p.stop_loss = entry.protect_stop;
                // A target belongs with the stop it was planned with.
                p.take_profit = p.take_profit.or(entry.protect_target);
                positions::update(db.conn(), row.id, p, now_ms)?;
            }
        }
        Ok(row)
    }
}
