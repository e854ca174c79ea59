//! Scale-out (issue #19): part of a position is sold at its first target and the rest stays in
//! the market, protected for exactly what is left. One split rule for the backtest, the paper
//! exchange and live trading, so each sells the same part and keeps the same rest.
//!
//! What a trader gets with `scale_out_pct = P`:
//! - P % of the position (rounded down to the lot step) is sold at the target; until then it is
//!   protected by its own OCO (target + the stop).
//! - The rest has no target. With `trail_bips` it is protected by a trailing stop from the
//!   entry on; without, by the stop, which moves to break-even (entry + both fees) once the
//!   part has sold: the trade can no longer lose.
//! - When the part or the rest would be refused by the exchange's filters (below `minQty` or
//!   the minimum notional), the position is not split: it is protected whole, as without
//!   scale-out, and [`Split::Whole`] says why.

use crate::domain::money::{Price, Qty};
use crate::domain::trading::filters::{FilterViolation, SymbolFilters};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The share of a position sold at the first target, as a percentage strictly between 0 and
/// 100 (`scale_out_pct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScaleOutShare(Decimal);

impl ScaleOutShare {
    /// `None` unless 0 < `pct` < 100: selling none or all of it at the target is no scale-out.
    pub fn from_pct(pct: Decimal) -> Option<Self> {
        (pct > Decimal::ZERO && pct < Decimal::ONE_HUNDRED).then_some(ScaleOutShare(pct))
    }

    pub fn pct(self) -> Decimal {
        self.0
    }

    /// The share as a fraction (25 % = 0.25).
    pub fn fraction(self) -> Decimal {
        self.0 / Decimal::ONE_HUNDRED
    }
}

impl fmt::Display for ScaleOutShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0.normalize())
    }
}

/// Which of the two orders a scale-out would have placed the exchange refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsplittable {
    #[error(
        "not scaled out: the part sold at the target ({part} of {quantity}) would be refused \
         ({why}); the whole position is protected as one"
    )]
    Part {
        part: Qty,
        quantity: Qty,
        why: FilterViolation,
    },
    #[error(
        "not scaled out: the rest kept after the target ({rest} of {quantity}) would be refused \
         ({why}); the whole position is protected as one"
    )]
    Rest {
        rest: Qty,
        quantity: Qty,
        why: FilterViolation,
    },
}

/// How a position's sellable quantity is protected under a scale-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// `part` is sold at the target, `rest` is kept; both are multiples of the lot step and
    /// add up to the quantity split.
    Parts { part: Qty, rest: Qty },
    /// Not split (see [`Unsplittable`]): the whole quantity is protected as one.
    Whole(Unsplittable),
}

/// Split `quantity` (the sellable quantity, already on the lot step) into the part sold at
/// `target` and the rest. Each order is checked against the filters the exchange applies to
/// it: the part as a limit sell at the target and at `lowest_sell`, the rest at `lowest_sell`.
/// `lowest_sell` is the lowest price a protective sell is valued at: live, the stop-limit's
/// limit (Binance checks a STOP_LOSS_LIMIT's notional at its limit); in a backtest, which sells
/// a triggered stop at the stop, the stop.
pub fn split(
    quantity: Qty,
    share: ScaleOutShare,
    target: Price,
    lowest_sell: Price,
    filters: &SymbolFilters,
) -> Split {
    let part = filters.round_qty_down(Qty(quantity.get() * share.fraction()));
    let rest = quantity - part;
    let part_ok = filters
        .check_order(target, part, false)
        .and_then(|()| filters.check_order(lowest_sell, part, false));
    if let Err(why) = part_ok {
        return Split::Whole(Unsplittable::Part {
            part,
            quantity,
            why,
        });
    }
    if let Err(why) = filters.check_order(lowest_sell, rest, false) {
        return Split::Whole(Unsplittable::Rest {
            rest,
            quantity,
            why,
        });
    }
    Split::Parts { part, rest }
}

/// The rest's stop once the part has sold (no trailing stop): break-even, the price that sells
/// it for what it cost, entry × (1 + fee) / (1 − fee), up to the tick. `None` while the stop is
/// already there or above, or while `price` (the close after the part sold) is not above that
/// level (a stop there would trigger at once; it is moved at a later close).
pub fn rest_break_even_stop(
    entry: Price,
    stop: Price,
    fee_rate: Decimal,
    price: Price,
    filters: &SymbolFilters,
) -> Option<Price> {
    if fee_rate >= Decimal::ONE {
        return None;
    }
    let level = filters.round_price_up(Price(
        entry.get() * (Decimal::ONE + fee_rate) / (Decimal::ONE - fee_rate),
    ));
    (stop < level && price > level).then_some(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn btc() -> SymbolFilters {
        let mut f = SymbolFilters::permissive("BTC", "USDT");
        f.step_size = dec!(0.00001);
        f.min_qty = dec!(0.00001);
        f.min_notional = dec!(5);
        f
    }

    #[test]
    fn the_share_is_strictly_between_none_and_all() {
        assert!(ScaleOutShare::from_pct(dec!(0)).is_none());
        assert!(ScaleOutShare::from_pct(dec!(100)).is_none());
        assert_eq!(
            ScaleOutShare::from_pct(dec!(50)).unwrap().fraction(),
            dec!(0.5)
        );
    }

    /// 0.00999 × 40 % = 0.003996 → 0.00399 on the step; the rest 0.006 keeps what the rounding
    /// left out.
    #[test]
    fn the_part_is_rounded_down_to_the_step_and_the_rest_is_what_is_left() {
        let share = ScaleOutShare::from_pct(dec!(40)).unwrap();
        let split = split(
            Qty(dec!(0.00999)),
            share,
            Price(dec!(51000)),
            Price(dec!(49000)),
            &btc(),
        );
        assert_eq!(
            split,
            Split::Parts {
                part: Qty(dec!(0.00399)),
                rest: Qty(dec!(0.006))
            }
        );
    }

    /// 0.0002 × 25 % = 0.00005 BTC at 51,000 is 2.55 USDT, under the 5 USDT minimum: not split.
    /// At 75 % the part passes and the rest (0.00005 at the 49,000 stop, 2.45) is refused.
    #[test]
    fn a_part_or_a_rest_under_the_minimum_notional_keeps_the_position_whole() {
        let f = btc();
        let (target, stop) = (Price(dec!(51000)), Price(dec!(49000)));
        let quarter = ScaleOutShare::from_pct(dec!(25)).unwrap();
        assert!(matches!(
            split(Qty(dec!(0.0002)), quarter, target, stop, &f),
            Split::Whole(Unsplittable::Part { part, .. }) if part == Qty(dec!(0.00005))
        ));
        let most = ScaleOutShare::from_pct(dec!(75)).unwrap();
        let rest = split(Qty(dec!(0.0002)), most, target, stop, &f);
        assert!(
            matches!(&rest, Split::Whole(Unsplittable::Rest { rest, .. }) if *rest == Qty(dec!(0.00005))),
            "{rest:?}"
        );
        let Split::Whole(why) = rest else {
            unreachable!()
        };
        assert!(
            why.to_string()
                .contains("the whole position is protected as one")
        );
    }

    /// A part that rounds to nothing (1 step × 30 %) is refused by LOT_SIZE.
    #[test]
    fn a_part_that_rounds_to_nothing_is_not_split_off() {
        let share = ScaleOutShare::from_pct(dec!(30)).unwrap();
        assert!(matches!(
            split(
                Qty(dec!(0.00001)),
                share,
                Price(dec!(900000)),
                Price(dec!(900000)),
                &btc()
            ),
            Split::Whole(Unsplittable::Part {
                why: FilterViolation::LotSize { .. },
                ..
            })
        ));
    }

    /// Entry 100, fee 0.1 %: break-even is 100 × 1.001 / 0.999 = 100.2002.. → 100.21. A close
    /// at 100.21 does not move it (the stop would trigger at once), 100.22 does; a stop already
    /// there is not moved again.
    #[test]
    fn the_rest_moves_to_break_even_after_a_close_above_it() {
        let f = SymbolFilters::permissive("BTC", "USDT");
        let be = |stop, price| {
            rest_break_even_stop(Price(dec!(100)), Price(stop), dec!(0.001), Price(price), &f)
        };
        assert_eq!(be(dec!(99), dec!(100.21)), None);
        assert_eq!(be(dec!(99), dec!(100.22)), Some(Price(dec!(100.21))));
        assert_eq!(be(dec!(100.21), dec!(120)), None);
    }
}
