//! Reflections (#20): when a position opened on a thesis closes, the engine is asked once how
//! the outcome compares with the thesis; its short answer goes into the strategy's later
//! prompts. Here: the outcome as the question states it, the question, and the reply's shape.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Thesis;
use crate::domain::market::TimestampMs;
use crate::domain::{Price, Quote};

/// The longest reflection kept, in characters (a longer reply is cut, never re-asked).
pub const MAX_REFLECTION_CHARS: usize = 300;

/// How a closed position turned out.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedOutcome {
    pub entry: Price,
    /// The average fill price of the order that closed it (`None`: not known).
    pub exit: Option<Price>,
    /// Fees included, as booked.
    pub realised_pnl: Quote,
    /// The stop-loss the position carried when it closed (`None`: none), for the R multiple.
    pub stop_loss: Option<Price>,
    pub opened_at: TimestampMs,
    pub closed_at: TimestampMs,
}

impl ClosedOutcome {
    /// Exit minus entry in units of the entry's risk (entry minus stop) for a long; `None`
    /// without an exit, or without a stop below the entry.
    pub fn r_multiple(&self) -> Option<f64> {
        let exit = self.exit?;
        let risk = self.entry.0 - self.stop_loss?.0;
        if risk <= Decimal::ZERO {
            return None;
        }
        ((exit.0 - self.entry.0) / risk).to_f64()
    }

    /// One line: entry, exit, realised PnL, R multiple and duration.
    pub fn describe(&self) -> String {
        let exit = self
            .exit
            .map_or_else(|| "unknown".to_string(), |p| p.to_string());
        let r = self.r_multiple().map_or_else(
            || "n/a (no stop below the entry)".to_string(),
            |r| format!("{r:+.2}R"),
        );
        let minutes = (self.closed_at - self.opened_at).max(0) / 60_000;
        let duration = if minutes >= 60 * 24 {
            format!("{}d {}h", minutes / (60 * 24), minutes % (60 * 24) / 60)
        } else {
            format!("{}h {}m", minutes / 60, minutes % 60)
        };
        format!(
            "entry {} · exit {exit} · realised PnL {} · R multiple {r} · held {duration}",
            self.entry, self.realised_pnl
        )
    }
}

/// A stored reflection as a later prompt shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastReflection {
    pub created_at: TimestampMs,
    pub symbol: String,
    pub reflection: String,
}

/// The question: the thesis (an earlier reply, so the caller fences it) and the outcome.
pub fn reflection_question(symbol: &str, thesis_block: &str, outcome: &str) -> String {
    format!(
        "A {symbol} position you opened has closed. Compare the outcome with the thesis you \
         opened it on and name one lesson for later decisions, in at most \
         {MAX_REFLECTION_CHARS} characters. Answer with one JSON object {{\"reflection\": \
         \"...\"}}.\n\nThesis:\n{thesis_block}\n\nOutcome: {outcome}"
    )
}

/// The reply's JSON schema.
pub fn reflection_json_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"reflection": {"type": "string"}},
        "required": ["reflection"],
        "additionalProperties": false
    })
}

/// The reflection in a reply, trimmed and cut to [`MAX_REFLECTION_CHARS`]; `Err` says why a
/// reply has none.
pub fn parse_reflection(content: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(content.trim())
        .map_err(|e| format!("the reflection reply is not JSON: {e}"))?;
    let text = value
        .get("reflection")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("the reflection reply has no \"reflection\" text")?;
    Ok(text.chars().take(MAX_REFLECTION_CHARS).collect())
}

/// The thesis as the question quotes it.
pub fn thesis_text(thesis: &Thesis) -> String {
    format!(
        "reasoning: {}\ninvalidated if: {}",
        thesis.reasoning, thesis.invalidation
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn outcome(exit: Option<Decimal>, stop: Option<Decimal>) -> ClosedOutcome {
        ClosedOutcome {
            entry: Price(dec!(50000)),
            exit: exit.map(Price),
            realised_pnl: Quote(dec!(-12.5)),
            stop_loss: stop.map(Price),
            opened_at: 0,
            closed_at: 26 * 3_600_000 + 5 * 60_000,
        }
    }

    #[test]
    fn the_outcome_states_entry_exit_pnl_r_multiple_and_duration() {
        let o = outcome(Some(dec!(49500)), Some(dec!(49000)));
        assert_eq!(o.r_multiple(), Some(-0.5));
        assert_eq!(
            o.describe(),
            "entry 50000 · exit 49500 · realised PnL -12.5 · R multiple -0.50R · held 1d 2h"
        );
        // A stop at or above the entry (moved to break-even) gives no R.
        assert_eq!(
            outcome(Some(dec!(51000)), Some(dec!(50000))).r_multiple(),
            None
        );
        assert_eq!(outcome(None, Some(dec!(49000))).r_multiple(), None);
    }

    #[test]
    fn a_reflection_is_cut_to_its_limit_and_a_reply_without_one_is_an_error() {
        let long = "x".repeat(500);
        let text = parse_reflection(&json!({ "reflection": long }).to_string()).unwrap();
        assert_eq!(text.chars().count(), MAX_REFLECTION_CHARS);
        assert!(parse_reflection("{\"reflection\": \"  \"}").is_err());
        assert!(parse_reflection("not json").is_err());
    }
}
