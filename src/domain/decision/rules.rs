//! The rule-based engine: the seed's RSI + MACD rule. Used when no LLM key is configured, when the
//! LLM budget is exhausted, and by backtests; always labelled `rules` where a decision is shown.

use serde::{Deserialize, Serialize};

use super::input::DecisionInput;
use crate::domain::market::{Signal, simple_signal_at};

use super::types::{Action, Level, LevelKind, TimeHorizon, TradingDecision};

/// Sizing and exits of a rules entry; the signal itself is `market::simple_signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Size of a rules entry, percent of equity. Default 5.
    pub position_size_pct: f64,
    /// Stop-loss distance, percent. Default 2.
    pub stop_loss_pct: f64,
    /// Take-profit distance, percent. Default 4.
    pub take_profit_pct: f64,
    /// RSI below this (with a rising MACD histogram) buys. Default 30, the seed's rule.
    pub oversold: f64,
    /// RSI above this (with a falling MACD histogram) sells. Default 70, the seed's rule.
    pub overbought: f64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            position_size_pct: 5.0,
            stop_loss_pct: 2.0,
            take_profit_pct: 4.0,
            oversold: 30.0,
            overbought: 70.0,
        }
    }
}

impl RulesConfig {
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: f64, hi: f64| v.is_finite() && v > 0.0 && v <= hi;
        if !ok(self.position_size_pct, 100.0) {
            return Err("rules.position_size_pct must be in (0, 100]".into());
        }
        if !ok(self.stop_loss_pct, 99.0) || !ok(self.take_profit_pct, 1000.0) {
            return Err(
                "rules.stop_loss_pct must be in (0, 99] and rules.take_profit_pct positive".into(),
            );
        }
        let level = |v: f64| v.is_finite() && v > 0.0 && v < 100.0;
        if !level(self.oversold) || !level(self.overbought) || self.oversold >= self.overbought {
            return Err(
                "rules.oversold and rules.overbought must be RSI levels in (0, 100) with oversold below overbought".into(),
            );
        }
        Ok(())
    }
}

/// The seed's rule (`simple_signal`: RSI < 30 with MACD histogram > 0 → BUY, RSI > 70 with
/// histogram < 0 → SELL, else HOLD; the two levels are configurable) turned into a full decision
/// with size and exits.
pub fn rules_decide(input: &DecisionInput, config: &RulesConfig) -> TradingDecision {
    let symbol = input.symbol.as_str();
    let (Some(rsi), Some(hist)) = (input.indicators.rsi, input.indicators.macd_hist) else {
        return TradingDecision::hold(symbol, "rules: not enough candles for RSI and MACD yet");
    };
    let action = match simple_signal_at(rsi, hist, config.oversold, config.overbought) {
        Signal::Buy => Action::Buy,
        Signal::Sell => Action::Sell,
        Signal::Hold => Action::Hold,
    };
    if action == Action::Hold {
        return TradingDecision {
            reasoning: format!("rules: RSI {rsi:.1}, MACD histogram {hist:.4}: no signal"),
            ..TradingDecision::hold(symbol, "")
        };
    }
    // Confidence grows with how far RSI is past its threshold (0.5 at the threshold).
    let distance = match action {
        Action::Buy => config.oversold - rsi,
        _ => rsi - config.overbought,
    };
    let confidence = (0.5 + distance / 60.0).clamp(0.5, 0.95);
    TradingDecision {
        action,
        symbol: symbol.to_string(),
        confidence,
        position_size_pct: config.position_size_pct,
        stop_loss: Some(Level {
            kind: LevelKind::Percent,
            value: config.stop_loss_pct,
        }),
        take_profit: Some(Level {
            kind: LevelKind::Percent,
            value: config.take_profit_pct,
        }),
        time_horizon: TimeHorizon::Intraday,
        reasoning: format!("rules: RSI {rsi:.1}, MACD histogram {hist:.4}"),
        risk_factors: vec!["rule-based signal; no news considered".into()],
        sources: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::input::{IndicatorSnapshot, RiskSnapshot};
    use crate::domain::market::Interval;
    use crate::domain::{Price, Symbol};
    use rust_decimal_macros::dec;

    fn input(rsi: Option<f64>, hist: Option<f64>) -> DecisionInput {
        DecisionInput {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            interval: Interval::H1,
            now_ms: 0,
            price: Price::new(dec!(100)),
            change_24h_pct: 0.0,
            indicators: IndicatorSnapshot {
                rsi,
                macd_hist: hist,
                ..Default::default()
            },
            higher_indicators: None,
            order_book: None,
            position: None,
            risk: RiskSnapshot::default(),
            recent_decisions: vec![],
            reflections: vec![],
            closed_candles: Vec::new(),
        }
    }

    #[test]
    fn oversold_with_rising_macd_buys_with_configured_stop() {
        let d = rules_decide(&input(Some(24.0), Some(0.5)), &RulesConfig::default());
        assert_eq!(d.action, Action::Buy);
        // 0.5 + (30 - 24) / 60 = 0.6
        assert!((d.confidence - 0.6).abs() < 1e-12);
        assert_eq!(d.stop_loss.unwrap().value, 2.0);
    }

    #[test]
    fn configured_oversold_level_buys_where_the_seed_rule_holds() {
        let config = RulesConfig {
            oversold: 45.0,
            overbought: 60.0,
            ..RulesConfig::default()
        };
        let at_40 = input(Some(40.0), Some(0.5));
        assert_eq!(
            rules_decide(&at_40, &RulesConfig::default()).action,
            Action::Hold
        );
        let d = rules_decide(&at_40, &config);
        assert_eq!(d.action, Action::Buy);
        // 0.5 + (45 - 40) / 60
        assert!((d.confidence - (0.5 + 5.0 / 60.0)).abs() < 1e-12);
        assert_eq!(
            rules_decide(&input(Some(62.0), Some(-0.1)), &config).action,
            Action::Sell
        );
        let inverted = RulesConfig {
            oversold: 70.0,
            overbought: 30.0,
            ..RulesConfig::default()
        };
        assert!(inverted.validate().is_err());
    }

    #[test]
    fn overbought_with_falling_macd_sells() {
        let d = rules_decide(&input(Some(76.0), Some(-0.1)), &RulesConfig::default());
        assert_eq!(d.action, Action::Sell);
    }

    #[test]
    fn oversold_with_falling_macd_holds() {
        let d = rules_decide(&input(Some(24.0), Some(-0.1)), &RulesConfig::default());
        assert_eq!(d.action, Action::Hold);
    }

    #[test]
    fn missing_indicators_hold() {
        let d = rules_decide(&input(None, Some(1.0)), &RulesConfig::default());
        assert_eq!(d.action, Action::Hold);
        assert!(d.reasoning.contains("not enough candles"));
    }
}
