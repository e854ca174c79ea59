//! Exact money types. Prices, quantities and quote amounts are `Decimal` newtypes so that a
//! price can never be added to a quantity by mistake; f64 appears only in indicator math.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};
use std::str::FromStr;

/// Powers of ten that are exact in an f64 (10^22 is the largest).
pub(crate) const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `10^k` for every k a u64 holds (fixed-point parsing and scaling).
pub(crate) const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut k = 1;
    while k < 20 {
        t[k] = t[k - 1] * 10;
        k += 1;
    }
    t
};

/// A decimal as an f64, for statistics and charts only.
///
/// With a scale of at most 22 the power of ten is an exact f64, so the result is the mantissa
/// (rounded once to an f64) divided by it (rounded once more): within one unit in the last
/// place, in a few nanoseconds. Below 2^53 the mantissa is exact and the result is the correctly
/// rounded one, the same f64 as parsing the decimal's text; that covers nearly every price and
/// quantity. Larger scales take the decimal library's general conversion.
#[inline]
pub fn decimal_to_f64(d: Decimal) -> f64 {
    // The 96-bit mantissa as its three 32-bit words (the decimal's own little-endian layout:
    // flags, lo, mid, hi). Working on the words keeps the conversion on 64-bit integers; an i128
    // conversion would go through a slow library routine.
    let b = d.serialize();
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let scale = d.scale() as usize;
    if scale >= EXACT_POW10.len() {
        use rust_decimal::prelude::ToPrimitive;
        return d.to_f64().unwrap_or(f64::NAN);
    }
    let low = (u64::from(word(8)) << 32) | u64::from(word(4));
    let hi = word(12);
    // Exact below 2^53; one rounding up to 2^64; two beyond.
    let magnitude = if hi == 0 {
        low as f64
    } else {
        f64::from(hi) * 18_446_744_073_709_551_616.0 + low as f64
    };
    let value = magnitude / EXACT_POW10[scale];
    if d.is_sign_negative() { -value } else { value }
}

/// Digits [`parse_units`] reads at most: a mantissa then fits a u64 with room to spare, and
/// any two such numbers compare exactly in a u128 at a common scale.
pub const MAX_UNITS_DIGITS: u32 = 18;

/// The leading ASCII digits of `bytes` (at least one, at most [`MAX_UNITS_DIGITS`]) as an
/// integer, and how many there were.
#[inline]
pub fn leading_digits(bytes: &[u8]) -> Option<(u64, u32)> {
    let mut value = 0u64;
    let mut digits = 0u32;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        value = value * 10 + u64::from(d);
        digits += 1;
        if digits > MAX_UNITS_DIGITS {
            return None;
        }
    }
    (digits > 0).then_some((value, digits))
}

/// A plain unsigned decimal written `123` or `123.45` (at most [`MAX_UNITS_DIGITS`] digits) at
/// the start of `bytes`, as its mantissa and scale exactly as written (`1.50` is `(150, 2)`, the
/// decimal `Decimal::from_str` gives), and what follows it. `None` for anything else (a sign,
/// an exponent, `1.`, more digits), which a caller hands to the decimal library: the fast path
/// of reading numbers from text without a `Decimal` per number.
#[inline]
pub fn parse_units(bytes: &[u8]) -> Option<((u64, u32), &[u8])> {
    let (whole, int_digits) = leading_digits(bytes)?;
    let rest = &bytes[int_digits as usize..];
    match rest.strip_prefix(b".") {
        Some(after) => {
            let (frac, frac_digits) = leading_digits(after)?;
            if int_digits + frac_digits > MAX_UNITS_DIGITS {
                return None;
            }
            let m = whole * 10u64.pow(frac_digits) + frac;
            Some(((m, frac_digits), &after[frac_digits as usize..]))
        }
        None => Some(((whole, 0), rest)),
    }
}

/// `a / 10^sa` against `b / 10^sb`, exactly (mantissas of at most [`MAX_UNITS_DIGITS`] digits
/// and scales of at most 18: both fit a u128 at the larger scale).
#[inline]
pub fn compare_units((a, sa): (u64, u32), (b, sb): (u64, u32)) -> std::cmp::Ordering {
    if sa == sb {
        return a.cmp(&b);
    }
    let (a, b) = (u128::from(a), u128::from(b));
    if sa < sb {
        (a * 10u128.pow(sb - sa)).cmp(&b)
    } else {
        a.cmp(&(b * 10u128.pow(sa - sb)))
    }
}

/// The importer's checks on a candle's open, high, low and close as fixed-point numbers (see
/// [`compare_units`]): a positive low, the high at or above it, the open and close between them.
#[inline]
pub fn units_make_a_candle(
    open: (u64, u32),
    high: (u64, u32),
    low: (u64, u32),
    close: (u64, u32),
) -> bool {
    let within = |v| compare_units(v, low).is_ge() && compare_units(v, high).is_le();
    low.0 > 0 && compare_units(high, low).is_ge() && within(open) && within(close)
}

/// `d` as its mantissa and scale, when it is positive or zero (not -0) with a mantissa under
/// 2^64. For such a decimal with a scale under 23, `m as f64 / 10^scale` is [`decimal_to_f64`].
#[inline]
pub(crate) fn decimal_units(d: Decimal) -> Option<(u64, u32)> {
    if d.is_sign_negative() {
        return None;
    }
    let b = d.serialize();
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (word(12) == 0).then(|| ((u64::from(word(8)) << 32) | u64::from(word(4)), d.scale()))
}

/// `q / 10^scale` with its trailing zeros dropped, as the decimal library's own quotient has
/// none: the same number at the smallest scale. Generic so a quotient that fits 64 bits is
/// divided by ten with a 64-bit instruction, not a 128-bit library routine.
#[inline]
fn without_trailing_zeros<T>(mut q: T, mut scale: u32) -> (T, u32)
where
    T: Copy + PartialEq + From<i8> + std::ops::Rem<Output = T> + std::ops::DivAssign,
{
    let ten = T::from(10);
    while scale > 0 && q % ten == T::from(0) {
        q /= ten;
        scale -= 1;
    }
    (q, scale)
}

/// `a / b` cut toward zero to `dp` decimal places, exactly: the true quotient truncated, not the
/// decimal library's 28-digit quotient rounded and then truncated. Integer arithmetic on the
/// mantissas when they fit an i128 (the common case, many times faster than a decimal division
/// and rounding); the decimal library otherwise. `None` when `b` is zero or the result does not
/// fit a decimal.
pub fn div_to_zero_dp(a: Decimal, b: Decimal, dp: u32) -> Option<Decimal> {
    if b.is_zero() {
        return None;
    }
    // 10^k for k <= 38 (the largest that fits an i128), from a table: no loop, no overflow check.
    const POW10_I128: [i128; 39] = {
        let mut t = [1i128; 39];
        let mut k = 1;
        while k < 39 {
            t[k] = t[k - 1] * 10;
            k += 1;
        }
        t
    };
    let pow10 = |k: u32| POW10_I128.get(k as usize).copied();
    let exact = || -> Option<Decimal> {
        // a / b = (ma / 10^sa) / (mb / 10^sb); times 10^dp = ma * 10^(sb + dp - sa) / mb, the
        // power of ten on whichever side keeps it non-negative.
        let (ma, mb) = (a.mantissa(), b.mantissa());
        let (num, den) = match (b.scale() + dp).checked_sub(a.scale()) {
            Some(e) => (ma.checked_mul(pow10(e)?)?, mb),
            None => (ma, mb.checked_mul(pow10(a.scale() - b.scale() - dp)?)?),
        };
        // Most operands fit 64 bits, where the division is one machine instruction rather
        // than a 128-bit library routine; so do the trailing zeros' divisions by ten.
        if let (Ok(n), Ok(d)) = (i64::try_from(num), i64::try_from(den)) {
            let q = n.checked_div(d)?;
            if q == 0 {
                return Some(Decimal::ZERO);
            }
            let (q, scale) = without_trailing_zeros(q, dp);
            return Decimal::try_new(q, scale).ok();
        }
        let q = num / den;
        if q == 0 {
            return Some(Decimal::ZERO);
        }
        let (q, scale) = without_trailing_zeros(q, dp);
        Decimal::try_from_i128_with_scale(q, scale).ok()
    };
    exact().or_else(|| {
        a.checked_div(b)
            .map(|q| q.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::ToZero))
    })
}

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
            #[inline]
            pub fn to_f64(self) -> f64 {
                decimal_to_f64(self.0)
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
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    proptest! {
        /// The fast conversion gives the f64 that parsing the decimal's text gives (the
        /// correctly rounded value), on both its fast path and the fallback.
        #[test]
        fn decimal_to_f64_is_correctly_rounded(
            m in any::<i128>().prop_map(|m| m % 79_228_162_514_264_337_593_543_950_335),
            scale in 0u32..=28,
        ) {
            let d = Decimal::from_i128_with_scale(m, scale);
            let expected: f64 = d.to_string().parse().unwrap();
            let got = decimal_to_f64(d);
            if m.unsigned_abs() < 1 << 53 && scale <= 22 {
                prop_assert_eq!(got.to_bits(), expected.to_bits());
            } else {
                // Two roundings: within an ulp or two of the correctly rounded value.
                prop_assert!((got - expected).abs() <= expected.abs() * 2.0 * f64::EPSILON);
            }
        }
    }

    proptest! {
        /// The units of a decimal give its f64 by one division, the same bits as
        /// `decimal_to_f64`; negative decimals and wide mantissas have no units.
        #[test]
        fn decimal_units_give_the_same_f64(
            m in any::<i128>().prop_map(|m| m % 79_228_162_514_264_337_593_543_950_335),
            scale in 0u32..=22,
        ) {
            let d = Decimal::from_i128_with_scale(m, scale);
            match decimal_units(d) {
                Some((u, s)) => {
                    prop_assert!(m >= 0);
                    prop_assert_eq!(i128::from(u), m);
                    prop_assert_eq!(s, scale);
                    prop_assert_eq!(
                        (u as f64 / EXACT_POW10[s as usize]).to_bits(),
                        decimal_to_f64(d).to_bits()
                    );
                }
                None => prop_assert!(m < 0 || m > i128::from(u64::MAX)),
            }
        }
    }

    proptest! {
        /// The quotient's digits and scale are the exact truncated quotient's, its trailing
        /// zeros dropped, whichever width the division ran in (64-bit operands and quotients
        /// strip their zeros in 64 bits): the same decimal to the last bit.
        #[test]
        fn div_to_zero_dp_is_the_truncated_quotient_without_trailing_zeros(
            ma in -1_000_000_000_000_000i64..1_000_000_000_000_000,
            sa in 0u32..18,
            mb in 1i64..10_000_000_000,
            sb in 0u32..12,
            negative_divisor in any::<bool>(),
            dp in 0u32..15,
        ) {
            let a = Decimal::new(ma, sa);
            let b = Decimal::new(if negative_divisor { -mb } else { mb }, sb);
            // num / den = a / b * 10^dp, in i128; the exact path's range only.
            let (mut num, mut den) = (a.mantissa(), b.mantissa());
            let e = i64::from(sb) + i64::from(dp) - i64::from(sa);
            let scaled = if e >= 0 {
                num.checked_mul(10i128.pow(e as u32)).map(|n| num = n)
            } else {
                den.checked_mul(10i128.pow((-e) as u32)).map(|d| den = d)
            };
            prop_assume!(scaled.is_some() && (num / den).unsigned_abs() < 1u128 << 96);
            let want = Decimal::from_i128_with_scale(num / den, dp).normalize();
            let got = div_to_zero_dp(a, b, dp).unwrap();
            prop_assert_eq!(got.serialize(), want.serialize(), "{} / {} to {} places", a, b, dp);
        }

        /// The integer path truncates the true quotient: q * b <= a < (q + one unit) * b for a
        /// positive a and b, checked with exact decimal products.
        #[test]
        fn div_to_zero_dp_truncates_the_exact_quotient(
            ma in 1i64..1_000_000_000_000,
            sa in 0u32..10,
            mb in 1i64..1_000_000_000,
            sb in 0u32..10,
            dp in 0u32..13,
        ) {
            let a = Decimal::new(ma, sa);
            let b = Decimal::new(mb, sb);
            let q = div_to_zero_dp(a, b, dp).unwrap();
            prop_assert!(q.scale() <= dp);
            let unit = Decimal::new(1, dp);
            prop_assert!(q * b <= a, "{} * {} > {}", q, b, a);
            prop_assert!((q + unit) * b > a, "({} + {}) * {} <= {}", q, unit, b, a);
            // And it agrees with the decimal library wherever that is exact enough to compare.
            let lib = (a / b).round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::ToZero);
            prop_assert!((lib - q).abs() <= unit);
        }
    }

    #[test]
    fn div_to_zero_dp_by_hand() {
        // 100000 / (30000 * 1.001) = 3.33000333000333000...
        assert_eq!(
            div_to_zero_dp(dec!(100000), dec!(30000) * dec!(1.001), 12),
            Some(dec!(3.330003330003))
        );
        assert_eq!(div_to_zero_dp(dec!(5), dec!(2), 12), Some(dec!(2.5)));
        assert_eq!(div_to_zero_dp(dec!(-7), dec!(2), 0), Some(dec!(-3)));
        assert_eq!(div_to_zero_dp(dec!(1), Decimal::ZERO, 12), None);
    }

    #[test]
    fn decimal_to_f64_of_typical_money() {
        assert_eq!(Price(dec!(93576.01)).to_f64(), 93576.01);
        assert_eq!(Qty(dec!(0.00012345)).to_f64(), 0.00012345);
        assert_eq!(Quote(dec!(-12.5)).to_f64(), -12.5);
        // 2^53 + 1 does not fit the fast path; the fallback still converts it.
        assert_eq!(Quote(dec!(9007199254740993)).to_f64(), 9007199254740992.0);
    }

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
