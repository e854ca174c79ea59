//! The `TradingDecision` an engine returns, exactly as it travels as JSON, and the JSON schema
//! handed to the model as `response_format`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What to do with the symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Buy,
    Sell,
    Hold,
    /// Close the open position, whatever its side.
    Close,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Buy => "BUY",
            Action::Sell => "SELL",
            Action::Hold => "HOLD",
            Action::Close => "CLOSE",
        }
    }

    /// Opens or adds exposure, so it needs a size and a stop.
    pub fn opens_exposure(self) -> bool {
        matches!(self, Action::Buy | Action::Sell)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a stop-loss or take-profit level is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelKind {
    /// An absolute price in the quote currency.
    Price,
    /// A distance from the entry price in percent (always positive; the side gives the sign).
    Percent,
}

/// A stop-loss or take-profit level. The value is a JSON number from the model; it is checked
/// for finiteness and converted to an exact price during validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub kind: LevelKind,
    pub value: f64,
}

/// How long the idea is meant to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeHorizon {
    Scalp,
    Intraday,
    Swing,
    Position,
}

/// A decision as an engine states it. Unknown fields are a schema violation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingDecision {
    pub action: Action,
    pub symbol: String,
    /// 0.0 ..= 1.0
    pub confidence: f64,
    /// Share of equity to commit, 0 ..= 100.
    pub position_size_pct: f64,
    pub stop_loss: Option<Level>,
    pub take_profit: Option<Level>,
    pub time_horizon: TimeHorizon,
    pub reasoning: String,
    pub risk_factors: Vec<String>,
    pub sources: Vec<String>,
}

impl TradingDecision {
    /// A HOLD that explains itself; what every failure turns into.
    pub fn hold(symbol: &str, reasoning: impl Into<String>) -> Self {
        TradingDecision {
            action: Action::Hold,
            symbol: symbol.to_string(),
            confidence: 0.0,
            position_size_pct: 0.0,
            stop_loss: None,
            take_profit: None,
            time_horizon: TimeHorizon::Intraday,
            reasoning: reasoning.into(),
            risk_factors: Vec::new(),
            sources: Vec::new(),
        }
    }
}

/// The JSON schema of `TradingDecision`, in the strict form OpenAI-compatible servers accept
/// (every property required, optional ones nullable, no additional properties).
pub fn decision_json_schema() -> Value {
    let level = json!({
        "type": ["object", "null"],
        "properties": {
            "kind": {"type": "string", "enum": ["price", "percent"]},
            "value": {"type": "number", "exclusiveMinimum": 0}
        },
        "required": ["kind", "value"],
        "additionalProperties": false
    });
    json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD", "CLOSE"]},
            "symbol": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "position_size_pct": {"type": "number", "minimum": 0, "maximum": 100},
            "stop_loss": level,
            "take_profit": level,
            "time_horizon": {"type": "string", "enum": ["scalp", "intraday", "swing", "position"]},
            "reasoning": {"type": "string"},
            "risk_factors": {"type": "array", "items": {"type": "string"}},
            "sources": {"type": "array", "items": {"type": "string"}}
        },
        "required": [
            "action", "symbol", "confidence", "position_size_pct", "stop_loss", "take_profit",
            "time_horizon", "reasoning", "risk_factors", "sources"
        ],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_requires_exactly_the_struct_fields() {
        let schema = decision_json_schema();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let sample = serde_json::to_value(TradingDecision::hold("BTCUSDT", "x")).unwrap();
        let mut fields: Vec<&str> = sample
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        fields.sort_unstable();
        let mut required_sorted = required.clone();
        required_sorted.sort_unstable();
        assert_eq!(fields, required_sorted);
        assert_eq!(schema["additionalProperties"], json!(false));
    }

    #[test]
    fn decision_round_trips_through_json_with_uppercase_action() {
        let d = TradingDecision {
            action: Action::Buy,
            symbol: "BTCUSDT".into(),
            confidence: 0.7,
            position_size_pct: 5.0,
            stop_loss: Some(Level {
                kind: LevelKind::Percent,
                value: 2.0,
            }),
            take_profit: Some(Level {
                kind: LevelKind::Price,
                value: 110_000.0,
            }),
            time_horizon: TimeHorizon::Swing,
            reasoning: "trend".into(),
            risk_factors: vec!["macro".into()],
            sources: vec![],
        };
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.contains("\"action\":\"BUY\""));
        assert!(text.contains("\"kind\":\"percent\""));
        let back: TradingDecision = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn unknown_field_is_rejected() {
        let text = r#"{"action":"HOLD","symbol":"BTCUSDT","confidence":0.1,"position_size_pct":0,
            "stop_loss":null,"take_profit":null,"time_horizon":"intraday","reasoning":"",
            "risk_factors":[],"sources":[],"leverage":10}"#;
        assert!(serde_json::from_str::<TradingDecision>(text).is_err());
    }
}
