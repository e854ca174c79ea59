//! PositionService: a position's life from fills — open, add (average entry), reduce, close —
//! with realised PnL net of fees, unrealised PnL from the mark price, and the protective stop and
//! target kept beside it. Pure and exact: every amount is a `Decimal` newtype.

use crate::domain::market::TimestampMs;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{Fill, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The capital of a strategy's book (its virtual sub-account): a share of the account's equity,
/// or a fixed amount of the quote currency that then moves with what the book has made or lost.
/// A strategy without one sizes on the whole account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// Percent of the account's equity (0 < p <= 100).
    Percent(Decimal),
    /// A fixed amount of the quote currency (> 0).
    Quote(Quote),
}

/// An allocation that cannot be used, with what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allocation {given:?}: {why} (e.g. `25%` of the account's equity or `1000` in its quote currency)"
)]
pub struct InvalidAllocation {
    pub given: String,
    pub why: &'static str,
}

impl std::str::FromStr for Allocation {
    type Err = InvalidAllocation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| InvalidAllocation {
            given: s.to_string(),
            why,
        };
        let t = s.trim();
        match t.strip_suffix('%') {
            Some(p) => {
                let p: Decimal = p.trim().parse().map_err(|_| bad("not a number"))?;
                if p <= Decimal::ZERO || p > Decimal::ONE_HUNDRED {
                    return Err(bad("a percentage must be above 0 and at most 100"));
                }
                Ok(Allocation::Percent(p.normalize()))
            }
            None => {
                let q: Decimal = t.parse().map_err(|_| bad("not a number"))?;
                if q <= Decimal::ZERO {
                    return Err(bad("an amount must be above 0"));
                }
                Ok(Allocation::Quote(Quote(q.normalize())))
            }
        }
    }
}

impl std::fmt::Display for Allocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allocation::Percent(p) => write!(f, "{p}%"),
            Allocation::Quote(q) => write!(f, "{q}"),
        }
    }
}

impl Allocation {
    /// The book's equity: its share of `account_equity`, or its fixed amount plus `book_pnl`
    /// (realised and unrealised, net of fees) — never more than the account has, never below 0.
    pub fn equity(self, account_equity: Quote, book_pnl: Quote) -> Quote {
        let e = match self {
            Allocation::Percent(p) => account_equity.get() * p / Decimal::ONE_HUNDRED,
            Allocation::Quote(q) => (q.get() + book_pnl.get()).min(account_equity.get()),
        };
        Quote(e.max(Decimal::ZERO))
    }
}

/// Direction of a position. Spot trading is long-only today; the arithmetic is written for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PositionSide {
    Long,
    Short,
}

impl PositionSide {
    fn sign(self) -> Decimal {
        match self {
            PositionSide::Long => Decimal::ONE,
            PositionSide::Short => Decimal::NEGATIVE_ONE,
        }
    }

    /// The order side that grows a position of this direction.
    pub fn opening_side(self) -> Side {
        match self {
            PositionSide::Long => Side::Buy,
            PositionSide::Short => Side::Sell,
        }
    }
}

/// One position in one symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub symbol: Symbol,
    pub side: PositionSide,
    pub quantity: Qty,
    /// Volume-weighted average entry price of the quantity still open.
    pub entry_price: Price,
    pub stop_loss: Option<Price>,
    pub take_profit: Option<Price>,
    /// Realised PnL so far, net of every fee paid on this position (entry fees included).
    pub realized_pnl: Quote,
    pub fees_paid: Quote,
    pub opened_at: TimestampMs,
    pub closed_at: Option<TimestampMs>,
}

/// What a fill did to the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillEffect {
    Opened,
    Added,
    /// Part closed; the realised PnL of this fill (net of its fee).
    Reduced {
        realized: Quote,
    },
    /// Fully closed; the realised PnL of this fill (net of its fee).
    Closed {
        realized: Quote,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("fill for {got} applied to a position in {expected}")]
    WrongSymbol { expected: Symbol, got: Symbol },
    #[error("fill quantity must be positive, got {0}")]
    NonPositiveQty(Qty),
    #[error("fill price must be positive, got {0}")]
    NonPositivePrice(Price),
    #[error(
        "a {side} fill of {qty} exceeds the open quantity {open}; flipping a position is not supported"
    )]
    Overfill { side: Side, qty: Qty, open: Qty },
    #[error("position in {0} is already closed")]
    Closed(Symbol),
}

/// A fill as the position sees it: the fee is already in the quote asset (convert BNB/base
/// fees at the fill price before calling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionFill {
    pub symbol: Symbol,
    pub side: Side,
    pub price: Price,
    pub quantity: Qty,
    pub fee: Quote,
    pub time: TimestampMs,
}

impl PositionFill {
    /// The position's view of an exchange fill on `base`/`quote`. A fee paid in the base asset
    /// is not held (a buy keeps `quantity − fee`) and costs `fee × price` in quote; a fee in the
    /// quote asset counts as is. The flag is true for a fee in a third asset (BNB): no price
    /// for it here, so it is left out of the position.
    pub fn from_fill(fill: &Fill, base: &str, quote: &str) -> (PositionFill, bool) {
        let (quantity, fee, third_asset) = if fill.fee.get().is_zero() {
            (fill.quantity, Quote::ZERO, false)
        } else if fill.fee_asset == base {
            let held = match fill.side {
                Side::Buy => fill.quantity - Qty(fill.fee.get()),
                Side::Sell => fill.quantity,
            };
            (held, Quote(fill.fee.get() * fill.price.get()), false)
        } else if fill.fee_asset == quote || fill.fee_asset.is_empty() {
            (fill.quantity, fill.fee, false)
        } else {
            (fill.quantity, Quote::ZERO, true)
        };
        let position_fill = PositionFill {
            symbol: fill.symbol.clone(),
            side: fill.side,
            price: fill.price,
            quantity,
            fee,
            time: fill.time,
        };
        (position_fill, third_asset)
    }
}

/// The seed's `PositionService`: the rules every position follows.
pub struct PositionService;

impl PositionService {
    /// Open a position from its first fill.
    pub fn open(fill: &PositionFill, side: PositionSide) -> Result<Position, PositionError> {
        validate(fill)?;
        Ok(Position {
            symbol: fill.symbol.clone(),
            side,
            quantity: fill.quantity,
            entry_price: fill.price,
            stop_loss: None,
            take_profit: None,
            realized_pnl: -fill.fee,
            fees_paid: fill.fee,
            opened_at: fill.time,
            closed_at: None,
        })
    }

    /// Apply a later fill: same direction adds at a new average entry; the opposite direction
    /// reduces or closes and realises PnL against the average entry.
    pub fn apply(
        position: &mut Position,
        fill: &PositionFill,
    ) -> Result<FillEffect, PositionError> {
        validate(fill)?;
        if fill.symbol != position.symbol {
            return Err(PositionError::WrongSymbol {
                expected: position.symbol.clone(),
                got: fill.symbol.clone(),
            });
        }
        if position.closed_at.is_some() {
            return Err(PositionError::Closed(position.symbol.clone()));
        }
        let adding = fill.side == position.side.opening_side();
        if !adding && fill.quantity > position.quantity {
            return Err(PositionError::Overfill {
                side: fill.side,
                qty: fill.quantity,
                open: position.quantity,
            });
        }
        position.fees_paid += fill.fee;
        if adding {
            let old_cost = position.entry_price * position.quantity;
            let add_cost = fill.price * fill.quantity;
            let new_qty = position.quantity + fill.quantity;
            position.entry_price = Price((old_cost + add_cost).get() / new_qty.get());
            position.quantity = new_qty;
            position.realized_pnl -= fill.fee;
            return Ok(FillEffect::Added);
        }
        let gross = Quote(
            (fill.price.get() - position.entry_price.get())
                * fill.quantity.get()
                * position.side.sign(),
        );
        let realized = gross - fill.fee;
        position.realized_pnl += realized;
        position.quantity -= fill.quantity;
        if position.quantity.is_zero() {
            position.closed_at = Some(fill.time);
            Ok(FillEffect::Closed { realized })
        } else {
            Ok(FillEffect::Reduced { realized })
        }
    }

    /// Unrealised PnL of the open quantity at `mark` (before exit fees).
    pub fn unrealized_pnl(position: &Position, mark: Price) -> Quote {
        Quote(
            (mark.get() - position.entry_price.get())
                * position.quantity.get()
                * position.side.sign(),
        )
    }

    /// Money lost if the stop is hit: (entry − stop) × quantity for a long; zero without a stop
    /// or once the stop is at or beyond break-even.
    pub fn risk_at_stop(position: &Position) -> Quote {
        match position.stop_loss {
            None => Quote::ZERO,
            Some(stop) => {
                let per_unit = (position.entry_price.get() - stop.get()) * position.side.sign();
                Quote(per_unit.max(Decimal::ZERO) * position.quantity.get())
            }
        }
    }

    /// Market value of the open quantity at `mark` (what a spot long adds to equity).
    pub fn market_value(position: &Position, mark: Price) -> Quote {
        mark * position.quantity
    }
}

fn validate(fill: &PositionFill) -> Result<(), PositionError> {
    if !fill.quantity.is_positive() {
        return Err(PositionError::NonPositiveQty(fill.quantity));
    }
    if !fill.price.is_positive() {
        return Err(PositionError::NonPositivePrice(fill.price));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn fill(side: Side, price: Decimal, qty: Decimal, fee: Decimal, time: i64) -> PositionFill {
        PositionFill {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side,
            price: Price(price),
            quantity: Qty(qty),
            fee: Quote(fee),
            time,
        }
    }

    #[test]
    fn adding_averages_the_entry_exactly() {
        // 1 @ 100 then 3 @ 120: average = (100 + 360) / 4 = 115
        let mut p = PositionService::open(
            &fill(Side::Buy, dec!(100), dec!(1), dec!(0.1), 1),
            PositionSide::Long,
        )
        .unwrap();
        assert_eq!(
            PositionService::apply(&mut p, &fill(Side::Buy, dec!(120), dec!(3), dec!(0.36), 2))
                .unwrap(),
            FillEffect::Added
        );
        assert_eq!(p.entry_price, Price(dec!(115)));
        assert_eq!(p.quantity, Qty(dec!(4)));
        assert_eq!(p.fees_paid, Quote(dec!(0.46)));
        assert_eq!(p.realized_pnl, Quote(dec!(-0.46)));
    }

    #[test]
    fn reducing_and_closing_realise_pnl_net_of_fees() {
        let mut p = PositionService::open(
            &fill(Side::Buy, dec!(100), dec!(2), dec!(0.2), 1),
            PositionSide::Long,
        )
        .unwrap();
        // sell 0.5 @ 110: gross 5, fee 0.055 -> 4.945
        let e = PositionService::apply(
            &mut p,
            &fill(Side::Sell, dec!(110), dec!(0.5), dec!(0.055), 2),
        )
        .unwrap();
        assert_eq!(
            e,
            FillEffect::Reduced {
                realized: Quote(dec!(4.945))
            }
        );
        assert_eq!(p.quantity, Qty(dec!(1.5)));
        assert_eq!(p.entry_price, Price(dec!(100)));
        // sell 1.5 @ 90: gross -15, fee 0.135 -> -15.135
        let e = PositionService::apply(
            &mut p,
            &fill(Side::Sell, dec!(90), dec!(1.5), dec!(0.135), 3),
        )
        .unwrap();
        assert_eq!(
            e,
            FillEffect::Closed {
                realized: Quote(dec!(-15.135))
            }
        );
        // total = -0.2 + 4.945 - 15.135 = -10.39
        assert_eq!(p.realized_pnl, Quote(dec!(-10.39)));
        assert_eq!(p.closed_at, Some(3));
        assert!(
            PositionService::apply(&mut p, &fill(Side::Sell, dec!(90), dec!(1), dec!(0), 4))
                .is_err()
        );
    }

    #[test]
    fn unrealised_pnl_and_risk_at_stop() {
        let mut p = PositionService::open(
            &fill(Side::Buy, dec!(100), dec!(2), dec!(0), 1),
            PositionSide::Long,
        )
        .unwrap();
        assert_eq!(
            PositionService::unrealized_pnl(&p, Price(dec!(97.5))),
            Quote(dec!(-5))
        );
        assert_eq!(PositionService::risk_at_stop(&p), Quote::ZERO);
        p.stop_loss = Some(Price(dec!(95)));
        assert_eq!(PositionService::risk_at_stop(&p), Quote(dec!(10)));
        p.stop_loss = Some(Price(dec!(101))); // trailed past break-even: nothing at risk
        assert_eq!(PositionService::risk_at_stop(&p), Quote::ZERO);
    }

    #[test]
    fn short_positions_profit_when_price_falls() {
        let mut p = PositionService::open(
            &fill(Side::Sell, dec!(100), dec!(1), dec!(0), 1),
            PositionSide::Short,
        )
        .unwrap();
        assert_eq!(
            PositionService::unrealized_pnl(&p, Price(dec!(90))),
            Quote(dec!(10))
        );
        let e = PositionService::apply(&mut p, &fill(Side::Buy, dec!(90), dec!(1), dec!(0.09), 2))
            .unwrap();
        assert_eq!(
            e,
            FillEffect::Closed {
                realized: Quote(dec!(9.91))
            }
        );
    }

    #[test]
    fn bad_fills_are_refused() {
        let mut p = PositionService::open(
            &fill(Side::Buy, dec!(100), dec!(1), dec!(0), 1),
            PositionSide::Long,
        )
        .unwrap();
        assert!(matches!(
            PositionService::apply(&mut p, &fill(Side::Sell, dec!(100), dec!(2), dec!(0.2), 2)),
            Err(PositionError::Overfill { .. })
        ));
        assert_eq!(p.fees_paid, Quote::ZERO, "a refused fill books no fee");
        assert!(matches!(
            PositionService::apply(&mut p, &fill(Side::Buy, dec!(100), dec!(0), dec!(0), 2)),
            Err(PositionError::NonPositiveQty(_))
        ));
        let mut other = fill(Side::Buy, dec!(100), dec!(1), dec!(0), 2);
        other.symbol = Symbol::new("ETHUSDT").unwrap();
        assert!(matches!(
            PositionService::apply(&mut p, &other),
            Err(PositionError::WrongSymbol { .. })
        ));
        assert_eq!(p.quantity, Qty(dec!(1)), "a refused fill changes nothing");
    }

    #[test]
    fn an_allocation_is_a_share_of_equity_or_a_fixed_amount_moving_with_the_books_pnl() {
        use rust_decimal_macros::dec;
        let pct: Allocation = "25%".parse().unwrap();
        assert_eq!(pct, Allocation::Percent(dec!(25)));
        assert_eq!(
            pct.equity(Quote(dec!(10000)), Quote(dec!(-500))),
            Quote(dec!(2500))
        );
        let fixed: Allocation = "1000".parse().unwrap();
        assert_eq!(fixed.to_string(), "1000");
        assert_eq!(
            fixed.equity(Quote(dec!(10000)), Quote(dec!(-120.5))),
            Quote(dec!(879.5))
        );
        // Never more than the account holds, never negative.
        assert_eq!(
            fixed.equity(Quote(dec!(600)), Quote::ZERO),
            Quote(dec!(600))
        );
        assert_eq!(
            fixed.equity(Quote(dec!(600)), Quote(dec!(-2000))),
            Quote::ZERO
        );
        for bad in ["0%", "101%", "-5", "0", "ten", "%"] {
            assert!(bad.parse::<Allocation>().is_err(), "{bad}");
        }
    }
}
