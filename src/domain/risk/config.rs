//! `RiskConfig`: every risk limit, the sizing mode and the circuit-breaker rules, with documented
//! defaults and range validation. Percentages are percent (`2` means 2 %), never fractions.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How the size of a new entry is computed (see `sizing.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizingMode {
    /// Risk `risk_per_trade_pct` % of equity between the entry and the stop.
    Fixed,
    /// Fractional Kelly from the last `kelly_lookback` closed trades; fixed below `kelly_min_trades`.
    Kelly,
    /// Stop distance `atr_multiplier` × ATR; the risk budget is the fixed one.
    Atr,
}

/// What the circuit breaker does when a rule trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerAction {
    /// No new entries; closes and reductions still go through.
    ReduceOnly,
    /// Trading stops; closes and reductions (to get flat) still go through.
    Halted,
}

/// How a tripped breaker returns to Active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerRecovery {
    /// After `cooldown_minutes`.
    Cooldown,
    /// At the next UTC midnight (the natural end of a daily loss limit).
    DayRoll,
    /// Only by `trademind risk reset-breaker`.
    Manual,
}

/// Risk limits for one strategy (or the default for all). Decimals serialise as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Sizing mode: fixed | kelly | atr. Default fixed.
    pub sizing_mode: SizingMode,
    /// % of equity put at risk (entry to stop) by one trade; the ceiling in every mode. Default 1.
    pub risk_per_trade_pct: Decimal,
    /// Largest position notional, % of equity. Default 10.
    pub max_position_pct: Decimal,
    /// Daily loss (realised + unrealised, UTC day) that stops new entries, % of start-of-day
    /// equity. Default 3.
    pub max_daily_loss_pct: Decimal,
    /// Drawdown from peak equity that stops new entries, %. Default 15.
    pub max_drawdown_pct: Decimal,
    /// Most positions open at once. Default 3.
    pub max_open_positions: u32,
    /// Largest notional in one symbol (existing + new), % of equity. Default 20.
    pub max_symbol_exposure_pct: Decimal,
    /// Lowest decision confidence (0..=1) accepted for an entry. Default 0.6.
    pub min_confidence: Decimal,
    /// Lowest reward:risk ((take-profit − entry) ÷ (entry − stop)) for an entry. Default 1.5.
    pub min_reward_risk: Decimal,
    /// Portfolio heat cap: money at risk if every stop is hit, % of total equity. Default 6.
    pub heat_cap_pct: Decimal,
    /// Fraction of the full Kelly bet actually taken. Default 0.25.
    pub kelly_fraction: Decimal,
    /// Closed trades needed before Kelly is used; fewer falls back to fixed. Default 20.
    pub kelly_min_trades: u32,
    /// How many of the most recent closed trades Kelly looks at. Default 50.
    pub kelly_lookback: u32,
    /// Cap on the Kelly risk, % of equity (risk_per_trade_pct still applies on top). Default 2.
    pub kelly_cap_pct: Decimal,
    /// ATR mode: stop distance = this × ATR. Default 2.
    pub atr_multiplier: Decimal,
    /// Losing trades in a row that trip the breaker (0 = rule off). Default 3.
    pub consecutive_losses_limit: u32,
    /// Cooldown before a `cooldown` recovery returns to Active, minutes. Default 60.
    pub cooldown_minutes: u32,
    /// Breaker action when the daily loss limit is hit. Default halted.
    pub daily_loss_action: BreakerAction,
    /// How the daily-loss trip recovers. Default day_roll.
    pub daily_loss_recovery: BreakerRecovery,
    /// Breaker action after `consecutive_losses_limit` losses in a row. Default reduce_only.
    pub consecutive_losses_action: BreakerAction,
    /// How the consecutive-losses trip recovers. Default cooldown.
    pub consecutive_losses_recovery: BreakerRecovery,
    /// Breaker action at the drawdown limit. Default halted.
    pub drawdown_action: BreakerAction,
    /// How the drawdown trip recovers. Default manual.
    pub drawdown_recovery: BreakerRecovery,
    /// Breaker action of the manual kill switch (always recovers manually). Default halted.
    pub kill_action: BreakerAction,
    /// Taker fee rate (0.001 = 0.1 %): reserved from the available balance and counted on both
    /// the entry and the stop's sell when an entry is sized. Default 0.001.
    pub fee_rate: Decimal,
    /// Worst slippage of a market entry over its reference price, %, counted in the loss at
    /// the stop. Default 0.05.
    pub slippage_pct: Decimal,
    /// Closest a stop may sit under the entry, % of the entry; a tighter stop is refused (the
    /// spread and fees alone would hit it). 0 turns the rule off. Default 0.1.
    pub min_stop_distance_pct: Decimal,
    /// Closest a stop may sit under the entry in multiples of ATR (when ATR is known); 0 turns
    /// the rule off. Default 0.
    pub min_stop_atr_multiple: Decimal,
    /// Candles a strategy waits after a stop-loss exit before it enters that symbol again
    /// (per strategy and symbol); 0 turns the rule off. Default 0.
    pub cooldown_candles_after_stop: u32,
    /// Stop-loss exits within `stop_lock_window_candles` that lock the symbol for the
    /// strategy; 0 turns the rule off. Default 0.
    pub stop_lock_count: u32,
    /// The window the stops are counted in, candles. Default 24.
    pub stop_lock_window_candles: u32,
    /// How long the lock lasts from the last of those stops, candles. Default 24.
    pub stop_lock_candles: u32,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            sizing_mode: SizingMode::Fixed,
            risk_per_trade_pct: dec!(1),
            max_position_pct: dec!(10),
            max_daily_loss_pct: dec!(3),
            max_drawdown_pct: dec!(15),
            max_open_positions: 3,
            max_symbol_exposure_pct: dec!(20),
            min_confidence: dec!(0.6),
            min_reward_risk: dec!(1.5),
            heat_cap_pct: dec!(6),
            kelly_fraction: dec!(0.25),
            kelly_min_trades: 20,
            kelly_lookback: 50,
            kelly_cap_pct: dec!(2),
            atr_multiplier: dec!(2),
            consecutive_losses_limit: 3,
            cooldown_minutes: 60,
            daily_loss_action: BreakerAction::Halted,
            daily_loss_recovery: BreakerRecovery::DayRoll,
            consecutive_losses_action: BreakerAction::ReduceOnly,
            consecutive_losses_recovery: BreakerRecovery::Cooldown,
            drawdown_action: BreakerAction::Halted,
            drawdown_recovery: BreakerRecovery::Manual,
            kill_action: BreakerAction::Halted,
            fee_rate: dec!(0.001),
            slippage_pct: dec!(0.05),
            min_stop_distance_pct: dec!(0.1),
            min_stop_atr_multiple: Decimal::ZERO,
            cooldown_candles_after_stop: 0,
            stop_lock_count: 0,
            stop_lock_window_candles: 24,
            stop_lock_candles: 24,
        }
    }
}

/// A config value outside its range, or a key that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RiskConfigError {
    #[error("risk.{key} = {value} is out of range: {expected}")]
    OutOfRange {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown risk setting {0:?}; `trademind risk show` lists the keys")]
    UnknownKey(String),
    #[error("risk.{key}: cannot use {value:?}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

fn pct_in(
    key: &'static str,
    value: Decimal,
    low_exclusive: Decimal,
    high: Decimal,
    expected: &'static str,
) -> Result<(), RiskConfigError> {
    if value <= low_exclusive || value > high {
        return Err(RiskConfigError::OutOfRange {
            key,
            value: value.normalize().to_string(),
            expected,
        });
    }
    Ok(())
}

impl RiskConfig {
    /// Every range check; the error names the key and the accepted range.
    pub fn validate(&self) -> Result<(), RiskConfigError> {
        let hundred = dec!(100);
        pct_in(
            "risk_per_trade_pct",
            self.risk_per_trade_pct,
            Decimal::ZERO,
            dec!(10),
            "a percent of equity in (0, 10]",
        )?;
        pct_in(
            "max_position_pct",
            self.max_position_pct,
            Decimal::ZERO,
            hundred,
            "a percent of equity in (0, 100]",
        )?;
        pct_in(
            "max_daily_loss_pct",
            self.max_daily_loss_pct,
            Decimal::ZERO,
            hundred,
            "a percent in (0, 100] (2 means 2 %)",
        )?;
        pct_in(
            "max_drawdown_pct",
            self.max_drawdown_pct,
            Decimal::ZERO,
            hundred,
            "a percent in (0, 100]",
        )?;
        if self.max_open_positions == 0 || self.max_open_positions > 1000 {
            return Err(RiskConfigError::OutOfRange {
                key: "max_open_positions",
                value: self.max_open_positions.to_string(),
                expected: "an integer in [1, 1000]",
            });
        }
        pct_in(
            "max_symbol_exposure_pct",
            self.max_symbol_exposure_pct,
            Decimal::ZERO,
            hundred,
            "a percent of equity in (0, 100]",
        )?;
        if self.min_confidence < Decimal::ZERO || self.min_confidence > Decimal::ONE {
            return Err(RiskConfigError::OutOfRange {
                key: "min_confidence",
                value: self.min_confidence.normalize().to_string(),
                expected: "a confidence in [0, 1]",
            });
        }
        if self.min_reward_risk < Decimal::ZERO || self.min_reward_risk > hundred {
            return Err(RiskConfigError::OutOfRange {
                key: "min_reward_risk",
                value: self.min_reward_risk.normalize().to_string(),
                expected: "a ratio in [0, 100]",
            });
        }
        pct_in(
            "heat_cap_pct",
            self.heat_cap_pct,
            Decimal::ZERO,
            hundred,
            "a percent of equity in (0, 100]",
        )?;
        pct_in(
            "kelly_fraction",
            self.kelly_fraction,
            Decimal::ZERO,
            Decimal::ONE,
            "a fraction of the full Kelly bet in (0, 1]",
        )?;
        if self.kelly_min_trades < 2 {
            return Err(RiskConfigError::OutOfRange {
                key: "kelly_min_trades",
                value: self.kelly_min_trades.to_string(),
                expected: "at least 2 closed trades",
            });
        }
        if self.kelly_lookback < self.kelly_min_trades {
            return Err(RiskConfigError::OutOfRange {
                key: "kelly_lookback",
                value: self.kelly_lookback.to_string(),
                expected: "at least kelly_min_trades",
            });
        }
        pct_in(
            "kelly_cap_pct",
            self.kelly_cap_pct,
            Decimal::ZERO,
            dec!(25),
            "a percent of equity in (0, 25]",
        )?;
        pct_in(
            "atr_multiplier",
            self.atr_multiplier,
            Decimal::ZERO,
            dec!(20),
            "a multiple of ATR in (0, 20]",
        )?;
        if self.consecutive_losses_limit > 100 {
            return Err(RiskConfigError::OutOfRange {
                key: "consecutive_losses_limit",
                value: self.consecutive_losses_limit.to_string(),
                expected: "0 (off) to 100 losing trades",
            });
        }
        if self.cooldown_minutes == 0 || self.cooldown_minutes > 10_080 {
            return Err(RiskConfigError::OutOfRange {
                key: "cooldown_minutes",
                value: self.cooldown_minutes.to_string(),
                expected: "1 to 10080 minutes (one week)",
            });
        }
        if self.fee_rate < Decimal::ZERO || self.fee_rate >= dec!(0.1) {
            return Err(RiskConfigError::OutOfRange {
                key: "fee_rate",
                value: self.fee_rate.normalize().to_string(),
                expected: "a rate in [0, 0.1) (0.001 = 0.1 %)",
            });
        }
        for (key, value, high, expected) in [
            (
                "slippage_pct",
                self.slippage_pct,
                dec!(5),
                "a percent in [0, 5]",
            ),
            (
                "min_stop_distance_pct",
                self.min_stop_distance_pct,
                dec!(50),
                "a percent of the entry in [0, 50] (0 = off)",
            ),
            (
                "min_stop_atr_multiple",
                self.min_stop_atr_multiple,
                dec!(20),
                "a multiple of ATR in [0, 20] (0 = off)",
            ),
        ] {
            if value < Decimal::ZERO || value > high {
                return Err(RiskConfigError::OutOfRange {
                    key,
                    value: value.normalize().to_string(),
                    expected,
                });
            }
        }
        for (key, value, low, high, expected) in [
            (
                "cooldown_candles_after_stop",
                self.cooldown_candles_after_stop,
                0,
                10_000,
                "0 (off) to 10000 candles",
            ),
            (
                "stop_lock_count",
                self.stop_lock_count,
                0,
                100,
                "0 (off) to 100 stops",
            ),
            (
                "stop_lock_window_candles",
                self.stop_lock_window_candles,
                1,
                10_000,
                "1 to 10000 candles",
            ),
            (
                "stop_lock_candles",
                self.stop_lock_candles,
                1,
                10_000,
                "1 to 10000 candles",
            ),
        ] {
            if value < low || value > high {
                return Err(RiskConfigError::OutOfRange {
                    key,
                    value: value.to_string(),
                    expected,
                });
            }
        }
        Ok(())
    }

    /// The keys `set` accepts, in display order.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(RiskConfig::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// A copy with `key` set from its text form, validated. Used by `trademind risk set`.
    pub fn with_value(&self, key: &str, value: &str) -> Result<RiskConfig, RiskConfigError> {
        let serde_json::Value::Object(mut map) =
            serde_json::to_value(self).map_err(|e| RiskConfigError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
                reason: e.to_string(),
            })?
        else {
            return Err(RiskConfigError::UnknownKey(key.to_string()));
        };
        let slot = map
            .get_mut(key)
            .ok_or_else(|| RiskConfigError::UnknownKey(key.to_string()))?;
        let text = value.trim();
        *slot = match slot {
            serde_json::Value::Number(_) => {
                let n: u32 = text.parse().map_err(|_| RiskConfigError::BadValue {
                    key: key.to_string(),
                    value: value.to_string(),
                    reason: "expected a whole number".to_string(),
                })?;
                serde_json::Value::from(n)
            }
            _ => {
                if let Some(current) = slot.as_str() {
                    // Decimals travel as strings; check the text is a number before serde does.
                    if current.parse::<Decimal>().is_ok() && text.parse::<Decimal>().is_err() {
                        return Err(RiskConfigError::BadValue {
                            key: key.to_string(),
                            value: value.to_string(),
                            reason: "expected a number".to_string(),
                        });
                    }
                }
                serde_json::Value::String(text.to_ascii_lowercase())
            }
        };
        let updated: RiskConfig =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
                RiskConfigError::BadValue {
                    key: key.to_string(),
                    value: value.to_string(),
                    reason: e.to_string(),
                }
            })?;
        updated.validate()?;
        Ok(updated)
    }

    /// Every key with its value as text, for `risk show`.
    pub fn entries(&self) -> Vec<(String, String)> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for SizingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizingMode::Fixed => "fixed",
            SizingMode::Kelly => "kelly",
            SizingMode::Atr => "atr",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_percent_means_percent() {
        let c = RiskConfig::default();
        c.validate().unwrap();
        assert_eq!(c.max_daily_loss_pct, dec!(3));
        assert_eq!(c.risk_per_trade_pct, dec!(1));
    }

    #[test]
    fn decimals_round_trip_as_strings_in_json_and_toml() {
        let c = RiskConfig::default();
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"risk_per_trade_pct\":\"1\""), "{json}");
        assert_eq!(serde_json::from_str::<RiskConfig>(&json).unwrap(), c);
        let toml_text = "sizing_mode = \"kelly\"\nmax_daily_loss_pct = \"2.5\"\n";
        let parsed: RiskConfig = toml::from_str(toml_text).unwrap();
        assert_eq!(parsed.sizing_mode, SizingMode::Kelly);
        assert_eq!(parsed.max_daily_loss_pct, dec!(2.5));
        assert_eq!(parsed.heat_cap_pct, dec!(6));
    }

    #[test]
    fn unknown_keys_are_rejected_when_parsing() {
        assert!(serde_json::from_str::<RiskConfig>("{\"max_daily_loss\":\"2\"}").is_err());
    }

    #[test]
    fn out_of_range_value_names_the_key() {
        let c = RiskConfig {
            max_daily_loss_pct: dec!(150),
            ..RiskConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("max_daily_loss_pct"), "{err}");
        let c = RiskConfig {
            min_confidence: dec!(1.2),
            ..RiskConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("min_confidence")
        );
    }

    #[test]
    fn with_value_sets_decimals_integers_and_enums() {
        let c = RiskConfig::default();
        let c = c.with_value("max_daily_loss_pct", "2").unwrap();
        assert_eq!(c.max_daily_loss_pct, dec!(2));
        let c = c.with_value("max_open_positions", "5").unwrap();
        assert_eq!(c.max_open_positions, 5);
        let c = c.with_value("sizing_mode", "ATR").unwrap();
        assert_eq!(c.sizing_mode, SizingMode::Atr);
        let c = c.with_value("drawdown_action", "reduce_only").unwrap();
        assert_eq!(c.drawdown_action, BreakerAction::ReduceOnly);
    }

    #[test]
    fn with_value_refuses_unknown_keys_garbage_and_out_of_range() {
        let c = RiskConfig::default();
        assert!(matches!(
            c.with_value("max_loss", "2"),
            Err(RiskConfigError::UnknownKey(_))
        ));
        assert!(matches!(
            c.with_value("heat_cap_pct", "lots"),
            Err(RiskConfigError::BadValue { .. })
        ));
        assert!(matches!(
            c.with_value("max_open_positions", "-1"),
            Err(RiskConfigError::BadValue { .. })
        ));
        assert!(matches!(
            c.with_value("heat_cap_pct", "0"),
            Err(RiskConfigError::OutOfRange {
                key: "heat_cap_pct",
                ..
            })
        ));
        assert!(matches!(
            c.with_value("sizing_mode", "martingale"),
            Err(RiskConfigError::BadValue { .. })
        ));
    }
}
