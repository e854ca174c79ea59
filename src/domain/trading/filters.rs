//! Exchange symbol filters (Binance `PRICE_FILTER`, `LOT_SIZE`, `MARKET_LOT_SIZE`, `NOTIONAL` /
//! `MIN_NOTIONAL`) and the rounding every order goes through before it is sent.

use crate::domain::money::{Price, Qty, Quote};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The trading rules of one symbol. A zero tick or step means "no constraint", as on Binance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolFilters {
    pub base_asset: String,
    pub quote_asset: String,
    pub tick_size: Decimal,
    pub min_price: Decimal,
    pub max_price: Decimal,
    pub step_size: Decimal,
    pub min_qty: Decimal,
    pub max_qty: Decimal,
    /// Market orders may have their own, usually looser, lot size.
    pub market_step_size: Option<Decimal>,
    pub market_max_qty: Option<Decimal>,
    pub min_notional: Decimal,
    pub max_notional: Option<Decimal>,
}

/// Why an order breaks a filter; names the filter the way Binance's -1013 error does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterViolation {
    #[error(
        "PRICE_FILTER: price {price} is outside [{min}, {max}] or not a multiple of tick {tick}"
    )]
    Price {
        price: Decimal,
        min: Decimal,
        max: Decimal,
        tick: Decimal,
    },
    #[error("LOT_SIZE: quantity {qty} is outside [{min}, {max}] or not a multiple of step {step}")]
    LotSize {
        qty: Decimal,
        min: Decimal,
        max: Decimal,
        step: Decimal,
    },
    #[error("NOTIONAL: order value {notional} is below the minimum {min}")]
    MinNotional { notional: Decimal, min: Decimal },
    #[error("NOTIONAL: order value {notional} is above the maximum {max}")]
    MaxNotional { notional: Decimal, max: Decimal },
}

/// `value <= 0`, from the sign and the digits (a decimal comparison with zero would first
/// bring both to one scale).
#[inline]
fn not_positive(value: Decimal) -> bool {
    value.is_zero() || value.is_sign_negative()
}

/// `value < min`; against an unset (zero) minimum, from the sign and the digits alone.
#[inline]
fn below(value: Decimal, min: Decimal) -> bool {
    if min.is_zero() {
        !value.is_zero() && value.is_sign_negative()
    } else {
        value < min
    }
}

fn floor_to(value: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return value;
    }
    ((value / step).floor() * step).normalize()
}

fn ceil_to(value: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return value;
    }
    ((value / step).ceil() * step).normalize()
}

fn is_multiple(value: Decimal, step: Decimal) -> bool {
    step.is_zero() || (value % step).is_zero()
}

impl SymbolFilters {
    /// Permissive filters for tests and data without exchange info (2-dp prices, 1e-8 lots).
    pub fn permissive(base: &str, quote: &str) -> Self {
        SymbolFilters {
            base_asset: base.to_string(),
            quote_asset: quote.to_string(),
            tick_size: Decimal::new(1, 2),
            min_price: Decimal::ZERO,
            max_price: Decimal::ZERO,
            step_size: Decimal::new(1, 8),
            min_qty: Decimal::ZERO,
            max_qty: Decimal::ZERO,
            market_step_size: None,
            market_max_qty: None,
            min_notional: Decimal::ZERO,
            max_notional: None,
        }
    }

    /// Quantity rounded down to the step size (never buy more than was sized).
    pub fn round_qty_down(&self, qty: Qty) -> Qty {
        Qty(floor_to(qty.get(), self.step_size))
    }

    /// Quantity for a market order, rounded down to the market lot step when there is one.
    pub fn round_market_qty_down(&self, qty: Qty) -> Qty {
        let step = self
            .market_step_size
            .filter(|s| !s.is_zero())
            .unwrap_or(self.step_size);
        Qty(floor_to(qty.get(), step))
    }

    /// Price rounded down to the tick (e.g. a buy limit or a sell stop).
    pub fn round_price_down(&self, price: Price) -> Price {
        Price(floor_to(price.get(), self.tick_size))
    }

    /// Price rounded up to the tick (e.g. a sell limit).
    pub fn round_price_up(&self, price: Price) -> Price {
        Price(ceil_to(price.get(), self.tick_size))
    }

    /// Price rounded to the nearest tick (ties away from zero).
    pub fn round_price(&self, price: Price) -> Price {
        if self.tick_size.is_zero() {
            return price;
        }
        let ticks = (price.get() / self.tick_size)
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        Price((ticks * self.tick_size).normalize())
    }

    pub fn check_price(&self, price: Price) -> Result<(), FilterViolation> {
        let p = price.get();
        let below = !self.min_price.is_zero() && p < self.min_price;
        let above = !self.max_price.is_zero() && p > self.max_price;
        if p <= Decimal::ZERO || below || above || !is_multiple(p - self.min_price, self.tick_size)
        {
            return Err(FilterViolation::Price {
                price: p,
                min: self.min_price,
                max: self.max_price,
                tick: self.tick_size,
            });
        }
        Ok(())
    }

    pub fn check_qty(&self, qty: Qty, is_market: bool) -> Result<(), FilterViolation> {
        let q = qty.get();
        let step = if is_market {
            self.market_step_size
                .filter(|s| !s.is_zero())
                .unwrap_or(self.step_size)
        } else {
            self.step_size
        };
        let max = if is_market {
            self.market_max_qty
                .filter(|m| !m.is_zero())
                .unwrap_or(self.max_qty)
        } else {
            self.max_qty
        };
        let above = !max.is_zero() && q > max;
        // Without a step there is no lot to be a multiple of: no subtraction to do.
        let off_lot = || !step.is_zero() && !is_multiple(q - self.min_qty, step);
        if not_positive(q) || below(q, self.min_qty) || above || off_lot() {
            return Err(FilterViolation::LotSize {
                qty: q,
                min: self.min_qty,
                max,
                step,
            });
        }
        Ok(())
    }

    pub fn check_notional(&self, notional: Quote) -> Result<(), FilterViolation> {
        let n = notional.get();
        if below(n, self.min_notional) {
            return Err(FilterViolation::MinNotional {
                notional: n,
                min: self.min_notional,
            });
        }
        if let Some(max) = self.max_notional.filter(|m| !m.is_zero())
            && n > max
        {
            return Err(FilterViolation::MaxNotional { notional: n, max });
        }
        Ok(())
    }

    /// Every filter an order at `price` for `qty` must pass. `price` is the limit price, or the
    /// reference (last/average) price for a market order.
    pub fn check_order(
        &self,
        price: Price,
        qty: Qty,
        is_market: bool,
    ) -> Result<(), FilterViolation> {
        if !is_market {
            self.check_price(price)?;
        }
        self.check_qty(qty, is_market)?;
        self.check_notional(price * qty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    proptest! {
        /// The sign-and-digits tests are the decimal comparisons they stand for, zeros of
        /// either sign and any scale included.
        #[test]
        fn the_bound_shortcuts_are_the_comparisons(
            m in prop_oneof![Just(0i64), any::<i64>()],
            scale in 0u32..=18,
            negative_zero in any::<bool>(),
            min_m in prop_oneof![Just(0i64), -1_000_000i64..1_000_000],
            min_scale in 0u32..=12,
        ) {
            let mut value = Decimal::new(m, scale);
            if m == 0 && negative_zero {
                value.set_sign_negative(true);
            }
            let min = Decimal::new(min_m, min_scale);
            prop_assert_eq!(not_positive(value), value <= Decimal::ZERO);
            prop_assert_eq!(below(value, min), value < min);
            prop_assert_eq!(below(value, -Decimal::ZERO), value < Decimal::ZERO);
        }
    }

    fn btc() -> SymbolFilters {
        SymbolFilters {
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: dec!(0.01),
            min_price: dec!(0.01),
            max_price: dec!(1000000),
            step_size: dec!(0.00001),
            min_qty: dec!(0.00001),
            max_qty: dec!(9000),
            market_step_size: None,
            market_max_qty: None,
            min_notional: dec!(5),
            max_notional: None,
        }
    }

    #[test]
    fn rounds_quantity_down_to_step_and_price_to_tick() {
        let f = btc();
        assert_eq!(
            f.round_qty_down(Qty(dec!(0.123456789))).get(),
            dec!(0.12345)
        );
        assert_eq!(
            f.round_price_down(Price(dec!(93576.019))).get(),
            dec!(93576.01)
        );
        assert_eq!(
            f.round_price_up(Price(dec!(93576.011))).get(),
            dec!(93576.02)
        );
        assert_eq!(f.round_price(Price(dec!(93576.015))).get(), dec!(93576.02));
    }

    #[test]
    fn names_the_filter_an_order_breaks() {
        let f = btc();
        assert!(
            f.check_order(Price(dec!(100)), Qty(dec!(0.1)), false)
                .is_ok()
        );
        assert!(matches!(
            f.check_order(Price(dec!(100.001)), Qty(dec!(0.1)), false),
            Err(FilterViolation::Price { .. })
        ));
        assert!(matches!(
            f.check_order(Price(dec!(100)), Qty(dec!(0.100001)), false),
            Err(FilterViolation::LotSize { .. })
        ));
        assert!(matches!(
            f.check_order(Price(dec!(100)), Qty(dec!(0.04)), false),
            Err(FilterViolation::MinNotional { .. })
        ));
        // exactly at the minimum notional passes
        assert!(
            f.check_order(Price(dec!(100)), Qty(dec!(0.05)), false)
                .is_ok()
        );
    }
}
