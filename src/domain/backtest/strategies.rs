//! Built-in strategies (SMA crossover, RSI mean reversion, MACD, the seed's RSI+MACD rule) and
//! how to build one from a name and `key=value` parameters or a strategy TOML file.

use super::engine::{History, LimitEntry, Signal, Strategy, StrategyContext};
use crate::domain::market::indicators::{Macd, Rsi, SlidingSma, sma};
use crate::domain::market::indicators::{Signal as RuleSignal, simple_signal_at};
use crate::domain::trading::order::TrailingDelta;
use crate::domain::trading::scale_out::ScaleOutShare;
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// A strategy by name with its parameters, as given on the command line or in a TOML file:
///
/// ```toml
/// name = "sma-cross"
/// [params]
/// fast = 10
/// slow = 30
/// stop_pct = 2.0
/// ```
///
/// Every built-in strategy also takes the exits `stop_pct` and `take_pct` (percent of the
/// signal close) or `trail_bips`: a trailing stop that many basis points under the highest
/// price since the entry (Binance's `trailingDelta`, 10..=2000), which replaces the fixed stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    pub name: String,
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    #[error("unknown strategy {0:?}: expected one of sma-cross, rsi-reversion, macd, rsi-macd")]
    Unknown(String),
    #[error("strategy {strategy} has no parameter {key:?}; it takes: {allowed}")]
    UnknownParam {
        strategy: &'static str,
        key: String,
        allowed: String,
    },
    #[error("parameter {key}={value} is invalid: {why}")]
    Invalid {
        key: String,
        value: f64,
        why: &'static str,
    },
}

/// The trailing stop a strategy's stored parameters ask for (`trail_bips`), whatever its
/// decision engine: live trading protects that strategy's positions with it, as its backtest
/// does. A value outside Binance's range is no trailing stop (`strategy add` refuses it).
pub fn trailing_of(parameters: &serde_json::Value) -> Option<TrailingDelta> {
    let bips = parameters.get("trail_bips")?.as_f64()?;
    let whole = bips.fract() == 0.0
        && (f64::from(TrailingDelta::MIN)..=f64::from(TrailingDelta::MAX)).contains(&bips);
    whole.then_some(TrailingDelta(bips as u32))
}

/// The break-even move a strategy's stored parameters ask for (`breakeven_r`: after a close at
/// entry + that many R), whatever its decision engine.
pub fn break_even_of(parameters: &serde_json::Value) -> Option<Decimal> {
    let r = parameters.get("breakeven_r")?.as_f64()?;
    if r > 0.0 && r <= 100.0 {
        Decimal::from_f64(r)
    } else {
        None
    }
}

/// The time exit a strategy's stored parameters ask for (`time_exit_candles`).
pub fn time_exit_of(parameters: &serde_json::Value) -> Option<u32> {
    let n = parameters.get("time_exit_candles")?.as_f64()?;
    (n >= 1.0 && n.fract() == 0.0 && n <= 100_000.0).then_some(n as u32)
}

/// The scale-out a strategy's stored parameters ask for (`scale_out_pct`: the share of a
/// position sold at its first target), whatever its decision engine.
pub fn scale_out_of(parameters: &serde_json::Value) -> Option<ScaleOutShare> {
    let pct = parameters.get("scale_out_pct")?.as_f64()?;
    ScaleOutShare::from_pct(Decimal::from_f64(pct)?)
}

/// The limit entry a strategy's stored parameters ask for (`entry_limit_bps`, with
/// `post_only` and `entry_timeout_candles`), whatever its decision engine: live trading enters
/// with it as its backtest does. A flag may be stored as `true`/`false` or 1/0.
pub fn limit_entry_of(parameters: &serde_json::Value) -> Result<Option<LimitEntry>, StrategyError> {
    let mut given = BTreeMap::new();
    for key in ["entry_limit_bps", "post_only", "entry_timeout_candles"] {
        let Some(value) = parameters.get(key) else {
            continue;
        };
        let number = value
            .as_f64()
            .or_else(|| value.as_bool().map(|b| if b { 1.0 } else { 0.0 }))
            .unwrap_or(f64::NAN);
        given.insert(key.to_string(), number);
    }
    Params {
        strategy: "",
        given: &given,
        allowed: &[],
    }
    .limit_entry()
}

/// Refuse a stored exit live trading would ignore: `trail_bips`, `breakeven_r`,
/// `time_exit_candles` or `scale_out_pct` given but outside its range (checked by `strategy
/// add` for every decision engine, since the trading service reads them whatever the engine).
pub fn check_exits(parameters: &serde_json::Value) -> Result<(), String> {
    let checks: [(&str, bool, &str); 4] = [
        (
            "trail_bips",
            trailing_of(parameters).is_some(),
            "a whole number of basis points between 10 and 2000",
        ),
        (
            "breakeven_r",
            break_even_of(parameters).is_some(),
            "a multiple of R above 0 and at most 100",
        ),
        (
            "time_exit_candles",
            time_exit_of(parameters).is_some(),
            "a whole number of candles between 1 and 100000",
        ),
        (
            "scale_out_pct",
            scale_out_of(parameters).is_some(),
            "a percentage of the position above 0 and below 100",
        ),
    ];
    // A limit entry is checked as the backtest checks it (the trading service sends it as
    // such, whatever the decision engine).
    limit_entry_of(parameters).map_err(|e| match e {
        StrategyError::Invalid { key, value, why } => format!("--param {key}={value}: {why}"),
        other => other.to_string(),
    })?;
    for (key, valid, expected) in checks {
        if let Some(given) = parameters.get(key)
            && !valid
        {
            return Err(format!("--param {key}={given}: expected {expected}"));
        }
    }
    Ok(())
}

/// Names of the built-in strategies.
pub const BUILT_IN: [&str; 4] = ["sma-cross", "rsi-reversion", "macd", "rsi-macd"];

struct Params<'a> {
    strategy: &'static str,
    given: &'a BTreeMap<String, f64>,
    allowed: &'static [&'static str],
}

impl Params<'_> {
    fn check(&self) -> Result<(), StrategyError> {
        for key in self.given.keys() {
            if !self.allowed.contains(&key.as_str()) {
                return Err(StrategyError::UnknownParam {
                    strategy: self.strategy,
                    key: key.clone(),
                    allowed: self.allowed.join(", "),
                });
            }
        }
        Ok(())
    }

    fn period(&self, key: &str, default: usize) -> Result<usize, StrategyError> {
        match self.given.get(key) {
            None => Ok(default),
            Some(&v) if v >= 1.0 && v.fract() == 0.0 && v <= 100_000.0 => Ok(v as usize),
            Some(&v) => Err(StrategyError::Invalid {
                key: key.into(),
                value: v,
                why: "must be a whole number of candles between 1 and 100000",
            }),
        }
    }

    fn level(&self, key: &str, default: f64) -> Result<f64, StrategyError> {
        match self.given.get(key) {
            None => Ok(default),
            Some(&v) if (0.0..=100.0).contains(&v) => Ok(v),
            Some(&v) => Err(StrategyError::Invalid {
                key: key.into(),
                value: v,
                why: "must be between 0 and 100",
            }),
        }
    }

    fn brackets(&self) -> Result<Brackets, StrategyError> {
        let pct = |key: &str| -> Result<Option<Decimal>, StrategyError> {
            match self.given.get(key) {
                None => Ok(None),
                Some(&v) if v > 0.0 && v < 100.0 => Ok(Decimal::from_f64(v / 100.0)),
                Some(&v) => Err(StrategyError::Invalid {
                    key: key.into(),
                    value: v,
                    why: "must be a percentage between 0 and 100 (exclusive)",
                }),
            }
        };
        let trail = match self.given.get("trail_bips") {
            None => None,
            Some(&v)
                if v.fract() == 0.0
                    && (f64::from(TrailingDelta::MIN)..=f64::from(TrailingDelta::MAX))
                        .contains(&v) =>
            {
                Some(TrailingDelta(v as u32))
            }
            Some(&v) => {
                return Err(StrategyError::Invalid {
                    key: "trail_bips".into(),
                    value: v,
                    why: "must be a whole number of basis points between 10 and 2000 (Binance's trailingDelta range)",
                });
            }
        };
        let break_even = match self.given.get("breakeven_r") {
            None => None,
            Some(&v) if v > 0.0 && v <= 100.0 => Decimal::from_f64(v),
            Some(&v) => {
                return Err(StrategyError::Invalid {
                    key: "breakeven_r".into(),
                    value: v,
                    why: "must be a multiple of the risk R above 0 and at most 100",
                });
            }
        };
        let time_exit = match self.given.get("time_exit_candles") {
            None => None,
            Some(_) => Some(self.period("time_exit_candles", 1)? as u32),
        };
        let scale_out = match self.given.get("scale_out_pct") {
            None => None,
            Some(&v) => match Decimal::from_f64(v).and_then(ScaleOutShare::from_pct) {
                Some(share) => Some(share),
                None => {
                    return Err(StrategyError::Invalid {
                        key: "scale_out_pct".into(),
                        value: v,
                        why: "must be a percentage of the position above 0 and below 100",
                    });
                }
            },
        };
        let brackets = Brackets {
            stop: pct("stop_pct")?,
            target: pct("take_pct")?,
            trail,
            break_even,
            time_exit,
            limit_entry: self.limit_entry()?,
            scale_out,
        };
        if let Some(share) = brackets.scale_out
            && brackets.target.is_none()
        {
            return Err(StrategyError::Invalid {
                key: "scale_out_pct".into(),
                value: share.pct().to_f64().unwrap_or_default(),
                why: "needs take_pct: the part is sold at the first target",
            });
        }
        if let Some(r) = brackets.break_even
            && brackets.stop.is_none()
        {
            return Err(StrategyError::Invalid {
                key: "breakeven_r".into(),
                value: r.to_f64().unwrap_or_default(),
                why: "needs stop_pct: R is the distance from the entry to the stop",
            });
        }
        // One exchange order protects the position: a trailing stop cannot share it with a fixed
        // stop or a target (a fixed stop would be a second sell of the same coins). Under a
        // scale-out the target is the part's and the trailing stop the rest's: two orders.
        for (key, given) in [
            ("stop_pct", brackets.stop.is_some()),
            (
                "take_pct",
                brackets.target.is_some() && brackets.scale_out.is_none(),
            ),
        ] {
            if given && brackets.trail.is_some() {
                return Err(StrategyError::Invalid {
                    key: key.into(),
                    value: self.given.get(key).copied().unwrap_or_default(),
                    why: "cannot be combined with trail_bips: the trailing stop is the position's protection",
                });
            }
        }
        Ok(brackets)
    }
}

impl Params<'_> {
    /// `entry_limit_bps` (with `post_only` and `entry_timeout_candles`): a limit entry that
    /// many basis points under the decision close, resting at most that many candles (1 when
    /// not given).
    fn limit_entry(&self) -> Result<Option<LimitEntry>, StrategyError> {
        let Some(&bps) = self.given.get("entry_limit_bps") else {
            for key in ["post_only", "entry_timeout_candles"] {
                if let Some(&v) = self.given.get(key) {
                    return Err(StrategyError::Invalid {
                        key: key.into(),
                        value: v,
                        why: "needs entry_limit_bps: it sets how a limit entry rests",
                    });
                }
            }
            return Ok(None);
        };
        if !(bps.fract() == 0.0 && (1.0..=2000.0).contains(&bps)) {
            return Err(StrategyError::Invalid {
                key: "entry_limit_bps".into(),
                value: bps,
                why: "must be a whole number of basis points between 1 and 2000 under the close",
            });
        }
        let post_only = match self.given.get("post_only") {
            None => false,
            Some(&v) if v == 0.0 || v == 1.0 => v == 1.0,
            Some(&v) => {
                return Err(StrategyError::Invalid {
                    key: "post_only".into(),
                    value: v,
                    why: "must be true or false (1 or 0)",
                });
            }
        };
        Ok(Some(LimitEntry {
            offset_bps: bps as u32,
            post_only,
            timeout_candles: self.period("entry_timeout_candles", 1)? as u32,
        }))
    }
}

/// Optional stop-loss / take-profit as a percentage of the signal candle's close, or a trailing
/// stop.
#[derive(Debug, Clone, Copy, Default)]
struct Brackets {
    stop: Option<Decimal>,
    target: Option<Decimal>,
    trail: Option<TrailingDelta>,
    break_even: Option<Decimal>,
    time_exit: Option<u32>,
    limit_entry: Option<LimitEntry>,
    scale_out: Option<ScaleOutShare>,
}

impl Brackets {
    /// An entry signal with the brackets priced off the current close (read only when there
    /// are any).
    ///
    /// Inline when there are none (a plain strategy's every entry): the signal is then built
    /// where it is returned, instead of being written field by field, narrow, and copied wide
    /// through a call's argument and result (each copy a load stalled on those stores).
    #[inline(always)]
    fn entry(&self, history: &History<'_>) -> Signal {
        let none = self.stop.is_none()
            && self.target.is_none()
            && self.trail.is_none()
            && self.break_even.is_none()
            && self.time_exit.is_none()
            && self.limit_entry.is_none()
            && self.scale_out.is_none();
        if none {
            return Signal::enter_long();
        }
        self.attach_some(Signal::enter_long(), history)
    }

    #[inline(never)]
    fn attach_some(&self, mut signal: Signal, history: &History<'_>) -> Signal {
        if let Some(n) = self.time_exit {
            signal = signal.with_time_exit(n);
        }
        if let Some(entry) = self.limit_entry {
            signal = signal.with_limit_entry(entry);
        }
        if self.stop.is_none() && self.target.is_none() && self.trail.is_none() {
            return signal;
        }
        let close = history.close_price();
        if let Some(delta) = self.trail {
            // The stop the position is sized on is where the trailing stop starts: the delta
            // under the close the entry is decided at.
            signal = signal
                .with_stop_loss(close * (Decimal::ONE - delta.fraction()))
                .with_trailing(delta);
        }
        if let Some(s) = self.stop {
            signal = signal.with_stop_loss(close * (Decimal::ONE - s));
        }
        if let Some(t) = self.target {
            signal = signal.with_take_profit(close * (Decimal::ONE + t));
        }
        if let Some(r) = self.break_even {
            signal = signal.with_break_even(r);
        }
        if let Some(share) = self.scale_out {
            signal = signal.with_scale_out(share);
        }
        signal
    }
}

/// Indicator columns over one data set, computed once and shared by every run on that same data
/// set: a sweep's thousand SMA-crossover runs need one SMA column per distinct period instead of
/// two fresh averages per run, and a single run gets its averages from one tight batch pass
/// instead of updating two rings per candle. The batch columns come from the same step
/// functions as the streaming indicators (bit-identical, checked by a property test), so a
/// strategy reading them decides exactly as one updating its own.
///
/// A strategy built with these columns must run on the candles they were computed from, from the
/// first one (it reads the column at the history's current index).
pub struct SharedColumns<'a> {
    closes: &'a [f64],
    sma: Mutex<HashMap<usize, Arc<[f64]>>>,
}

impl<'a> SharedColumns<'a> {
    pub fn new(closes: &'a [f64]) -> Self {
        SharedColumns {
            closes,
            sma: Mutex::new(HashMap::new()),
        }
    }

    /// The SMA of the closes over `period` (NaN during the warm-up), computed on first use.
    pub fn sma(&self, period: usize) -> Arc<[f64]> {
        let cached = |map: &HashMap<usize, Arc<[f64]>>| map.get(&period).cloned();
        if let Some(column) = cached(&self.sma.lock().unwrap_or_else(PoisonError::into_inner)) {
            return column;
        }
        // Computed outside the lock so other workers are not held up; a race computes the same
        // column twice and keeps the first.
        let column: Arc<[f64]> = sma(self.closes, period).into();
        self.sma
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(period)
            .or_insert(column)
            .clone()
    }

    /// How many distinct columns are held (for tests and diagnostics).
    pub fn cached_columns(&self) -> usize {
        self.sma
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One of the built-in strategies. An enum rather than a boxed trait object so the engine's loop
/// over a built-in strategy is one monomorphic loop with the strategy's step inlined (a branch
/// the CPU predicts perfectly, instead of an indirect call per candle).
pub enum BuiltinStrategy {
    SmaCross(SmaCross),
    RsiReversion(RsiReversion),
    Macd(MacdCross),
    RsiMacd(RsiMacd),
}

impl Strategy for BuiltinStrategy {
    fn name(&self) -> &str {
        match self {
            BuiltinStrategy::SmaCross(s) => s.name(),
            BuiltinStrategy::RsiReversion(s) => s.name(),
            BuiltinStrategy::Macd(s) => s.name(),
            BuiltinStrategy::RsiMacd(s) => s.name(),
        }
    }

    #[inline(always)]
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        match self {
            BuiltinStrategy::SmaCross(s) => s.on_candle(ctx),
            BuiltinStrategy::RsiReversion(s) => s.on_candle(ctx),
            BuiltinStrategy::Macd(s) => s.on_candle(ctx),
            BuiltinStrategy::RsiMacd(s) => s.on_candle(ctx),
        }
    }

    fn quiet_until(&mut self, history: History<'_>, from: usize) -> usize {
        match self {
            BuiltinStrategy::SmaCross(s) => s.quiet_until(history, from),
            BuiltinStrategy::RsiReversion(s) => s.quiet_until(history, from),
            BuiltinStrategy::Macd(s) => s.quiet_until(history, from),
            BuiltinStrategy::RsiMacd(s) => s.quiet_until(history, from),
        }
    }
}

/// Build a built-in strategy that keeps its own streaming indicators (live trading, single runs).
pub fn build_strategy(spec: &StrategySpec) -> Result<BuiltinStrategy, StrategyError> {
    build(spec, None)
}

/// Build a built-in strategy that reads its moving averages from `shared` where it can (sweeps).
pub fn build_strategy_shared(
    spec: &StrategySpec,
    shared: &SharedColumns<'_>,
) -> Result<BuiltinStrategy, StrategyError> {
    build(spec, Some(shared))
}

fn build(
    spec: &StrategySpec,
    shared: Option<&SharedColumns<'_>>,
) -> Result<BuiltinStrategy, StrategyError> {
    match spec.name.as_str() {
        "sma-cross" => {
            let p = Params {
                strategy: "sma-cross",
                given: &spec.params,
                allowed: &[
                    "fast",
                    "slow",
                    "stop_pct",
                    "take_pct",
                    "trail_bips",
                    "breakeven_r",
                    "time_exit_candles",
                    "entry_limit_bps",
                    "post_only",
                    "entry_timeout_candles",
                    "scale_out_pct",
                ],
            };
            p.check()?;
            let fast = p.period("fast", 10)?;
            let slow = p.period("slow", 30)?;
            if fast >= slow {
                return Err(StrategyError::Invalid {
                    key: "fast".into(),
                    value: fast as f64,
                    why: "must be shorter than slow",
                });
            }
            let strategy = match shared {
                Some(cols) => SmaCross::from_columns(cols.sma(fast), cols.sma(slow)),
                None => SmaCross::new(fast, slow),
            };
            Ok(BuiltinStrategy::SmaCross(
                strategy.with_brackets(p.brackets()?),
            ))
        }
        "rsi-reversion" => {
            let p = Params {
                strategy: "rsi-reversion",
                given: &spec.params,
                allowed: &[
                    "period",
                    "oversold",
                    "overbought",
                    "stop_pct",
                    "take_pct",
                    "trail_bips",
                    "breakeven_r",
                    "time_exit_candles",
                    "entry_limit_bps",
                    "post_only",
                    "entry_timeout_candles",
                    "scale_out_pct",
                ],
            };
            p.check()?;
            let oversold = p.level("oversold", 30.0)?;
            let overbought = p.level("overbought", 70.0)?;
            if oversold >= overbought {
                return Err(StrategyError::Invalid {
                    key: "oversold".into(),
                    value: oversold,
                    why: "must be below overbought",
                });
            }
            Ok(BuiltinStrategy::RsiReversion(RsiReversion {
                rsi: Rsi::new(p.period("period", 14)?),
                oversold,
                overbought,
                brackets: p.brackets()?,
            }))
        }
        "macd" => {
            let p = Params {
                strategy: "macd",
                given: &spec.params,
                allowed: &[
                    "fast",
                    "slow",
                    "signal",
                    "stop_pct",
                    "take_pct",
                    "trail_bips",
                    "breakeven_r",
                    "time_exit_candles",
                    "entry_limit_bps",
                    "post_only",
                    "entry_timeout_candles",
                    "scale_out_pct",
                ],
            };
            p.check()?;
            Ok(BuiltinStrategy::Macd(MacdCross {
                macd: Macd::new(
                    p.period("fast", 12)?,
                    p.period("slow", 26)?,
                    p.period("signal", 9)?,
                ),
                prev_hist: None,
                brackets: p.brackets()?,
            }))
        }
        "rsi-macd" => {
            let p = Params {
                strategy: "rsi-macd",
                given: &spec.params,
                allowed: &[
                    "rsi_period",
                    "oversold",
                    "overbought",
                    "stop_pct",
                    "take_pct",
                    "trail_bips",
                    "breakeven_r",
                    "time_exit_candles",
                    "entry_limit_bps",
                    "post_only",
                    "entry_timeout_candles",
                    "scale_out_pct",
                ],
            };
            p.check()?;
            Ok(BuiltinStrategy::RsiMacd(RsiMacd {
                rsi: Rsi::new(p.period("rsi_period", 14)?),
                macd: Macd::new(12, 26, 9),
                oversold: p.level("oversold", 30.0)?,
                overbought: p.level("overbought", 70.0)?,
                brackets: p.brackets()?,
            }))
        }
        other => Err(StrategyError::Unknown(other.to_string())),
    }
}

/// Long when the fast SMA crosses above the slow one, flat when it crosses below. A tie is not a
/// cross; signals need both averages defined on the previous and the current candle.
pub struct SmaCross {
    averages: Averages,
    prev: Option<(f64, f64)>,
    brackets: Brackets,
}

/// Where the crossover's two averages come from.
enum Averages {
    /// Updated one close at a time from the history, the leaving close read back from it
    /// (live trading, single runs): no ring buffers, no columns to allocate.
    Sliding { fast: SlidingSma, slow: SlidingSma },
    /// Read from columns computed once over the whole run (sweeps). The value at index `i`
    /// depends only on closes `..=i`, and is read at the history's current index, so nothing
    /// after the current candle can leak in.
    Columns { fast: Arc<[f64]>, slow: Arc<[f64]> },
}

impl SmaCross {
    pub fn new(fast: usize, slow: usize) -> Self {
        SmaCross {
            averages: Averages::Sliding {
                fast: SlidingSma::new(fast),
                slow: SlidingSma::new(slow),
            },
            prev: None,
            brackets: Brackets::default(),
        }
    }

    /// From precomputed SMA columns (see [`SharedColumns`]).
    pub fn from_columns(fast: Arc<[f64]>, slow: Arc<[f64]>) -> Self {
        SmaCross {
            averages: Averages::Columns { fast, slow },
            prev: None,
            brackets: Brackets::default(),
        }
    }

    fn with_brackets(mut self, brackets: Brackets) -> Self {
        self.brackets = brackets;
        self
    }
}

impl Strategy for SmaCross {
    fn name(&self) -> &str {
        "sma-cross"
    }

    #[inline(always)]
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        let (f, s) = match &mut self.averages {
            Averages::Sliding { fast, slow } => {
                let closes = ctx.history.closes();
                let f = fast.update(closes);
                let s = slow.update(closes);
                (f?, s?)
            }
            Averages::Columns { fast, slow } => {
                let i = ctx.history.len() - 1;
                let (Some(&f), Some(&s)) = (fast.get(i), slow.get(i)) else {
                    return None;
                };
                if f.is_nan() || s.is_nan() {
                    return None;
                }
                (f, s)
            }
        };
        let prev = self.prev.replace((f, s));
        let (pf, ps) = prev?;
        if pf < ps && f > s {
            Some(self.brackets.entry(&ctx.history))
        } else if pf > ps && f < s {
            Some(Signal::exit_long())
        } else {
            None
        }
    }

    /// Runs to the next cross: the candles before it only move the averages on (exactly as
    /// `on_candle` does: the same updates, the same skipped warm-up and NaN candles). The
    /// state is worked on in locals and written back once, so the loop runs in registers.
    fn quiet_until(&mut self, history: History<'_>, from: usize) -> usize {
        let end = history.len();
        let mut prev = self.prev;
        let stop = match &mut self.averages {
            Averages::Sliding { fast, slow } => {
                let closes = history.closes();
                let (mut fast_now, mut slow_now) = (fast.clone(), slow.clone());
                let mut stop = end;
                for k in from..end {
                    // The cross candle is left for `on_candle`, which updates from the
                    // averages as they were before it.
                    let (mut f_avg, mut s_avg) = (fast_now.clone(), slow_now.clone());
                    let seen = &closes[..=k];
                    let (f, s) = (f_avg.update(seen), s_avg.update(seen));
                    if let (Some(f), Some(s)) = (f, s) {
                        if crosses(prev, f, s) {
                            stop = k;
                            break;
                        }
                        prev = Some((f, s));
                    }
                    (fast_now, slow_now) = (f_avg, s_avg);
                }
                (*fast, *slow) = (fast_now, slow_now);
                stop
            }
            Averages::Columns { fast, slow } => {
                let defined = end.min(fast.len()).min(slow.len());
                let (fast, slow) = (&fast[..defined], &slow[..defined]);
                // Past the columns `on_candle` signals nothing and remembers nothing.
                let mut stop = end;
                for k in from..defined {
                    let (f, s) = (fast[k], slow[k]);
                    if f.is_nan() || s.is_nan() {
                        continue;
                    }
                    if crosses(prev, f, s) {
                        stop = k;
                        break;
                    }
                    prev = Some((f, s));
                }
                stop
            }
        };
        self.prev = prev;
        stop
    }
}

/// Whether averages `(f, s)` after `prev` are a cross either way (a tie is none).
#[inline(always)]
fn crosses(prev: Option<(f64, f64)>, f: f64, s: f64) -> bool {
    prev.is_some_and(|(pf, ps)| (pf < ps && f > s) || (pf > ps && f < s))
}

/// Buy when RSI is below `oversold`, sell when above `overbought`.
pub struct RsiReversion {
    rsi: Rsi,
    oversold: f64,
    overbought: f64,
    brackets: Brackets,
}

impl Strategy for RsiReversion {
    fn name(&self) -> &str {
        "rsi-reversion"
    }
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        let rsi = self.rsi.update(ctx.history.close())?;
        if rsi < self.oversold {
            Some(self.brackets.entry(&ctx.history))
        } else if rsi > self.overbought {
            Some(Signal::exit_long())
        } else {
            None
        }
    }
}

/// Long when the MACD histogram turns positive, flat when it turns negative.
pub struct MacdCross {
    macd: Macd,
    prev_hist: Option<f64>,
    brackets: Brackets,
}

impl Strategy for MacdCross {
    fn name(&self) -> &str {
        "macd"
    }
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        let hist = self.macd.update(ctx.history.close())?.histogram;
        let prev = self.prev_hist.replace(hist)?;
        if prev <= 0.0 && hist > 0.0 {
            Some(self.brackets.entry(&ctx.history))
        } else if prev >= 0.0 && hist < 0.0 {
            Some(Signal::exit_long())
        } else {
            None
        }
    }
}

/// The seed's rule: RSI < 30 and MACD histogram > 0 buys; RSI > 70 and histogram < 0 sells.
pub struct RsiMacd {
    rsi: Rsi,
    macd: Macd,
    oversold: f64,
    overbought: f64,
    brackets: Brackets,
}

impl Strategy for RsiMacd {
    fn name(&self) -> &str {
        "rsi-macd"
    }
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        let close = ctx.history.close();
        let rsi = self.rsi.update(close);
        let hist = self.macd.update(close).map(|m| m.histogram);
        // The seed's rule, the same function the live rules engine uses.
        match simple_signal_at(rsi?, hist?, self.oversold, self.overbought) {
            RuleSignal::Buy => Some(self.brackets.entry(&ctx.history)),
            RuleSignal::Sell => Some(Signal::exit_long()),
            RuleSignal::Hold => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, params: &[(&str, f64)]) -> StrategySpec {
        StrategySpec {
            name: name.into(),
            params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn builds_every_built_in_and_refuses_bad_parameters() {
        for name in BUILT_IN {
            assert_eq!(build_strategy(&spec(name, &[])).unwrap().name(), name);
        }
        assert!(matches!(
            build_strategy(&spec("sma-cross", &[("fats", 3.0)])),
            Err(StrategyError::UnknownParam { .. })
        ));
        assert!(build_strategy(&spec("sma-cross", &[("fast", 30.0), ("slow", 10.0)])).is_err());
        assert!(build_strategy(&spec("sma-cross", &[("fast", 2.5)])).is_err());
        assert!(build_strategy(&spec("rsi-reversion", &[("oversold", 120.0)])).is_err());
        assert!(matches!(
            build_strategy(&spec("moon", &[])),
            Err(StrategyError::Unknown(_))
        ));
    }

    #[test]
    fn shared_columns_compute_each_period_once() {
        let closes: Vec<f64> = (0..50).map(|i| f64::from(i % 7)).collect();
        let shared = SharedColumns::new(&closes);
        for (fast, slow) in [(5.0, 20.0), (5.0, 30.0), (10.0, 20.0)] {
            build_strategy_shared(
                &spec("sma-cross", &[("fast", fast), ("slow", slow)]),
                &shared,
            )
            .unwrap();
        }
        // periods 5, 10, 20 and 30
        assert_eq!(shared.cached_columns(), 4);
        assert!(Arc::ptr_eq(&shared.sma(5), &shared.sma(5)));
    }

    #[test]
    fn trail_bips_takes_binance_range_and_refuses_a_second_protection() {
        for name in BUILT_IN {
            assert!(build_strategy(&spec(name, &[("trail_bips", 150.0)])).is_ok());
        }
        for bad in [9.0, 2001.0, 150.5, -10.0] {
            assert!(
                matches!(
                    build_strategy(&spec("sma-cross", &[("trail_bips", bad)])),
                    Err(StrategyError::Invalid { ref key, .. }) if key == "trail_bips"
                ),
                "{bad}"
            );
        }
        for other in ["stop_pct", "take_pct"] {
            assert!(matches!(
                build_strategy(&spec("macd", &[("trail_bips", 150.0), (other, 2.0)])),
                Err(StrategyError::Invalid { ref key, .. }) if key == other
            ));
        }
    }

    /// `scale_out_pct` needs the first target (`take_pct`) and a share strictly between none
    /// and all; with it a target may go with `trail_bips` (the part's target, the rest's
    /// trailing stop), which stays refused without it. Stored parameters are checked the same
    /// way for every decision engine.
    #[test]
    fn scale_out_pct_needs_a_target_and_a_share_between_none_and_all() {
        let sma = |params: &[(&str, f64)]| build_strategy(&spec("sma-cross", params));
        for name in BUILT_IN {
            assert!(
                build_strategy(&spec(name, &[("take_pct", 2.0), ("scale_out_pct", 50.0)])).is_ok()
            );
        }
        assert!(
            sma(&[
                ("take_pct", 2.0),
                ("trail_bips", 150.0),
                ("scale_out_pct", 40.0)
            ])
            .is_ok()
        );
        assert!(matches!(
            sma(&[("take_pct", 2.0), ("trail_bips", 150.0)]),
            Err(StrategyError::Invalid { ref key, .. }) if key == "take_pct"
        ));
        assert!(matches!(
            sma(&[("stop_pct", 1.0), ("scale_out_pct", 50.0)]),
            Err(StrategyError::Invalid { ref key, why, .. })
                if key == "scale_out_pct" && why.contains("take_pct")
        ));
        for bad in [0.0, 100.0, -5.0, 150.0] {
            assert!(
                matches!(
                    sma(&[("take_pct", 2.0), ("scale_out_pct", bad)]),
                    Err(StrategyError::Invalid { ref key, .. }) if key == "scale_out_pct"
                ),
                "{bad}"
            );
        }
        assert!(check_exits(&serde_json::json!({"scale_out_pct": 30})).is_ok());
        let refused = check_exits(&serde_json::json!({"scale_out_pct": 100})).unwrap_err();
        assert!(refused.contains("scale_out_pct"), "{refused}");
        assert_eq!(
            scale_out_of(&serde_json::json!({"scale_out_pct": 25})).map(|s| s.fraction()),
            Some(Decimal::new(25, 2))
        );
    }

    #[test]
    fn time_exit_candles_is_a_whole_number_of_candles() {
        assert!(build_strategy(&spec("macd", &[("time_exit_candles", 12.0)])).is_ok());
        for bad in [0.0, 1.5, -3.0] {
            assert!(build_strategy(&spec("macd", &[("time_exit_candles", bad)])).is_err());
        }
        assert_eq!(
            time_exit_of(&serde_json::json!({"time_exit_candles": 12.0})),
            Some(12)
        );
        assert_eq!(
            time_exit_of(&serde_json::json!({"time_exit_candles": 0})),
            None
        );
    }

    #[test]
    fn entry_limit_bps_takes_post_only_and_a_time_out_and_is_stored_for_live_trading() {
        assert!(
            build_strategy(&spec(
                "sma-cross",
                &[
                    ("entry_limit_bps", 25.0),
                    ("post_only", 1.0),
                    ("entry_timeout_candles", 3.0)
                ]
            ))
            .is_ok()
        );
        for (params, bad) in [
            (&[("entry_limit_bps", 0.0)][..], "entry_limit_bps"),
            (&[("entry_limit_bps", 2.5)][..], "entry_limit_bps"),
            (&[("entry_limit_bps", 2001.0)][..], "entry_limit_bps"),
            (&[("post_only", 1.0)][..], "post_only"),
            (
                &[("entry_timeout_candles", 2.0)][..],
                "entry_timeout_candles",
            ),
            (
                &[("entry_limit_bps", 10.0), ("post_only", 2.0)][..],
                "post_only",
            ),
            (
                &[("entry_limit_bps", 10.0), ("entry_timeout_candles", 0.0)][..],
                "entry_timeout_candles",
            ),
        ] {
            assert!(
                matches!(
                    build_strategy(&spec("macd", params)),
                    Err(StrategyError::Invalid { ref key, .. }) if key == bad
                ),
                "{params:?}"
            );
        }
        // Live trading sends the limit entry (issue #19): `strategy add` stores a valid one and
        // refuses what the backtest refuses.
        let stored = serde_json::json!({
            "strategy": "sma-cross", "entry_limit_bps": 10, "post_only": true,
            "entry_timeout_candles": 2
        });
        assert_eq!(check_exits(&stored), Ok(()));
        assert_eq!(
            limit_entry_of(&stored),
            Ok(Some(LimitEntry {
                offset_bps: 10,
                post_only: true,
                timeout_candles: 2
            }))
        );
        let why = check_exits(&serde_json::json!({"entry_limit_bps": 2.5})).unwrap_err();
        assert!(why.contains("entry_limit_bps"), "{why}");
        assert!(check_exits(&serde_json::json!({"post_only": true})).is_err());
        assert!(check_exits(&serde_json::json!({"entry_limit_bps": 5, "post_only": "x"})).is_err());
    }

    #[test]
    fn breakeven_r_needs_a_stop_and_a_positive_multiple() {
        assert!(
            build_strategy(&spec(
                "sma-cross",
                &[("stop_pct", 1.0), ("breakeven_r", 1.5)]
            ))
            .is_ok()
        );
        for params in [
            &[("breakeven_r", 1.0)][..],
            &[("stop_pct", 1.0), ("breakeven_r", 0.0)][..],
            &[("stop_pct", 1.0), ("breakeven_r", -1.0)][..],
        ] {
            assert!(
                matches!(
                    build_strategy(&spec("rsi-macd", params)),
                    Err(StrategyError::Invalid { ref key, .. }) if key == "breakeven_r"
                ),
                "{params:?}"
            );
        }
        let stored =
            serde_json::json!({"strategy": "sma-cross", "breakeven_r": 1.5, "trail_bips": 150.0});
        assert_eq!(break_even_of(&stored), Some(Decimal::new(15, 1)));
        assert_eq!(trailing_of(&stored), Some(TrailingDelta(150)));
        assert_eq!(break_even_of(&serde_json::json!({"breakeven_r": 0})), None);
        assert_eq!(trailing_of(&serde_json::json!({"trail_bips": 5000})), None);
    }

    #[test]
    fn a_trailing_entry_is_sized_on_the_delta_under_the_close() {
        use crate::domain::market::candle::{Candle, CandleColumns};
        use crate::domain::money::{Price, Qty};
        let candles = vec![Candle {
            open_time: 0,
            open: Price(Decimal::from(200)),
            high: Price(Decimal::from(200)),
            low: Price(Decimal::from(200)),
            close: Price(Decimal::from(200)),
            volume: Qty(Decimal::ONE),
        }];
        let cols = CandleColumns::from_candles(&candles);
        let brackets = Brackets {
            trail: Some(TrailingDelta(250)),
            ..Brackets::default()
        };
        let signal = brackets.entry(&History::up_to(&candles, &cols, 0));
        // 2.5 % under 200
        assert_eq!(signal.stop_loss, Some(Price(Decimal::from(195))));
        assert_eq!(signal.trailing, Some(TrailingDelta(250)));
        assert_eq!(signal.take_profit, None);
    }

    #[test]
    fn strategy_file_parses_from_toml() {
        let s: StrategySpec =
            toml::from_str("name = \"sma-cross\"\n[params]\nfast = 5\nslow = 20\n").unwrap();
        assert_eq!(s, spec("sma-cross", &[("fast", 5.0), ("slow", 20.0)]));
        assert!(toml::from_str::<StrategySpec>("name = \"x\"\nbogus = 1\n").is_err());
    }
}
