//! Trading symbols (e.g. `BTCUSDT`), validated at the edge so the rest of the code can trust them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An exchange symbol: 2–20 upper-case ASCII letters or digits, as Binance spells them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid symbol {0:?}: expected 2-20 letters or digits such as BTCUSDT")]
pub struct InvalidSymbol(pub String);

impl Symbol {
    pub fn new(raw: &str) -> Result<Self, InvalidSymbol> {
        let upper = raw.trim().to_ascii_uppercase();
        let ok =
            (2..=20).contains(&upper.len()) && upper.chars().all(|c| c.is_ascii_alphanumeric());
        if ok {
            Ok(Self(upper))
        } else {
            Err(InvalidSymbol(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Symbol {
    type Err = InvalidSymbol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Symbol {
    type Error = InvalidSymbol;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<Symbol> for String {
    fn from(value: Symbol) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_rejects_junk() {
        assert_eq!(Symbol::new("btcusdt").unwrap().as_str(), "BTCUSDT");
        assert!(Symbol::new("BTC/USDT").is_err());
        assert!(Symbol::new("").is_err());
        assert!(Symbol::new("B").is_err());
    }
}
