//! Limit and post-only entries (issue #19): a strategy with `entry_limit_bps` enters with a
//! resting LIMIT buy (GTC) under the decision's price, or a `LIMIT_MAKER` with `post_only`,
//! sized as a market entry would be at that limit. While it rests, every monitor pass queries
//! it; each part that fills is booked and protected by the settle step like any entry fill, and
//! after `entry_timeout_candles` candles of the strategy's interval (counted from the order's
//! stored creation, so a restart keeps the clock) it is cancelled. A cancel that races a fill
//! is resolved by querying the order, never by guessing.
//!
//! Until it is done, a resting entry counts toward the risk limits as if filled (heat,
//! exposure) and its strategy takes no second entry in the symbol.

use super::{TradingError, TradingService};
use crate::domain::backtest::engine::LimitEntry;
use crate::domain::backtest::strategies::limit_entry_of;
use crate::domain::market::candle::Interval;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::OpenPosition;
use crate::domain::symbol::Symbol;
use crate::domain::trading::SymbolFilters;
use crate::domain::trading::order::{Fill, OrderStatus};
use crate::services::exchange::{Exchange, ExchangeError};
use crate::store::StoreResult;
use crate::store::orders::{self, StoredOrder};
use rust_decimal::Decimal;

/// The price of a limit entry decided at `decision_price`: `offset_bps` under it, rounded
/// down to the tick (as the backtest prices it).
pub fn limit_price(decision_price: Price, entry: LimitEntry, filters: &SymbolFilters) -> Price {
    let offset = Decimal::from(entry.offset_bps) * Decimal::new(1, 4);
    filters.round_price_down(Price(decision_price.get() * (Decimal::ONE - offset)))
}

/// The fills of an entry beyond the `booked` quantity already in its position, oldest first.
/// A fill that straddles the booked quantity (an exchange that reported one fill at the average
/// price for what had filled) counts only for its part beyond it, its fee in proportion.
pub fn unbooked_fills(fills: &[Fill], booked: Qty) -> Vec<Fill> {
    let mut seen = Qty::ZERO;
    let mut out = Vec::new();
    for f in fills {
        let end = seen + f.quantity;
        if end > booked {
            let part = if seen >= booked {
                f.quantity
            } else {
                end - booked
            };
            let mut f = f.clone();
            if part != f.quantity && f.quantity.is_positive() {
                f.fee = Quote(f.fee.get() * part.get() / f.quantity.get());
                f.quantity = part;
            }
            out.push(f);
        }
        seen = end;
    }
    out
}

/// The unfilled part of every open entry of `connection` (of one book when `book` is given) as
/// the risk layer counts an open position: what it will hold if it fills, at its limit, with
/// the stop stored for it.
pub fn resting_as_open(
    conn: &rusqlite::Connection,
    connection: &str,
    book: Option<Option<i64>>,
) -> StoreResult<Vec<OpenPosition>> {
    Ok(orders::resting_entries(conn, connection, None)?
        .into_iter()
        .filter(|o| book.is_none_or(|b| o.strategy_id == b))
        .filter_map(|o| {
            let left = o.order.quantity - o.order.filled_quantity;
            Some(OpenPosition {
                symbol: o.order.symbol.clone(),
                quantity: left,
                entry: o.order.price?,
                stop: o.protect_stop,
            })
            .filter(|p| p.quantity.is_positive())
        })
        .collect())
}

/// How a resting entry stands after a monitor pass looked at it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Followed {
    /// Still on the book (filled so far: `filled`).
    Resting { filled: Qty },
    /// Filled whole.
    Filled,
    /// Cancelled at its time-out, with what had filled by then.
    TimedOut { filled: Qty },
    /// Cancelled or expired on the exchange (not by TradeMind), or unknown to it.
    Gone { status: OrderStatus },
}

impl<E: Exchange + 'static> TradingService<E> {
    /// The strategy's open entry in `symbol`, if one rests on the book.
    pub(super) fn resting_entry_of(
        &self,
        symbol: &Symbol,
        strategy_id: Option<i64>,
    ) -> Result<Option<StoredOrder>, TradingError> {
        let db = self.store()?;
        Ok(
            orders::resting_entries(db.conn(), &self.deps.connection, Some(symbol.as_str()))?
                .into_iter()
                .find(|o| o.strategy_id == strategy_id),
        )
    }

    /// The limit entry strategy `strategy_id` enters with, if it has one.
    pub(super) fn limit_entry(
        &self,
        strategy_id: Option<i64>,
    ) -> Result<Option<LimitEntry>, TradingError> {
        let Some(parameters) = self.strategy_parameters(strategy_id)? else {
            return Ok(None);
        };
        limit_entry_of(&parameters).map_err(|e| TradingError::Strategy {
            name: format!("#{}", strategy_id.unwrap_or_default()),
            detail: e.to_string(),
        })
    }

    /// How long (ms) an entry of strategy `strategy_id` may rest: `entry_timeout_candles` of
    /// its interval; `None` when it has no limit entry (then it rests until a person cancels
    /// it, as any order TradeMind did not time).
    fn resting_limit_ms(&self, strategy_id: Option<i64>) -> Result<Option<i64>, TradingError> {
        let Some(id) = strategy_id else {
            return Ok(None);
        };
        let strategy = {
            let db = self.store()?;
            crate::store::strategies::list_strategies(db.conn())?
                .into_iter()
                .find(|s| s.id == id)
        };
        let Some(strategy) = strategy else {
            return Ok(None);
        };
        let Ok(Some(entry)) = limit_entry_of(&strategy.parameters) else {
            return Ok(None);
        };
        let Ok(interval) = strategy.interval.parse::<Interval>() else {
            return Ok(None);
        };
        Ok(Some(i64::from(entry.timeout_candles) * interval.millis()))
    }

    /// Follow every resting entry of `symbol` (the caller holds its trading lock): its state
    /// queried and stored, and cancelled once its time-out has passed. The settle step that
    /// follows books and protects whatever filled.
    pub(super) async fn follow_resting_entries(
        &self,
        symbol: &Symbol,
        now_ms: i64,
    ) -> Result<Vec<(String, Followed)>, TradingError> {
        let resting = {
            let db = self.store()?;
            orders::resting_entries(db.conn(), &self.deps.connection, Some(symbol.as_str()))?
        };
        let mut out = Vec::with_capacity(resting.len());
        for entry in resting {
            let followed = self.follow_resting_entry(&entry, now_ms).await?;
            out.push((entry.order.client_order_id.clone(), followed));
        }
        Ok(out)
    }

    /// Cancel a resting entry and store what the exchange says of it. A cancel that races a
    /// fill is resolved by querying the order: its state then says what filled.
    pub(super) async fn cancel_entry(
        &self,
        entry: &StoredOrder,
        now_ms: i64,
    ) -> Result<crate::domain::trading::Order, TradingError> {
        let symbol = &entry.order.symbol;
        let cid = entry.order.client_order_id.as_str();
        self.guard()?;
        let after = match self.deps.exchange.cancel_order(symbol, cid).await {
            Ok(order) => order,
            // Filled (or gone) between the query and the cancel: the order says which.
            Err(ExchangeError::UnknownOrder { .. }) => {
                self.deps.exchange.query_order(symbol, cid).await?
            }
            Err(e) => return Err(e.into()),
        };
        self.settle_row(&after, now_ms)?;
        Ok(after)
    }

    async fn follow_resting_entry(
        &self,
        entry: &StoredOrder,
        now_ms: i64,
    ) -> Result<Followed, TradingError> {
        let symbol = &entry.order.symbol;
        let cid = entry.order.client_order_id.as_str();
        let order = match self.deps.exchange.query_order(symbol, cid).await {
            Ok(order) => order,
            Err(ExchangeError::UnknownOrder { .. }) => {
                let why = "the exchange has no such order (lost); marked EXPIRED";
                let db = self.store()?;
                orders::mark(db.conn(), cid, OrderStatus::Expired, Some(why), now_ms)?;
                tracing::warn!(client_order_id = %cid, %symbol, "resting entry: {why}");
                return Ok(Followed::Gone {
                    status: OrderStatus::Expired,
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.settle_row(&order, now_ms)?;
        match order.status {
            OrderStatus::Filled => return Ok(Followed::Filled),
            s if !s.is_open() => return Ok(Followed::Gone { status: s }),
            _ => {}
        }
        let Some(limit_ms) = self.resting_limit_ms(entry.strategy_id)? else {
            return Ok(Followed::Resting {
                filled: order.filled_quantity,
            });
        };
        // Counted from the stored creation (a restart keeps the clock), rounded to the nearest
        // candle as the time exit counts, so a pass a few ms early is not a candle late.
        let rested = now_ms - entry.order.created_at;
        if rested + 1_000 < limit_ms {
            return Ok(Followed::Resting {
                filled: order.filled_quantity,
            });
        }
        let after = self.cancel_entry(entry, now_ms).await?;
        if after.status == OrderStatus::Filled {
            tracing::info!(client_order_id = %cid, %symbol,
                "resting entry filled before its time-out cancel reached the exchange");
            return Ok(Followed::Filled);
        }
        tracing::info!(client_order_id = %cid, %symbol, filled = %after.filled_quantity,
            ordered = %after.quantity, rested_ms = rested,
            "resting entry timed out: cancelled{}",
            if after.filled_quantity.is_zero() { ", nothing bought" } else { "; the filled part is kept and protected" });
        Ok(Followed::TimedOut {
            filled: after.filled_quantity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trading::order::Side;
    use rust_decimal_macros::dec;

    fn fill(qty: Decimal, fee: Decimal) -> Fill {
        Fill {
            client_order_id: "e".into(),
            trade_id: None,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            price: Price(dec!(100)),
            quantity: Qty(qty),
            fee: Quote(fee),
            fee_asset: "BTC".into(),
            is_maker: true,
            time: 0,
        }
    }

    #[test]
    fn only_the_fills_beyond_the_booked_quantity_are_booked_again() {
        let fills = [fill(dec!(0.4), dec!(0.0004)), fill(dec!(0.6), dec!(0.0006))];
        assert_eq!(unbooked_fills(&fills, Qty::ZERO).len(), 2);
        let rest = unbooked_fills(&fills, Qty(dec!(0.4)));
        assert_eq!(rest, [fills[1].clone()]);
        assert!(unbooked_fills(&fills, Qty(dec!(1))).is_empty());
        // One fill at the average price for all that filled, 0.4 of it booked before.
        let whole = unbooked_fills(&[fill(dec!(1), dec!(0.001))], Qty(dec!(0.4)));
        assert_eq!(whole[0].quantity, Qty(dec!(0.6)));
        assert_eq!(whole[0].fee, Quote(dec!(0.0006)));
    }

    #[test]
    fn a_limit_entry_is_priced_its_offset_under_the_decision_and_rounded_down_to_the_tick() {
        let filters = crate::services::exchange::paper::PaperConfig::default()
            .filters_for("BTCUSDT")
            .unwrap();
        assert_eq!(filters.tick_size, dec!(0.01));
        let entry = LimitEntry {
            offset_bps: 25,
            post_only: false,
            timeout_candles: 1,
        };
        // 50 123.45 × 0.9975 = 49 998.141375
        assert_eq!(
            limit_price(Price(dec!(50123.45)), entry, &filters),
            Price(dec!(49998.14))
        );
    }
}
