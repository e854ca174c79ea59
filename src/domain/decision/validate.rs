//! Validation beyond the schema. A decision that fails any check becomes a HOLD whose verdict
//! records every reason; nothing is guessed or repaired here.

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use super::types::{Action, Level, LevelKind, TradingDecision};
use crate::domain::{Price, Symbol};

/// Bounds a decision must respect (the risk layer applies its own afterwards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationLimits {
    /// Largest position a decision may ask for, percent of equity; larger asks are capped.
    pub max_position_pct: f64,
    pub max_reasoning_chars: usize,
    pub max_list_items: usize,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_position_pct: 10.0,
            max_reasoning_chars: 4000,
            max_list_items: 20,
        }
    }
}

/// Whether the engine's decision stood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reasons", rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid(Vec<String>),
}

/// The decision to act on (a HOLD when invalid), its verdict, what the engine originally said
/// when that differs, and any adjustment made within the rules (a capped size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidatedDecision {
    pub decision: TradingDecision,
    pub verdict: Verdict,
    pub original: Option<TradingDecision>,
    pub adjustments: Vec<String>,
}

impl ValidatedDecision {
    pub fn is_valid(&self) -> bool {
        self.verdict == Verdict::Valid
    }

    /// A HOLD for a reply that could not be read at all.
    pub fn invalid_hold(symbol: &Symbol, reasons: Vec<String>) -> Self {
        let decision = TradingDecision::hold(
            symbol.as_str(),
            format!("invalid decision: {}", reasons.join("; ")),
        );
        ValidatedDecision {
            decision,
            verdict: Verdict::Invalid(reasons),
            original: None,
            adjustments: Vec::new(),
        }
    }
}

/// Parse model output as a `TradingDecision` (schema check) and validate it.
pub fn parse_and_validate(
    raw: &str,
    asked: &Symbol,
    entry: Price,
    limits: &ValidationLimits,
) -> ValidatedDecision {
    match parse_decision(raw) {
        Ok(decision) => validate(decision, asked, entry, limits),
        Err(reason) => ValidatedDecision::invalid_hold(asked, vec![reason]),
    }
}

/// The schema check alone: strict serde, tolerating a Markdown code fence around the JSON.
pub fn parse_decision(raw: &str) -> Result<TradingDecision, String> {
    let trimmed = raw.trim();
    let body = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("reply is not JSON: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("reply violates the decision schema: {e}"))
}

/// The decimal a JSON number was written as: the shortest digits that read back as the same
/// f64, so a price sent as 12.74 is 12.74 and not the binary neighbour `from_f64` may give.
fn decimal_of(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    value
        .to_string()
        .parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_f64(value))
}

/// The price a level names for `entry`: absolute, or a percent distance below (`losing_side_below`)
/// or above the entry. `None` for a non-finite value.
pub fn level_price(level: Level, entry: Decimal, losing_side_below: bool) -> Option<Decimal> {
    match level.kind {
        LevelKind::Price => decimal_of(level.value),
        LevelKind::Percent => {
            let pct = decimal_of(level.value)? / Decimal::ONE_HUNDRED;
            Some(if losing_side_below {
                entry * (Decimal::ONE - pct)
            } else {
                entry * (Decimal::ONE + pct)
            })
        }
    }
}

fn check_level(name: &str, level: Option<Level>, reasons: &mut Vec<String>) {
    let Some(level) = level else { return };
    if !level.value.is_finite() {
        reasons.push(format!("{name} is not a finite number"));
    } else if level.value <= 0.0 {
        reasons.push(format!("{name} must be positive, got {}", level.value));
    } else if level.kind == LevelKind::Percent && level.value >= 100.0 && name == "stop_loss" {
        reasons.push(format!(
            "stop_loss of {}% would be at or below zero",
            level.value
        ));
    }
}

/// Check every rule; collect all reasons rather than stopping at the first.
pub fn validate(
    decision: TradingDecision,
    asked: &Symbol,
    entry: Price,
    limits: &ValidationLimits,
) -> ValidatedDecision {
    let mut reasons = Vec::new();
    let mut adjustments = Vec::new();

    if decision.symbol.trim() != asked.as_str() {
        reasons.push(format!(
            "symbol {:?} is not the one asked about ({asked})",
            decision.symbol
        ));
    }
    if !decision.confidence.is_finite() || !(0.0..=1.0).contains(&decision.confidence) {
        reasons.push(format!(
            "confidence {} is outside 0..1",
            decision.confidence
        ));
    }
    if !decision.position_size_pct.is_finite()
        || !(0.0..=100.0).contains(&decision.position_size_pct)
    {
        reasons.push(format!(
            "position size {}% is outside 0..100",
            decision.position_size_pct
        ));
    }
    check_level("stop_loss", decision.stop_loss, &mut reasons);
    check_level("take_profit", decision.take_profit, &mut reasons);
    if decision.reasoning.chars().count() > limits.max_reasoning_chars {
        reasons.push(format!(
            "reasoning is longer than {} characters",
            limits.max_reasoning_chars
        ));
    }
    if decision.risk_factors.len() > limits.max_list_items
        || decision.sources.len() > limits.max_list_items
    {
        reasons.push(format!(
            "more than {} risk factors or sources",
            limits.max_list_items
        ));
    }

    if decision.action.opens_exposure() && reasons.is_empty() {
        let long = decision.action == Action::Buy;
        let entry_d = entry.get();
        if decision.position_size_pct <= 0.0 {
            reasons.push(format!("{} with a zero position size", decision.action));
        }
        match decision.stop_loss {
            None => reasons.push(format!("{} without a stop-loss", decision.action)),
            Some(stop) => match level_price(stop, entry_d, long) {
                None => reasons.push("stop_loss cannot be read as a price".into()),
                Some(p) if long && p >= entry_d => reasons.push(format!(
                    "stop-loss {p} is not below the entry {entry_d} of a BUY"
                )),
                Some(p) if !long && p <= entry_d => reasons.push(format!(
                    "stop-loss {p} is not above the entry {entry_d} of a SELL"
                )),
                Some(_) => {}
            },
        }
        if let Some(target) = decision.take_profit {
            match level_price(target, entry_d, !long) {
                None => reasons.push("take_profit cannot be read as a price".into()),
                Some(p) if long && p <= entry_d => reasons.push(format!(
                    "take-profit {p} is not above the entry {entry_d} of a BUY"
                )),
                Some(p) if !long && p >= entry_d => reasons.push(format!(
                    "take-profit {p} is not below the entry {entry_d} of a SELL"
                )),
                Some(_) => {}
            }
        }
    }

    if !reasons.is_empty() {
        let mut invalid = ValidatedDecision::invalid_hold(asked, reasons);
        invalid.original = Some(decision);
        return invalid;
    }

    let mut decision = decision;
    if decision.position_size_pct > limits.max_position_pct {
        adjustments.push(format!(
            "position size capped from {}% to {}% of equity",
            decision.position_size_pct, limits.max_position_pct
        ));
        let original = decision.clone();
        decision.position_size_pct = limits.max_position_pct;
        return ValidatedDecision {
            decision,
            verdict: Verdict::Valid,
            original: Some(original),
            adjustments,
        };
    }
    ValidatedDecision {
        decision,
        verdict: Verdict::Valid,
        original: None,
        adjustments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::types::TimeHorizon;
    use rust_decimal_macros::dec;

    fn btc() -> Symbol {
        Symbol::new("BTCUSDT").unwrap()
    }

    fn buy() -> TradingDecision {
        TradingDecision {
            action: Action::Buy,
            symbol: "BTCUSDT".into(),
            confidence: 0.8,
            position_size_pct: 5.0,
            stop_loss: Some(Level {
                kind: LevelKind::Price,
                value: 95.0,
            }),
            take_profit: Some(Level {
                kind: LevelKind::Percent,
                value: 10.0,
            }),
            time_horizon: TimeHorizon::Swing,
            reasoning: "breakout".into(),
            risk_factors: vec![],
            sources: vec![],
        }
    }

    fn check(d: TradingDecision) -> ValidatedDecision {
        validate(
            d,
            &btc(),
            Price::new(dec!(100)),
            &ValidationLimits::default(),
        )
    }

    fn reasons(v: &ValidatedDecision) -> Vec<String> {
        match &v.verdict {
            Verdict::Invalid(r) => r.clone(),
            Verdict::Valid => vec![],
        }
    }

    #[test]
    fn sound_buy_is_valid_and_unchanged() {
        let v = check(buy());
        assert_eq!(v.verdict, Verdict::Valid);
        assert_eq!(v.decision, buy());
        assert!(v.original.is_none());
    }

    #[test]
    fn buy_with_stop_above_entry_becomes_hold() {
        let mut d = buy();
        d.stop_loss = Some(Level {
            kind: LevelKind::Price,
            value: 101.0,
        });
        let v = check(d);
        assert_eq!(v.decision.action, Action::Hold);
        assert!(
            reasons(&v)[0].contains("not below the entry"),
            "{:?}",
            v.verdict
        );
        assert_eq!(v.original.unwrap().action, Action::Buy);
    }

    #[test]
    fn sell_needs_stop_above_and_target_below() {
        let mut d = buy();
        d.action = Action::Sell;
        // 95 is below 100: wrong side for a SELL's stop; +10 % target is 90 for a SELL: fine.
        let v = check(d.clone());
        assert_eq!(reasons(&v).len(), 1, "{:?}", v.verdict);
        d.stop_loss = Some(Level {
            kind: LevelKind::Percent,
            value: 3.0,
        });
        d.take_profit = Some(Level {
            kind: LevelKind::Price,
            value: 120.0,
        });
        let v = check(d);
        assert!(
            reasons(&v)[0].contains("take-profit 120"),
            "{:?}",
            v.verdict
        );
    }

    #[test]
    fn other_symbol_is_rejected() {
        let mut d = buy();
        d.symbol = "ETHUSDT".into();
        assert!(reasons(&check(d))[0].contains("ETHUSDT"));
    }

    #[test]
    fn out_of_range_and_non_finite_numbers_are_all_reported() {
        let mut d = buy();
        d.confidence = 1.5;
        d.position_size_pct = f64::NAN;
        d.stop_loss = Some(Level {
            kind: LevelKind::Price,
            value: f64::INFINITY,
        });
        let r = reasons(&check(d));
        assert_eq!(r.len(), 3, "{r:?}");
    }

    #[test]
    fn size_above_the_limit_is_capped_not_trusted() {
        let mut d = buy();
        d.position_size_pct = 100.0;
        let v = check(d);
        assert_eq!(v.verdict, Verdict::Valid);
        assert_eq!(v.decision.position_size_pct, 10.0);
        assert_eq!(v.adjustments.len(), 1);
    }

    #[test]
    fn buy_without_stop_is_invalid() {
        let mut d = buy();
        d.stop_loss = None;
        assert!(reasons(&check(d))[0].contains("without a stop-loss"));
    }

    #[test]
    fn hold_needs_no_levels() {
        let v = check(TradingDecision::hold("BTCUSDT", "flat"));
        assert!(v.is_valid());
    }

    #[test]
    fn malformed_and_schema_violating_replies_become_hold() {
        let asked = btc();
        let p = Price::new(dec!(100));
        let l = ValidationLimits::default();
        let v = parse_and_validate("{not json", &asked, p, &l);
        assert!(reasons(&v)[0].starts_with("reply is not JSON"));
        let v = parse_and_validate(r#"{"action":"MOON"}"#, &asked, p, &l);
        assert!(reasons(&v)[0].starts_with("reply violates the decision schema"));
        let fenced = format!("```json\n{}\n```", serde_json::to_string(&buy()).unwrap());
        assert!(parse_and_validate(&fenced, &asked, p, &l).is_valid());
    }
}
