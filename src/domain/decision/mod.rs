//! Trading decisions: TradingDecision, its validation, the DecisionEngine contract, rule engines.
