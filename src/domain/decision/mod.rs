//! Trading decisions: the strict `TradingDecision` wire type and its JSON schema, validation beyond
//! the schema (`validate`), the input snapshot an engine decides on, the rule-based engine, and a
//! detector for instruction-like text in untrusted data.

pub mod edge;
pub mod injection;
pub mod input;
pub mod leaderboard;
pub mod reflection;
pub mod rules;
pub mod shadow;
pub mod types;
pub mod validate;

pub use injection::{InjectionFinding, detect_injection};
pub use input::{
    DecisionInput, IndicatorSnapshot, OrderBookSummary, PastDecision, PositionSnapshot,
    RiskSnapshot, Thesis, aggregate_candles,
};
pub use reflection::{ClosedOutcome, PastReflection};
pub use rules::{RulesConfig, rules_decide};
pub use types::{Action, Level, LevelKind, TimeHorizon, TradingDecision, decision_json_schema};
pub use validate::{
    ValidatedDecision, ValidationLimits, Verdict, level_price, parse_and_validate, validate,
};
