//! The strategy engine: live trading runs a backtest strategy (`domain::backtest::build_strategy`)
//! as a `DecisionEngine`, so what a user backtests is what the daemon trades. Each decision
//! replays the snapshot's closed candles through a freshly built strategy (its streaming
//! indicators start where the backtest's would) and turns the last candle's signal into a
//! `TradingDecision`; sizing stays with the risk layer, as in a `--sizing fixed|kelly|atr` run.

use serde_json::Value;
use std::future::Future;
use std::str::FromStr;

use crate::app::decide::{DecisionEngine, EngineOutput};
use crate::domain::backtest::{
    Action as SignalAction, History, Position, Signal, Strategy, StrategyContext, StrategyError,
    StrategySpec, build_strategy,
};
use crate::domain::decision::{
    Action, DecisionInput, Level, LevelKind, TimeHorizon, TradingDecision, ValidationLimits,
    validate,
};
use crate::domain::market::CandleColumns;
use crate::domain::money::{Price, Quote};

/// The `strategies.decision_engine` value that selects this engine.
pub const ENGINE_NAME: &str = "strategy";

/// Why a strategy row cannot be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyEngineError {
    #[error(
        "strategy parameters must be a JSON object, e.g. {{\"strategy\": \"sma-cross\", \"fast\": 10, \"slow\": 30, \"stop_pct\": 2, \"take_pct\": 4}}"
    )]
    NotAnObject,
    #[error(
        "strategy parameters name no strategy: add \"strategy\": one of sma-cross, rsi-reversion, macd, rsi-macd"
    )]
    NoStrategy,
    #[error("strategy parameter {key:?} must be a number, got {value}")]
    NotANumber { key: String, value: String },
    #[error(transparent)]
    Strategy(#[from] StrategyError),
}

/// The strategy a row's `parameters` JSON names: `"strategy"` is the built-in's name, every
/// other key one of its numeric parameters (`fast`, `slow`, `stop_pct`, …), as `--param` takes
/// them on the backtest command line.
pub fn spec_from_parameters(parameters: &Value) -> Result<StrategySpec, StrategyEngineError> {
    let object = parameters
        .as_object()
        .ok_or(StrategyEngineError::NotAnObject)?;
    let name = object
        .get("strategy")
        .and_then(Value::as_str)
        .ok_or(StrategyEngineError::NoStrategy)?;
    let mut params = std::collections::BTreeMap::new();
    // `max_entries` is the trading service's (how many entries a position may take).
    for (key, value) in object
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "strategy" | "max_entries"))
    {
        // A flag (`post_only=true`) is the number 1 or 0 the strategy parameters hold.
        let number = value
            .as_f64()
            .or_else(|| value.as_bool().map(|b| if b { 1.0 } else { 0.0 }))
            .ok_or_else(|| StrategyEngineError::NotANumber {
                key: key.clone(),
                value: value.to_string(),
            })?;
        params.insert(key.clone(), number);
    }
    let spec = StrategySpec {
        name: name.to_string(),
        params,
    };
    // Refuse a bad row when the engine is built, not at its first decision.
    build_strategy(&spec)?;
    Ok(spec)
}

/// A built-in strategy as a decision engine.
#[derive(Debug, Clone)]
pub struct StrategyEngine {
    spec: StrategySpec,
    /// `strategy:<name>`, the engine column of its decisions.
    label: String,
}

/// The decision price of a level, exact: prices of at most 15 significant digits (every tick
/// price) survive the f64 of the decision's wire type and `level_price` reads them back as the
/// same decimal.
fn price_level(price: Price) -> Option<Level> {
    f64::from_str(&price.get().normalize().to_string())
        .ok()
        .map(|value| Level {
            kind: LevelKind::Price,
            value,
        })
}

impl StrategyEngine {
    pub fn new(spec: StrategySpec) -> Result<Self, StrategyEngineError> {
        build_strategy(&spec)?;
        let label = format!("{ENGINE_NAME}:{}", spec.name);
        Ok(StrategyEngine { spec, label })
    }

    /// The engine for a strategy row's `parameters`.
    pub fn from_parameters(parameters: &Value) -> Result<Self, StrategyEngineError> {
        Self::new(spec_from_parameters(parameters)?)
    }

    pub fn spec(&self) -> &StrategySpec {
        &self.spec
    }

    /// What the strategy says on the last closed candle of the snapshot (`None`: nothing).
    fn last_signal(&self, input: &DecisionInput) -> Result<Option<Signal>, StrategyError> {
        let candles = &input.closed_candles;
        let mut strategy = build_strategy(&self.spec)?;
        let columns = CandleColumns::from_candles(candles);
        // The built-in strategies decide on prices alone; the current position is shown on
        // every replayed candle and the cash is the risk layer's business (it sizes).
        let position = match &input.position {
            Some(p) if p.quantity.is_positive() => Position {
                qty: p.quantity,
                entry_price: p.entry_price,
                entry_time: 0,
            },
            _ => Position::default(),
        };
        let mut last = None;
        for i in 0..candles.len() {
            let ctx = StrategyContext {
                history: History::up_to(candles, &columns, i),
                position,
                cash: Quote::ZERO,
            };
            last = strategy.on_candle(&ctx);
        }
        Ok(last)
    }

    /// The decision on a snapshot: the last candle's signal, as the backtest engine reads it.
    pub fn decide_now(&self, input: &DecisionInput) -> EngineOutput {
        let symbol = input.symbol.as_str();
        let name = &self.spec.name;
        let long = input
            .position
            .as_ref()
            .is_some_and(|p| p.quantity.is_positive());
        let decision = match self.last_signal(input) {
            Err(e) => TradingDecision::hold(symbol, format!("strategy {name} cannot run: {e}")),
            Ok(_) if input.closed_candles.is_empty() => {
                TradingDecision::hold(symbol, "no closed candles to run the strategy on")
            }
            Ok(None) => TradingDecision::hold(
                symbol,
                format!("{name}: no signal on the candle that just closed"),
            ),
            // The backtest engine ignores an entry while long and an exit while flat; so does
            // live trading, or it would add to the position the backtest holds once.
            Ok(Some(s)) if s.action == SignalAction::EnterLong && long => TradingDecision::hold(
                symbol,
                format!("{name}: entry signal while already long; a strategy does not add"),
            ),
            Ok(Some(s)) if s.action == SignalAction::ExitLong && !long => {
                TradingDecision::hold(symbol, format!("{name}: exit signal with no open long"))
            }
            Ok(Some(s)) => match s.action {
                SignalAction::EnterLong => TradingDecision {
                    action: Action::Buy,
                    symbol: symbol.to_string(),
                    confidence: 1.0,
                    // The size is the risk layer's (sizing mode and caps), as in a backtest run
                    // with risk sizing: the strategy adds no cap of its own.
                    position_size_pct: 100.0,
                    stop_loss: s.stop_loss.and_then(price_level),
                    take_profit: s.take_profit.and_then(price_level),
                    time_horizon: TimeHorizon::Intraday,
                    reasoning: format!("{name}: entry signal on the candle that just closed"),
                    risk_factors: Vec::new(),
                    sources: Vec::new(),
                },
                SignalAction::ExitLong => TradingDecision {
                    action: Action::Close,
                    reasoning: format!("{name}: exit signal on the candle that just closed"),
                    confidence: 1.0,
                    ..TradingDecision::hold(symbol, "")
                },
            },
        };
        let limits = ValidationLimits {
            max_position_pct: 100.0,
            ..ValidationLimits::default()
        };
        let validated = validate(decision, &input.symbol, input.price, &limits);
        let mut out = EngineOutput::new(&self.label, validated);
        out.latency_ms = 0;
        out
    }
}

impl DecisionEngine for StrategyEngine {
    fn label(&self) -> &'static str {
        ENGINE_NAME
    }

    fn decide(&self, input: &DecisionInput) -> impl Future<Output = EngineOutput> + Send {
        std::future::ready(self.decide_now(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::{PositionSnapshot, level_price};
    use crate::domain::market::{Candle, Interval};
    use crate::domain::money::Qty;
    use crate::domain::symbol::Symbol;
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn candles(closes: &[i64]) -> Vec<Candle> {
        closes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = Price(Decimal::from(*c));
                Candle {
                    open_time: i as i64 * 3_600_000,
                    open: p,
                    high: p,
                    low: p,
                    close: p,
                    volume: Qty(dec!(1)),
                }
            })
            .collect()
    }

    fn input(closes: &[i64], held: Option<Decimal>) -> DecisionInput {
        let c = candles(closes);
        let mut input =
            DecisionInput::from_candles(Symbol::new("BTCUSDT").unwrap(), Interval::H1, &c, 0)
                .unwrap();
        input.position = held.map(|q| PositionSnapshot {
            quantity: Qty(q),
            entry_price: Price(dec!(100)),
            unrealized_pnl: Quote::ZERO,
            thesis: None,
        });
        input
    }

    /// SMA(2) / SMA(3) over closes 12, 10, 10: 10 under 10.67; then 13 lifts SMA2 to 11.5 over
    /// SMA3 11: a cross up on the last candle. One more 13 keeps it above (no new cross).
    const CROSS_UP: [i64; 4] = [12, 10, 10, 13];

    fn engine(extra: Value) -> StrategyEngine {
        let mut params = json!({"strategy": "sma-cross", "fast": 2, "slow": 3});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        StrategyEngine::from_parameters(&params).unwrap()
    }

    #[test]
    fn a_cross_up_on_the_last_candle_buys_with_exact_price_levels() {
        // stop 2 % under 13 = 12.74, target 4 % over = 13.52
        let e = engine(json!({"stop_pct": 2, "take_pct": 4}));
        let out = e.decide_now(&input(&CROSS_UP, None));
        assert_eq!(out.engine, "strategy:sma-cross");
        assert!(out.validated.is_valid(), "{:?}", out.validated.verdict);
        let d = &out.validated.decision;
        assert_eq!(d.action, Action::Buy);
        let stop = level_price(d.stop_loss.unwrap(), dec!(13), true).unwrap();
        let target = level_price(d.take_profit.unwrap(), dec!(13), false).unwrap();
        assert_eq!(stop, dec!(12.74));
        assert_eq!(target, dec!(13.52));
    }

    #[test]
    fn an_entry_signal_while_long_holds_instead_of_adding() {
        let e = engine(json!({"stop_pct": 2}));
        let out = e.decide_now(&input(&CROSS_UP, Some(dec!(1))));
        assert_eq!(out.validated.decision.action, Action::Hold);
        assert!(out.validated.decision.reasoning.contains("already long"));
    }

    #[test]
    fn only_the_last_candle_signal_counts() {
        // The cross happened one candle earlier: nothing on the candle that just closed.
        let e = engine(json!({"stop_pct": 2}));
        let out = e.decide_now(&input(&[12, 10, 10, 13, 13], None));
        assert_eq!(out.validated.decision.action, Action::Hold);
        assert!(out.validated.decision.reasoning.contains("no signal"));
    }

    #[test]
    fn a_cross_down_closes_a_long_and_is_ignored_when_flat() {
        // SMA2 13 over SMA3 12, then 7: SMA2 (13+7)/2 = 10 under SMA3 (13+13+7)/3 = 11.
        let closes = [12, 10, 10, 13, 13, 7];
        let e = engine(json!({"stop_pct": 2}));
        let held = e.decide_now(&input(&closes, Some(dec!(1))));
        assert_eq!(held.validated.decision.action, Action::Close);
        assert!(held.validated.is_valid());
        let flat = e.decide_now(&input(&closes, None));
        assert_eq!(flat.validated.decision.action, Action::Hold);
    }

    #[test]
    fn a_strategy_without_a_stop_cannot_open_a_position() {
        // The risk layer sizes against the stop; a BUY without one is invalid, as a backtest
        // with fixed sizing refuses the strategy.
        let out = engine(json!({})).decide_now(&input(&CROSS_UP, None));
        assert!(!out.validated.is_valid());
        assert_eq!(out.validated.decision.action, Action::Hold);
    }

    #[test]
    fn parameters_are_checked_when_the_engine_is_built() {
        assert_eq!(
            StrategyEngine::from_parameters(&json!({"fast": 2})).unwrap_err(),
            StrategyEngineError::NoStrategy
        );
        assert!(matches!(
            StrategyEngine::from_parameters(&json!({"strategy": "sma-cross", "fast": "x"})),
            Err(StrategyEngineError::NotANumber { .. })
        ));
        assert!(matches!(
            StrategyEngine::from_parameters(
                &json!({"strategy": "sma-cross", "fast": 30, "slow": 10})
            ),
            Err(StrategyEngineError::Strategy(_))
        ));
        assert!(matches!(
            StrategyEngine::from_parameters(&json!({"strategy": "nope"})),
            Err(StrategyEngineError::Strategy(StrategyError::Unknown(_)))
        ));
    }
}
