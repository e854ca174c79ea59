//! `backtest --engine llm|rules`: a backtest strategy that asks a decision engine on every
//! closed candle, so the LLM and the rules engine run through the same backtest engine, fills
//! and sizing as the built-in strategies. The snapshot an engine sees is built only from what
//! is known at the candle's close: the candles so far (indicators), the run's own position and
//! PnL, and the run's own recent decisions. Nothing in it reads the wall clock.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::app::backtest::{BacktestRequest, BacktestRunError, RecordedRun};
use crate::app::decide::{AnyEngine, DecisionEngine, EngineOutput, record_in_backtest};
use crate::domain::Symbol;
use crate::domain::backtest::{
    BacktestConfig, BacktestResult, BacktestService, Engine, Signal, Strategy, StrategyContext,
};
use crate::domain::decision::{
    Action, DecisionInput, PastDecision, PositionSnapshot, RiskSnapshot, Thesis, level_price,
};
use crate::domain::market::candle::{Candle, CandleColumns, Interval, TimestampMs};
use crate::domain::money::{Price, Quote};
use crate::store::Store;

const DAY_MS: i64 = 86_400_000;

/// What an engine run cost and how often the cache answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunTally {
    pub decisions: u64,
    /// Requests sent to the LLM server (retries and repairs included).
    pub llm_calls: u64,
    /// Decisions answered entirely from the cache (no request, no cost).
    pub cache_hits: u64,
    /// Dollars spent in this run (cache hits cost nothing).
    pub cost_usd: Decimal,
    /// What the cached decisions cost when they were first made: the run's cost to a user who
    /// trades it live.
    pub cached_cost_usd: Decimal,
    /// Decisions that were errors or invalid replies (held).
    pub failed: u64,
}

/// Parameters of an engine backtest besides the request.
pub struct EngineRun {
    pub engine: AnyEngine,
    /// `llm:<model>` or `rules`: the run's strategy name.
    pub label: String,
    /// Closed candles the snapshot's indicators are computed over.
    pub lookback: usize,
    /// The run's own earlier decisions shown to the engine.
    pub recent_decisions: usize,
    /// Largest position a decision may ask for, percent of equity.
    pub max_position_pct: f64,
}

/// The decision engine as a backtest strategy.
pub struct DecisionStrategy {
    run: EngineRun,
    handle: tokio::runtime::Handle,
    symbol: Symbol,
    interval: Interval,
    min_confidence: f64,
    recent: VecDeque<PastDecision>,
    /// (UTC day, equity at its first close): the day's PnL as the live engine is told it.
    day: Option<(i64, Decimal)>,
    /// The stop asked for by the entry that opened the position, for the heat figure.
    entry_stop: Option<Price>,
    /// The entry decision's thesis, given to every prompt while the position is open.
    entry_thesis: Option<Thesis>,
    /// Where decisions are recorded: the store and the backtest row.
    recorder: Option<(Arc<Mutex<Store>>, i64)>,
    tally: Arc<Mutex<RunTally>>,
    on_decision: Box<dyn FnMut(&RunTally) + Send>,
}

/// What a decision means for a long-only backtest, and the outcome recorded with it.
fn to_signal(
    out: &EngineOutput,
    long: bool,
    price: Price,
    min_confidence: f64,
) -> (Option<Signal>, &'static str) {
    if out.error.is_some() {
        return (None, "error");
    }
    if !out.validated.is_valid() {
        return (None, "invalid");
    }
    let d = &out.validated.decision;
    match d.action {
        Action::Hold => (None, "hold"),
        Action::Buy if long => (None, "hold: already long"),
        Action::Buy if d.confidence < min_confidence => (None, "refused: low confidence"),
        Action::Buy => {
            let entry = price.get();
            let mut signal = Signal::enter_long();
            if let Some(stop) = d.stop_loss.and_then(|l| level_price(l, entry, true)) {
                signal = signal.with_stop_loss(Price::new(stop));
            }
            if let Some(target) = d.take_profit.and_then(|l| level_price(l, entry, false)) {
                signal = signal.with_take_profit(Price::new(target));
            }
            (Some(signal), "entered")
        }
        Action::Sell | Action::Close if long => (Some(Signal::exit_long()), "exited"),
        Action::Sell | Action::Close => (None, "ignored: flat (long only)"),
    }
}

impl DecisionStrategy {
    pub fn new(
        run: EngineRun,
        req: &BacktestRequest,
        handle: tokio::runtime::Handle,
        recorder: Option<(Arc<Mutex<Store>>, i64)>,
        on_decision: Box<dyn FnMut(&RunTally) + Send>,
    ) -> Result<(Self, Arc<Mutex<RunTally>>), BacktestRunError> {
        let symbol = Symbol::new(&req.symbol).map_err(|e| {
            BacktestRunError::Store(crate::store::StoreError::Conflict(e.to_string()))
        })?;
        let tally = Arc::new(Mutex::new(RunTally::default()));
        Ok((
            DecisionStrategy {
                run,
                handle,
                symbol,
                interval: req.interval,
                min_confidence: req.risk.min_confidence.to_f64().unwrap_or(0.0),
                recent: VecDeque::new(),
                day: None,
                entry_stop: None,
                entry_thesis: None,
                recorder,
                tally: tally.clone(),
                on_decision,
            },
            tally,
        ))
    }

    /// The snapshot at the close of the history's current candle.
    fn input(&mut self, ctx: &StrategyContext<'_>) -> Option<DecisionInput> {
        let window = ctx.history.recent(self.run.lookback);
        let current = ctx.history.current();
        let decided_at = current.close_time(self.interval);
        let mut input =
            DecisionInput::from_candles(self.symbol.clone(), self.interval, &window, decided_at)?;
        let price = current.close.get();
        let qty = ctx.position.qty.get();
        let equity = ctx.cash.get() + qty * price;
        let day = decided_at.div_euclid(DAY_MS);
        let day_start = match self.day {
            Some((d, e)) if d == day => e,
            _ => {
                self.day = Some((day, equity));
                equity
            }
        };
        if ctx.position.is_flat() {
            self.entry_stop = None;
            self.entry_thesis = None;
        } else {
            input.position = Some(PositionSnapshot {
                quantity: ctx.position.qty,
                entry_price: ctx.position.entry_price,
                unrealized_pnl: Quote::new((price - ctx.position.entry_price.get()) * qty),
                thesis: self.entry_thesis.clone(),
            });
        }
        let at_risk = match self.entry_stop {
            Some(stop) if !ctx.position.is_flat() => (price - stop.get()).max(Decimal::ZERO) * qty,
            _ if !ctx.position.is_flat() => price * qty,
            _ => Decimal::ZERO,
        };
        let heat_pct = if equity > Decimal::ZERO {
            (at_risk / equity * Decimal::ONE_HUNDRED)
                .to_f64()
                .unwrap_or(0.0)
        } else {
            0.0
        };
        input.risk = RiskSnapshot {
            heat_pct,
            daily_pnl: Quote::new(equity - day_start),
            breaker: "active".into(),
            max_position_pct: self.run.max_position_pct,
        };
        input.recent_decisions = self.recent.iter().cloned().collect();
        Some(input)
    }
}

impl Strategy for DecisionStrategy {
    fn name(&self) -> &str {
        &self.run.label
    }

    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        let input = self.input(ctx)?;
        let out = self.handle.block_on(self.run.engine.decide(&input));
        let long = !ctx.position.is_flat();
        let (signal, outcome) = to_signal(&out, long, input.price, self.min_confidence);
        if outcome == "entered" {
            self.entry_stop = signal.and_then(|s| s.stop_loss);
        }
        if let Some((store, backtest_id)) = &self.recorder {
            let recorded = store
                .lock()
                .map_err(|_| "the database lock was poisoned".to_string())
                .and_then(|db| {
                    record_in_backtest(&db, &input, &out, *backtest_id, outcome)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "cannot record a backtest decision");
            }
        }
        if outcome == "entered" {
            // Every later prompt about this position carries why it was opened.
            self.entry_thesis = Some(Thesis::of_entry(input.now_ms, &out.validated.decision));
        }
        self.recent.push_front(PastDecision {
            decided_at: input.now_ms,
            action: out.validated.decision.action.to_string(),
            outcome: outcome.to_string(),
        });
        self.recent.truncate(self.run.recent_decisions);
        if let Ok(mut tally) = self.tally.lock() {
            tally.decisions += 1;
            tally.llm_calls += u64::from(out.llm_calls);
            if out.engine == "cache" {
                tally.cache_hits += 1;
            }
            tally.cost_usd += out.cost_usd.unwrap_or_default();
            tally.cached_cost_usd += out.cached_cost_usd.unwrap_or_default();
            if out.error.is_some() || !out.validated.is_valid() {
                tally.failed += 1;
            }
            (self.on_decision)(&tally);
        }
        signal
    }
}

/// What an engine run will cost at most, worked out before it starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostEstimate {
    /// One decision a candle; a repair round would add one call.
    pub calls: u64,
    pub prompt_tokens_per_call: u64,
    pub completion_tokens_per_call: u64,
    /// `None` when the model has no configured price (the server's reported cost still counts
    /// against the cap while the run goes).
    pub usd: Option<Decimal>,
}

/// The estimate for `calls` decisions whose prompts are about `prompt_chars` long: about four
/// characters a token; the reply is taken at its usual size (a decision is ~300 tokens), capped
/// by `max_tokens`.
pub fn estimate_cost(
    config: &crate::services::llm::LlmConfig,
    calls: u64,
    prompt_chars: usize,
) -> CostEstimate {
    let prompt_tokens = u64::try_from(prompt_chars.div_ceil(4)).unwrap_or(u64::MAX);
    let completion_tokens = u64::from(config.max_tokens).min(500);
    let usd = config
        .priced_cost(prompt_tokens, completion_tokens)
        .map(|per_call| per_call * Decimal::from(calls));
    CostEstimate {
        calls,
        prompt_tokens_per_call: prompt_tokens,
        completion_tokens_per_call: completion_tokens,
        usd,
    }
}

/// Run the engine over `candles` through the backtest engine; with `store`, the run is recorded
/// (pending -> running -> completed / cancelled / failed, like every backtest) and so is every
/// decision, linked to it.
#[allow(clippy::too_many_arguments)]
pub fn run_engine_backtest(
    store: Option<(&Store, Arc<Mutex<Store>>)>,
    req: &BacktestRequest,
    parameters: &serde_json::Value,
    run: EngineRun,
    handle: tokio::runtime::Handle,
    candles: &[Candle],
    cancel: &AtomicBool,
    on_decision: Box<dyn FnMut(&RunTally) + Send>,
    now: &dyn Fn() -> TimestampMs,
) -> Result<(Option<i64>, BacktestResult, RunTally), BacktestRunError> {
    let recorded = match &store {
        Some((db, _)) => Some(RecordedRun::start(db, req, parameters, cancel, now)?),
        None => None,
    };
    let recorder = match (&store, &recorded) {
        (Some((_, shared)), Some(r)) => Some((shared.clone(), r.id)),
        _ => None,
    };
    let (strategy, tally) = DecisionStrategy::new(run, req, handle, recorder, on_decision)?;
    let mut config = BacktestConfig::new(req.interval);
    config.initial_cash = req.initial_cash;
    config.costs = req.costs;
    config.fill_model = req.fill;
    let engine = Engine::new(
        Box::new(strategy),
        req.sizing.sizer(&req.risk),
        req.initial_cash,
    )
    .with_fee_rate(req.costs.taker_fee)
    .with_stop_protections(&req.risk, req.interval.millis());
    let columns = CandleColumns::from_candles(candles);
    let stop = recorded.as_ref().map_or(cancel, |r| r.stop_flag());
    let mut progress = |_: usize, _: usize| {
        if let Some(r) = &recorded {
            r.poll();
        }
    };
    let outcome = BacktestService::run(&config, engine, candles, &columns, stop, &mut progress)
        .map_err(BacktestRunError::from);
    let tally = tally.lock().map(|t| t.clone()).unwrap_or_default();
    match (outcome, &recorded) {
        (Ok(result), Some(r)) => {
            r.completed(&result, &[])?;
            Ok((Some(r.id), result, tally))
        }
        (Ok(result), None) => Ok((None, result, tally)),
        (Err(e), Some(r)) => Err(r.failed(e)),
        (Err(e), None) => Err(e),
    }
}

/// An LLM run's metrics on each side of the model's knowledge cutoff: before it the model may
/// simply know what happened, so only the part after it measures skill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CutoffSplit {
    pub knowledge_cutoff: String,
    /// Candles that closed at or before the cutoff (`None`: none did).
    pub before: Option<crate::domain::backtest::Metrics>,
    pub after: Option<crate::domain::backtest::Metrics>,
    /// The whole run lies before the cutoff: its results say little about the model's skill.
    pub whole_run_before_cutoff: bool,
}

/// Split `result` (a run over `candles`) at `cutoff` (`YYYY-MM-DD`, the end of that UTC day):
/// each side's metrics from its own stretch of the equity curve and the trades entered in it.
pub fn split_at_cutoff(
    result: &BacktestResult,
    candles: &[Candle],
    interval: Interval,
    initial_cash: Quote,
    cutoff: &str,
) -> Option<CutoffSplit> {
    use crate::domain::backtest::metrics::{MetricsInput, compute};
    use crate::domain::backtest::{Times, TradeRecord};
    let day = chrono::NaiveDate::parse_from_str(cutoff, "%Y-%m-%d").ok()?;
    let cutoff_ms = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() + DAY_MS;
    let n = result.equity.len().min(candles.len());
    let times = result.times.to_vec();
    let k = candles[..n]
        .iter()
        .position(|c| c.close_time(interval) > cutoff_ms)
        .unwrap_or(n);
    let part = |from: usize, to: usize| -> Option<crate::domain::backtest::Metrics> {
        if from >= to {
            return None;
        }
        let (start, end) = (candles[from].open_time, candles[to - 1].open_time);
        let trades: Vec<TradeRecord> = result
            .trades
            .iter()
            .filter(|t| t.entry_time >= start && t.entry_time <= end)
            .cloned()
            .collect();
        let in_market = times[from..to]
            .iter()
            .filter(|&&at| {
                result
                    .trades
                    .iter()
                    .any(|t| t.entry_time <= at && t.exit_time.is_none_or(|x| at < x))
            })
            .count();
        let fees: Decimal = trades
            .iter()
            .map(|t| t.entry_fee.get() + t.exit_fee.get())
            .sum();
        let initial = if from == 0 {
            initial_cash.to_f64()
        } else {
            result.equity.get(from - 1)?
        };
        Some(compute(&MetricsInput {
            interval,
            initial_equity: initial,
            equity: &result.equity.range_to_vec(from, to),
            times: &Times::of(&times[from..to]),
            trades: &trades,
            candles_in_market: in_market,
            fees_paid: Quote::new(fees),
            first_open: candles[from].open.to_f64(),
            last_close: candles[to - 1].close.to_f64(),
        }))
    };
    Some(CutoffSplit {
        knowledge_cutoff: cutoff.to_string(),
        before: part(0, k),
        after: part(k, n),
        whole_run_before_cutoff: k == n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::decide::EngineOutput;
    use crate::domain::decision::{Level, LevelKind, TradingDecision, ValidationLimits, validate};
    use rust_decimal_macros::dec;

    fn out(decision: TradingDecision) -> EngineOutput {
        let symbol = Symbol::new("BTCUSDT").unwrap();
        let validated = validate(
            decision,
            &symbol,
            Price::new(dec!(100)),
            &ValidationLimits::default(),
        );
        EngineOutput::new("llm", validated)
    }

    #[test]
    fn a_buy_enters_with_its_stop_and_target_and_a_close_exits_only_when_long() {
        let mut buy = TradingDecision::hold("BTCUSDT", "test");
        buy.action = Action::Buy;
        buy.confidence = 0.8;
        buy.position_size_pct = 5.0;
        buy.stop_loss = Some(Level {
            kind: LevelKind::Percent,
            value: 2.0,
        });
        buy.take_profit = Some(Level {
            kind: LevelKind::Percent,
            value: 4.0,
        });
        let (signal, outcome) = to_signal(&out(buy.clone()), false, Price::new(dec!(100)), 0.6);
        let signal = signal.unwrap();
        assert_eq!(outcome, "entered");
        assert_eq!(signal.stop_loss, Some(Price::new(dec!(98))));
        assert_eq!(signal.take_profit, Some(Price::new(dec!(104))));
        // Below the risk layer's confidence floor: no entry, as live risk would refuse it.
        let (none, why) = to_signal(&out(buy.clone()), false, Price::new(dec!(100)), 0.9);
        assert!(none.is_none());
        assert_eq!(why, "refused: low confidence");
        let mut close = TradingDecision::hold("BTCUSDT", "test");
        close.action = Action::Close;
        close.confidence = 0.8;
        let (exit, _) = to_signal(&out(close.clone()), true, Price::new(dec!(100)), 0.6);
        assert_eq!(exit, Some(Signal::exit_long()));
        let (none, _) = to_signal(&out(close), false, Price::new(dec!(100)), 0.6);
        assert!(none.is_none());
    }

    #[test]
    fn metrics_split_at_the_knowledge_cutoff_and_a_run_wholly_before_it_is_flagged() {
        use crate::domain::backtest::Times;
        // Four daily candles from 2025-01-01; equity 100 -> 110 -> 121 (before the cutoff at
        // the end of 01-02), then 121 -> 60.5.
        let day = DAY_MS;
        let start = 1_735_689_600_000;
        let candles: Vec<Candle> = (0..4)
            .map(|i| {
                let p = Price::new(Decimal::from(100 + i));
                Candle {
                    open_time: start + i * day,
                    open: p,
                    high: p,
                    low: p,
                    close: p,
                    volume: crate::domain::Qty::new(Decimal::ONE),
                }
            })
            .collect();
        let times: Vec<i64> = candles.iter().map(|c| c.open_time).collect();
        let result = BacktestResult {
            strategy: "llm:test".into(),
            sizer: "all-in".into(),
            final_equity: Quote::new(dec!(60.5)),
            metrics: crate::domain::backtest::metrics::compute(
                &crate::domain::backtest::metrics::MetricsInput {
                    interval: Interval::D1,
                    initial_equity: 100.0,
                    equity: &[110.0, 121.0, 121.0, 60.5],
                    times: &Times::of(&times),
                    trades: &[],
                    candles_in_market: 0,
                    fees_paid: Quote::ZERO,
                    first_open: 100.0,
                    last_close: 103.0,
                },
            ),
            trades: Vec::new(),
            equity: vec![110.0, 121.0, 121.0, 60.5].into(),
            times: Times::of(&times),
            rejections: Vec::new(),
        };
        let split = split_at_cutoff(
            &result,
            &candles,
            Interval::D1,
            Quote::new(dec!(100)),
            "2025-01-02",
        )
        .unwrap();
        let before = split.before.unwrap();
        let after = split.after.unwrap();
        assert!((before.total_return_pct - 21.0).abs() < 1e-9, "{before:?}");
        assert!((after.total_return_pct + 50.0).abs() < 1e-9, "{after:?}");
        assert!(!split.whole_run_before_cutoff);
        let late = split_at_cutoff(
            &result,
            &candles,
            Interval::D1,
            Quote::new(dec!(100)),
            "2025-12-31",
        )
        .unwrap();
        assert!(late.whole_run_before_cutoff);
        assert!(late.after.is_none());
    }

    #[test]
    fn the_estimate_prices_every_candle_at_the_configured_rates() {
        let config = crate::services::llm::LlmConfig::default();
        // 4000 chars ~ 1000 tokens in, 500 out: 1000 * 1.25e-6 + 500 * 2.5e-6 = 0.0025 a call.
        let e = estimate_cost(&config, 200, 4000);
        assert_eq!(e.prompt_tokens_per_call, 1000);
        assert_eq!(e.usd, Some(dec!(0.5)));
    }
}
