//! The `[demo]` configuration section: replay speed, warm-up and the demo strategy's rules.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `[demo]`: how the demo replays and trades. Its strategy is livelier than the defaults
/// (RSI 45/60 instead of 30/70) so that one month of data shows entries and both exits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Replay speed in simulated seconds per real second. Default 3600: one 1h candle a second.
    pub speed: f64,
    /// Candles fed as history before trading starts (indicators need them). Default 100.
    pub warmup_candles: usize,
    /// RSI level below which the demo strategy buys. Default 45.
    pub oversold: f64,
    /// RSI level above which it sells. Default 60.
    pub overbought: f64,
    /// Stop-loss distance, percent. Default 1.5.
    pub stop_loss_pct: f64,
    /// Take-profit distance, percent. Default 3.
    pub take_profit_pct: f64,
    /// Lowest decision confidence the demo's risk layer accepts (0..=1). Default 0.5.
    pub min_confidence: Decimal,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            speed: 3600.0,
            warmup_candles: 100,
            oversold: 45.0,
            overbought: 60.0,
            stop_loss_pct: 1.5,
            take_profit_pct: 3.0,
            min_confidence: Decimal::new(5, 1),
        }
    }
}

impl DemoConfig {
    /// Range checks; the error is (key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 10_000_000.0) {
            return Err(("speed".into(), "must be in (0, 10000000]".into()));
        }
        if !(35..=600).contains(&self.warmup_candles) {
            return Err((
                "warmup_candles".into(),
                "must be between 35 (MACD needs them) and 600".into(),
            ));
        }
        if self.min_confidence < Decimal::ZERO || self.min_confidence > Decimal::ONE {
            return Err(("min_confidence".into(), "must be in [0, 1]".into()));
        }
        self.rules().validate().map_err(|m| {
            (
                "oversold/overbought/stop_loss_pct/take_profit_pct".into(),
                m,
            )
        })
    }

    /// The demo strategy's rules.
    pub fn rules(&self) -> crate::domain::decision::RulesConfig {
        crate::domain::decision::RulesConfig {
            oversold: self.oversold,
            overbought: self.overbought,
            stop_loss_pct: self.stop_loss_pct,
            take_profit_pct: self.take_profit_pct,
            ..crate::domain::decision::RulesConfig::default()
        }
    }
}
