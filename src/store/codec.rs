//! Column codecs: exact decimals as TEXT, and enums by their wire names.

use super::{StoreError, StoreResult};
use rust_decimal::Decimal;
use std::str::FromStr;

/// A decimal as stored: the exact text, trailing zeros removed.
pub fn dec_to_sql(value: Decimal) -> String {
    value.normalize().to_string()
}

/// Parse a stored decimal, naming the column when the text is not a number.
pub fn dec_from_sql(column: &'static str, text: &str) -> StoreResult<Decimal> {
    Decimal::from_str_exact(text).map_err(|e| StoreError::Corrupt {
        column,
        value: text.to_string(),
        reason: e.to_string(),
    })
}

pub fn opt_dec_from_sql(
    column: &'static str,
    text: Option<String>,
) -> StoreResult<Option<Decimal>> {
    text.map(|t| dec_from_sql(column, &t)).transpose()
}

/// Parse anything with `FromStr` stored as text, naming the column on failure.
pub fn parse_col<T: FromStr>(column: &'static str, text: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    T::from_str(text).map_err(|e| StoreError::Corrupt {
        column,
        value: text.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn eighteen_significant_digits_round_trip() {
        for v in [
            dec!(123456789.123456789),
            dec!(0.000000000123456789),
            dec!(-98765432109876.5432),
        ] {
            assert_eq!(dec_from_sql("x", &dec_to_sql(v)).unwrap(), v);
        }
        assert!(dec_from_sql("price", "abc").is_err());
    }
}
