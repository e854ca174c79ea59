//! The `[backtest]` configuration section: defaults for runs started from the CLI or the TUI.

use super::fills::FillModel;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacktestSettings {
    /// Quote cash a run starts with. Default "100000".
    pub initial_cash: Decimal,
    /// Taker fee in basis points (market orders, stops). Default 10 (Binance's 0.1 %).
    pub taker_fee_bps: Decimal,
    /// Maker fee in basis points (take-profit limit orders). Default 10.
    pub maker_fee_bps: Decimal,
    /// Adverse slippage on market orders and stops, basis points. Default 0.
    pub slippage_bps: Decimal,
    /// next-open (default, what a live bot gets) or close (optimistic, for parity runs).
    pub fill: FillModel,
}

impl Default for BacktestSettings {
    fn default() -> Self {
        BacktestSettings {
            initial_cash: Decimal::new(100_000, 0),
            taker_fee_bps: Decimal::new(10, 0),
            maker_fee_bps: Decimal::new(10, 0),
            slippage_bps: Decimal::ZERO,
            fill: FillModel::NextOpen,
        }
    }
}

impl BacktestSettings {
    /// Ranges: cash positive; fees and slippage between 0 and 1000 bps (10 %).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.initial_cash <= Decimal::ZERO {
            return Err(("backtest.initial_cash".into(), "must be positive".into()));
        }
        let max = Decimal::new(1000, 0);
        for (key, v) in [
            ("backtest.taker_fee_bps", self.taker_fee_bps),
            ("backtest.maker_fee_bps", self.maker_fee_bps),
            ("backtest.slippage_bps", self.slippage_bps),
        ] {
            if v < Decimal::ZERO || v > max {
                return Err((key.into(), format!("{v} is outside 0..=1000 basis points")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_are_checked() {
        assert!(BacktestSettings::default().validate().is_ok());
        let s: BacktestSettings = toml::from_str("slippage_bps = \"5000\"").unwrap();
        assert_eq!(s.validate().unwrap_err().0, "backtest.slippage_bps");
        let s: BacktestSettings = toml::from_str("fill = \"close\"").unwrap();
        assert_eq!(s.fill, FillModel::Close);
        assert!(toml::from_str::<BacktestSettings>("fees = 1").is_err());
    }
}
