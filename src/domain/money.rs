//! Exact money types. Prices, quantities and quote amounts are `Decimal` newtypes so that a
//! price can never be added to a quantity by mistake; f64 appears only in indicator math.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};
use std::str::FromStr;

macro_rules! decimal_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Decimal);

        impl $name {
            pub const ZERO: Self = Self(Decimal::ZERO);

            pub const fn new(value: Decimal) -> Self {
                Self(value)
            }

            pub const fn get(self) -> Decimal {
                self.0
            }

            pub fn is_zero(self) -> bool {
                self.0.is_zero()
            }

            pub fn is_positive(self) -> bool {
                self.0 > Decimal::ZERO
            }

            /// Lossy view for statistics and charts only; never feed it back into money math.
            pub fn to_f64(self) -> f64 {
                use rust_decimal::prelude::ToPrimitive;
                self.0.to_f64().unwrap_or(f64::NAN)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.normalize(), f)
            }
        }

        impl FromStr for $name {
            type Err = rust_decimal::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Decimal::from_str_exact(s.trim())
                    .or_else(|_| Decimal::from_scientific(s.trim()))
                    .map(Self)
            }
        }

        impl From<Decimal> for $name {
            fn from(value: Decimal) -> Self {
                Self(value)
            }
        }

        impl From<$name> for Decimal {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl Add for $name {
            type Output = Self;
            fn add(self, rhs: Self) -> Self {
                Self(self.0 + rhs.0)
            }
        }

        impl Sub for $name {
            type Output = Self;
            fn sub(self, rhs: Self) -> Self {
                Self(self.0 - rhs.0)
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, rhs: Self) {
                self.0 += rhs.0;
            }
        }

        impl SubAssign for $name {
            fn sub_assign(&mut self, rhs: Self) {
                self.0 -= rhs.0;
            }
        }

        impl Neg for $name {
            type Output = Self;
            fn neg(self) -> Self {
                Self(-self.0)
            }
        }

        impl Mul<Decimal> for $name {
            type Output = Self;
            fn mul(self, rhs: Decimal) -> Self {
                Self(self.0 * rhs)
            }
        }

        impl Div<Decimal> for $name {
            type Output = Self;
            fn div(self, rhs: Decimal) -> Self {
                Self(self.0 / rhs)
            }
        }

        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                Self(iter.map(|v| v.0).sum())
            }
        }
    };
}

decimal_newtype!(
    /// A price in the quote asset per unit of the base asset (e.g. USDT per BTC).
    Price
);
decimal_newtype!(
    /// A quantity of the base asset (e.g. BTC).
    Qty
);
decimal_newtype!(
    /// An amount of the quote asset (e.g. USDT): notional, balance, fee, PnL.
    Quote
);

impl Mul<Qty> for Price {
    type Output = Quote;
    fn mul(self, rhs: Qty) -> Quote {
        Quote(self.0 * rhs.0)
    }
}

impl Mul<Price> for Qty {
    type Output = Quote;
    fn mul(self, rhs: Price) -> Quote {
        Quote(self.0 * rhs.0)
    }
}

impl Div<Price> for Quote {
    type Output = Qty;
    fn div(self, rhs: Price) -> Qty {
        Qty(self.0 / rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn price_times_qty_is_exact_quote() {
        let notional = Price(dec!(0.1)) * Qty(dec!(3));
        assert_eq!(notional, Quote(dec!(0.3)));
    }

    #[test]
    fn parses_exchange_strings_without_loss() {
        let p: Price = "93576.00000000".parse().unwrap();
        assert_eq!(p.get(), dec!(93576));
        assert_eq!(p.to_string(), "93576");
        let q: Qty = "0.123456789012345678".parse().unwrap();
        assert_eq!(q.get(), dec!(0.123456789012345678));
    }
}
