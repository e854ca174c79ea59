//! BacktestService: replays candles through the same strategy -> sizing -> order engine as live
//! trading, on a simulated exchange with honest fills, and measures the result.
//!
//! Per candle, in this order: queued orders fill at the open; stop-loss / take-profit are checked
//! inside the candle; the engine sees the closed candle and may send orders (filled at this close
//! or queued for the next open, per [`FillModel`]); equity is marked at the close. A stretch of
//! candles on which nothing can happen (nothing queued, no bracket to watch, and the strategy
//! quiet on them: [`Strategy::quiet_until`]) only has its equity marked, in one pass.

pub mod compare;
mod curve;
pub mod engine;
pub mod equity_curve;
pub mod fills;
pub mod metrics;
pub mod report;
pub mod settings;
pub mod sizing;
pub mod strategies;
pub mod times;
pub mod walk_forward;

#[cfg(test)]
mod columns_tests;
#[cfg(test)]
mod quiet_tests;
#[cfg(test)]
mod round_trip_tests;
#[cfg(test)]
mod stop_protection_tests;
#[cfg(test)]
mod test_walk;

use curve::{Curve, KeptCurve, LastPoint};
pub use engine::{
    Action, AllIn, Engine, Execution, ExitReason, FixedFraction, History, LimitEntry, LimitOrder,
    OrderAmount, OrderIntent, Position, Signal, SizeDecision, Sizer, SizingInput, SpecialisedRun,
    Strategy, StrategyContext,
};
pub use equity_curve::EquityCurve;
use fills::Outcome;
pub use fills::{Costs, FillModel, Rejection, SimulatedExchange};
pub use metrics::{ClosedStats, EquityStats, Metrics, PartialExit, TradeRecord};
pub use settings::BacktestSettings;
pub use sizing::RiskSizer;
pub use strategies::{
    BuiltinStrategy, SharedColumns, StrategyError, StrategySpec, build_strategy,
    build_strategy_shared,
};
pub use times::Times;
pub use walk_forward::{Span, WalkForwardSpec, WindowReport, WindowSplit};

use crate::domain::market::candle::{Candle, CandleColumns, Interval, TimestampMs};
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::ClosedTrade;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// How a run trades. Defaults: 100,000 quote, Binance's 0.1 % fees, no slippage, next-open fills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestConfig {
    pub interval: Interval,
    pub initial_cash: Quote,
    pub costs: Costs,
    pub fill_model: FillModel,
    pub filters: SymbolFilters,
}

impl BacktestConfig {
    pub fn new(interval: Interval) -> Self {
        let mut filters = SymbolFilters::permissive("BASE", "QUOTE");
        // No exchange info: do not invent lot rounding the real symbol may not have.
        filters.tick_size = Decimal::ZERO;
        filters.step_size = Decimal::ZERO;
        BacktestConfig {
            interval,
            initial_cash: Quote(Decimal::new(100_000, 0)),
            costs: Costs::default(),
            fill_model: FillModel::NextOpen,
            filters,
        }
    }
}

/// Everything a run produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestResult {
    pub strategy: String,
    pub sizer: String,
    /// Exact final equity (cash + position at the last close).
    pub final_equity: Quote,
    pub metrics: Metrics,
    pub trades: Vec<TradeRecord>,
    /// Equity at each candle's close (f64, for charts and statistics).
    pub equity: EquityCurve,
    /// Each equity point's candle open time.
    pub times: Times,
    /// Orders the simulated exchange refused, with the reason (kept as the reason itself, put
    /// into words only when shown: a run can see thousands).
    pub rejections: Vec<(TimestampMs, Rejection)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BacktestError {
    #[error("no candles to backtest: import or fetch some first, or pass --data FILE")]
    NoCandles,
    #[error("candles out of order at {at}: each open time must be after the previous one")]
    Unordered { at: TimestampMs },
    #[error("cancelled after {done} of {total} candles")]
    Cancelled {
        done: usize,
        total: usize,
        /// What the candles before the cancel produced (`None` when none were traded).
        partial: Option<Box<BacktestResult>>,
    },
}

/// Builds round trips from executions as they happen, and the metrics' view of each one that
/// closes ([`ClosedStats`]).
#[derive(Default)]
struct TradeLedger {
    trades: Vec<TradeRecord>,
    closed: ClosedStats,
}

impl TradeLedger {
    /// `closed` is the round trip the engine booked for this execution, if it closed one: its
    /// PnL is taken as booked rather than worked out a second time. A sell that leaves part of
    /// the position open (a scale-out's part) is kept as the trade's `scaled_out` until the
    /// rest sells.
    fn record(&mut self, e: &Execution, closed: Option<ClosedTrade>) {
        match e.side {
            Side::Buy => self.trades.push(TradeRecord {
                entry_time: e.time,
                entry_price: e.price,
                qty: e.qty,
                entry_fee: e.fee,
                exit_time: None,
                exit_price: None,
                exit_fee: Quote::ZERO,
                exit_reason: None,
                pnl: Quote::ZERO,
                return_pct: 0.0,
                scaled_out: None,
            }),
            Side::Sell => {
                let Some(t) = self.trades.last_mut().filter(|t| t.is_open()) else {
                    return;
                };
                let part = t.scaled_out;
                if closed.is_none() {
                    let sold = e.qty + part.map_or(Qty::ZERO, |p| p.qty);
                    if sold < t.qty {
                        t.scaled_out = Some(PartialExit {
                            time: e.time,
                            qty: e.qty,
                            price: e.price,
                            fee: e.fee,
                            reason: e.reason,
                        });
                        return;
                    }
                }
                t.exit_time = Some(e.time);
                t.exit_reason = Some(e.reason);
                // What was received is worked out only where it is read: a whole exit the
                // engine booked (the usual case) takes its price, fee and PnL as they are.
                match part {
                    None => {
                        t.exit_price = Some(e.price);
                        t.exit_fee = e.fee;
                        t.pnl = match closed {
                            Some(c) => c.pnl,
                            None => e.price * e.qty - e.fee - (t.entry_price * t.qty + t.entry_fee),
                        };
                    }
                    // A scale-out: the average price of both sells, their fees together.
                    Some(p) => {
                        let sold = e.qty + p.qty;
                        let received = e.price * e.qty + p.price * p.qty;
                        let fees = e.fee + p.fee;
                        t.exit_price = Some(Price(received.get() / sold.get()));
                        t.exit_fee = fees;
                        t.pnl = match closed {
                            Some(c) => c.pnl,
                            None => received - fees - (t.entry_price * t.qty + t.entry_fee),
                        };
                    }
                }
                t.return_pct = return_pct(t);
                self.closed.push(t);
            }
        }
    }

    /// The records (the last one, if still open, marked at `last_close`) and the closed ones'
    /// statistics.
    fn finish(mut self, last_close: Price) -> (Vec<TradeRecord>, ClosedStats) {
        if let Some(t) = self.trades.last_mut().filter(|t| t.is_open()) {
            // Marked at the last close, less what a scale-out's part already brought in.
            let held = t.qty - t.scaled_out.map_or(Qty::ZERO, |p| p.qty);
            let sold = t
                .scaled_out
                .map_or(Quote::ZERO, |p| p.price * p.qty - p.fee);
            t.pnl = sold + last_close * held - (t.entry_price * t.qty + t.entry_fee);
            t.return_pct = return_pct(t);
        }
        (self.trades, self.closed)
    }
}

/// A round trip's PnL over its entry cost (fees included), in percent: a statistic, so in f64.
pub(crate) fn return_pct(t: &TradeRecord) -> f64 {
    let cost = t.entry_price.to_f64() * t.qty.to_f64() + t.entry_fee.to_f64();
    if cost == 0.0 {
        0.0
    } else {
        t.pnl.to_f64() / cost * 100.0
    }
}

/// Called every `PROGRESS_EVERY` candles with (done, total).
pub const PROGRESS_EVERY: usize = 4096;

/// The backtest runner (the seed's name for it).
pub struct BacktestService;

impl BacktestService {
    /// Run `engine` over `candles` (oldest first). `cancel` is polled every `PROGRESS_EVERY`
    /// candles; `progress` is told how far the run is.
    pub fn run<S: Strategy + ?Sized>(
        config: &BacktestConfig,
        engine: Engine<S>,
        candles: &[Candle],
        columns: &CandleColumns,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<BacktestResult, BacktestError> {
        Self::run_from(config, engine, candles, columns, 0, cancel, progress)
    }

    /// [`run_from`](Self::run_from) for a built-in strategy, with the loop compiled for the
    /// strategy's concrete type (see [`Engine::specialise`]): the same code, without a
    /// per-candle dispatch.
    pub fn run_builtin(
        config: &BacktestConfig,
        engine: Engine<BuiltinStrategy>,
        candles: &[Candle],
        columns: &CandleColumns,
        trade_from: usize,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<BacktestResult, BacktestError> {
        struct RunFrom<'a, 'p> {
            config: &'a BacktestConfig,
            candles: &'a [Candle],
            columns: &'a CandleColumns,
            trade_from: usize,
            cancel: &'a AtomicBool,
            progress: &'a mut (dyn FnMut(usize, usize) + 'p),
        }
        impl SpecialisedRun<Result<BacktestResult, BacktestError>> for RunFrom<'_, '_> {
            fn run<T: Strategy>(self, engine: Engine<T>) -> Result<BacktestResult, BacktestError> {
                BacktestService::run_from(
                    self.config,
                    engine,
                    self.candles,
                    self.columns,
                    self.trade_from,
                    self.cancel,
                    self.progress,
                )
            }
        }
        engine.specialise(RunFrom {
            config,
            candles,
            columns,
            trade_from,
            cancel,
            progress,
        })
    }

    /// Like [`run`](Self::run), but the candles before `trade_from` only warm the strategy up:
    /// it is shown them (so its indicators start primed, as a live bot's would with history)
    /// while nothing trades and nothing is measured. Equity, trades and metrics cover
    /// `candles[trade_from..]`. Walk-forward test windows run this way, warmed on their
    /// training window.
    ///
    /// A cancelled run ends with [`BacktestError::Cancelled`] carrying the result of the candles
    /// it got through.
    pub fn run_from<S: Strategy + ?Sized>(
        config: &BacktestConfig,
        engine: Engine<S>,
        candles: &[Candle],
        columns: &CandleColumns,
        trade_from: usize,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<BacktestResult, BacktestError> {
        // Room for every point up front, from the columns (the decimal candles may be absent).
        let kept = KeptCurve::new(
            config.initial_cash.to_f64(),
            columns.len().saturating_sub(trade_from),
        );
        Self::simulate(
            config, engine, candles, columns, trade_from, cancel, progress, kept,
        )
    }

    /// The metrics [`run_builtin`](Self::run_builtin) would give, without keeping the equity
    /// curve: its statistics are taken as each point is marked (the same arithmetic in the same
    /// order, so the same metrics to the last bit). A sweep wants nothing else of its runs.
    pub fn run_builtin_metrics(
        config: &BacktestConfig,
        engine: Engine<BuiltinStrategy>,
        candles: &[Candle],
        columns: &CandleColumns,
        cancel: &AtomicBool,
    ) -> Result<Metrics, BacktestError> {
        let stats = EquityStats::new(config.initial_cash.to_f64());
        Self::run_builtin_on(config, engine, candles, columns, cancel, stats).map(|r| r.metrics)
    }

    /// The total return in percent that [`run_builtin_metrics`](Self::run_builtin_metrics)'s
    /// metrics would give, bit for bit, without the per-candle statistics: only the last
    /// equity point is kept (the same arithmetic as the full run's last point). A sweep ranked
    /// by return needs nothing else of most of its runs.
    pub fn run_builtin_total_return(
        config: &BacktestConfig,
        engine: Engine<BuiltinStrategy>,
        candles: &[Candle],
        columns: &CandleColumns,
        cancel: &AtomicBool,
    ) -> Result<f64, BacktestError> {
        let last = LastPoint::new(config.initial_cash.to_f64());
        Self::run_builtin_on(config, engine, candles, columns, cancel, last)
            .map(|r| r.metrics.total_return_pct)
    }

    /// A built-in strategy's run from the first candle, specialised to its strategy type,
    /// marking its equity on `curve` only (no progress).
    fn run_builtin_on<C: Curve>(
        config: &BacktestConfig,
        engine: Engine<BuiltinStrategy>,
        candles: &[Candle],
        columns: &CandleColumns,
        cancel: &AtomicBool,
        curve: C,
    ) -> Result<BacktestResult, BacktestError> {
        struct OnCurve<'a, C> {
            config: &'a BacktestConfig,
            candles: &'a [Candle],
            columns: &'a CandleColumns,
            cancel: &'a AtomicBool,
            curve: C,
        }
        impl<C: Curve> SpecialisedRun<Result<BacktestResult, BacktestError>> for OnCurve<'_, C> {
            fn run<T: Strategy>(self, engine: Engine<T>) -> Result<BacktestResult, BacktestError> {
                BacktestService::simulate(
                    self.config,
                    engine,
                    self.candles,
                    self.columns,
                    0,
                    self.cancel,
                    &mut |_, _| {},
                    self.curve,
                )
            }
        }
        engine.specialise(OnCurve {
            config,
            candles,
            columns,
            cancel,
            curve,
        })
    }

    /// The run itself, marking its equity on `curve` (the result of a run that keeps only the
    /// statistics, an [`EquityStats`] curve, has an empty `equity`).
    #[allow(clippy::too_many_arguments)]
    fn simulate<S: Strategy + ?Sized, C: Curve>(
        config: &BacktestConfig,
        mut engine: Engine<S>,
        candles: &[Candle],
        columns: &CandleColumns,
        trade_from: usize,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
        mut curve: C,
    ) -> Result<BacktestResult, BacktestError> {
        let n = columns.len();
        if trade_from >= n {
            return Err(BacktestError::NoCandles);
        }
        // The decimal candles are one per row, or none when the columns hold them exactly.
        assert!(
            candles.len() == n || (candles.is_empty() && columns.holds_exact_candles()),
            "{} candles for {n} rows of columns that do not hold them exactly",
            candles.len()
        );
        let candle_at = |i: usize| History::up_to(candles, columns, i).current();
        // The order check reads the f64 view's time column: touching the wide decimal candles
        // for one field would stream ~90 bytes a candle through the cache. One pass up front
        // keeps the check out of the simulation loop, and tells whether the times are evenly
        // spaced (kept as first time and step).
        let times = &columns.open_time[..n];
        let step = match columns.even_time_step(n) {
            // Known evenly spaced and rising: in order, without reading the 8 bytes a candle.
            Some(step) if step > 0 => Some(step),
            _ => check_order(times)?,
        };
        let mut desk = Desk {
            exchange: SimulatedExchange::new(
                config.fill_model,
                config.costs,
                config.filters.clone(),
            ),
            ledger: TradeLedger::default(),
            rejections: Vec::new(),
        };
        let mut in_market = 0usize;
        let closes = &columns.close[..n];
        let opens = &columns.open[..n];
        // Only a fill at an open reads the open column (see below).
        let fills_at_open = config.fill_model == FillModel::NextOpen;
        let mut end = n;

        // Chunks of PROGRESS_EVERY candles: the cancel flag and the progress callback are
        // consulted between chunks, so the per-candle loop is only the simulation.
        let mut chunk_start = 0;
        while chunk_start < n {
            if cancel.load(Ordering::Relaxed) {
                end = chunk_start;
                break;
            }
            progress(chunk_start, n);
            let chunk_end = (chunk_start + PROGRESS_EVERY).min(n);
            let warm_end = trade_from.clamp(chunk_start, chunk_end);
            for i in chunk_start..warm_end {
                engine.observe(History::up_to(candles, columns, i));
            }
            let mut i = warm_end;
            while i < chunk_end {
                // Quiet candles: nothing is queued, nothing protects the position candle by
                // candle, the engine counts no time exit and the strategy says it signals
                // nothing before `quiet_end`. Those candles only mark the equity (the position
                // and cash cannot change), in one tight pass.
                if !desk.exchange.has_pending()
                    && (engine.is_flat()
                        || !(desk.exchange.has_brackets() || desk.exchange.has_break_even()))
                    && engine.may_skip_quiet()
                {
                    let quiet_end =
                        engine.skip_quiet(History::up_to(candles, columns, chunk_end - 1), i);
                    if quiet_end > i {
                        if !engine.is_flat() {
                            in_market += quiet_end - i;
                        }
                        let (cash, qty) = engine.equity_terms_f64();
                        curve.mark_stretch(cash, qty, &closes[i..quiet_end]);
                        i = quiet_end;
                        // The strategy may signal on the candle that ended the stretch: it goes
                        // the general way below, without asking the strategy a second time
                        // whether it is quiet there (it is not, and asking moves nothing).
                        if i == chunk_end {
                            continue;
                        }
                    }
                }
                // Events (a queued order filling, a new order) are handled out of line, where
                // their prices and times are read exactly from the columns when they can be
                // (see `Desk`). The decimal candle is read here only for the brackets, on every
                // candle of a bracketed position, in order (which the prefetcher follows).
                //
                // Under next-open fills the open column is touched on every candle although
                // only a fill reads it: a sequential read the prefetcher runs ahead of, so the
                // (rare, scattered) fills find their open in the cache instead of missing it
                // each time.
                if fills_at_open {
                    std::hint::black_box(opens[i]);
                }
                if desk.exchange.has_pending() {
                    desk.fill_queued(&mut engine, candles, columns, i);
                }
                if !engine.is_flat()
                    && desk.exchange.has_brackets()
                    && let Some(exec) = desk.exchange.check_brackets(&candle_at(i))
                {
                    desk.book(&exec, &mut engine);
                    // A scale-out's part and its trailed rest may both fill in one candle.
                    if let Some(second) = desk.exchange.take_second_exit() {
                        desk.book(&second, &mut engine);
                    }
                }
                // The candle closed: a break-even move applies from the next one (live trading
                // moves the exchange stop at the monitor pass after the close).
                if !engine.is_flat() && desk.exchange.has_break_even() {
                    desk.exchange.on_close(candle_at(i).close);
                }
                let was_in_market = !engine.is_flat();
                if let Some(intent) = engine.on_candle(History::up_to(candles, columns, i)) {
                    desk.place(intent, &mut engine, candles, columns, i);
                }
                in_market += usize::from(was_in_market || !engine.is_flat());
                let (cash, qty) = engine.equity_terms_f64();
                curve.mark(cash, qty, closes[i]);
                i += 1;
            }
            chunk_start = chunk_end;
        }
        if end == n {
            progress(n, n);
        }
        // An order still queued after the last candle never fills: there is no next open.
        if desk.exchange.has_pending() {
            engine.on_rejected();
        }
        if end <= trade_from {
            return Err(BacktestError::Cancelled {
                done: end,
                total: n,
                partial: None,
            });
        }

        let (first, last) = (candle_at(trade_from), candle_at(end - 1));
        let Desk {
            ledger,
            mut rejections,
            ..
        } = desk;
        // Entry signals a cooldown or lock after stops refused, among the exchange's refusals.
        if !engine.refused_entries().is_empty() {
            rejections.extend(
                engine
                    .refused_entries()
                    .iter()
                    .map(|(at, why)| (*at, Rejection::Risk(why.clone()))),
            );
            rejections.sort_by_key(|(at, _)| *at);
        }
        let (trades, closed) = ledger.finish(last.close);
        let times = match step {
            Some(step) if end - trade_from >= 2 => {
                Times::regular(times[trade_from], step, end - trade_from)
            }
            _ => Times::of(&times[trade_from..end]),
        };
        let (equity, stats) = curve.finish();
        let metrics = metrics::summarise(
            stats,
            &closed,
            &metrics::MetricsInput {
                interval: config.interval,
                initial_equity: config.initial_cash.to_f64(),
                equity: &[],
                times: &times,
                trades: &trades,
                candles_in_market: in_market,
                fees_paid: engine.fees_paid(),
                first_open: first.open.to_f64(),
                last_close: last.close.to_f64(),
            },
        );
        let result = BacktestResult {
            strategy: engine.strategy_name().to_string(),
            sizer: engine.sizer_name().to_string(),
            final_equity: engine.equity_at(last.close),
            metrics,
            trades,
            equity,
            times,
            rejections,
        };
        if end < n {
            return Err(BacktestError::Cancelled {
                done: end,
                total: n,
                partial: Some(Box::new(result)),
            });
        }
        Ok(result)
    }
}

/// `Err` at the first open time not after the one before it; else the step between open times
/// when they are evenly spaced (`None` when not, or fewer than two).
fn check_order(times: &[TimestampMs]) -> Result<Option<i64>, BacktestError> {
    let [first, second, ..] = times else {
        return Ok(None);
    };
    let step = second.wrapping_sub(*first);
    // Branch-free over the column (it vectorises); the first offender is looked for only when
    // there is one.
    let (mut unordered, mut uneven) = (false, false);
    for w in times.windows(2) {
        unordered |= w[1] <= w[0];
        uneven |= w[1].wrapping_sub(w[0]) != step;
    }
    if unordered && let Some(w) = times.windows(2).find(|w| w[1] <= w[0]) {
        return Err(BacktestError::Unordered { at: w[1] });
    }
    Ok((!uneven).then_some(step))
}

/// The simulated exchange and what a run keeps of its orders: the round trips and the refusals.
struct Desk {
    exchange: SimulatedExchange,
    ledger: TradeLedger,
    rejections: Vec<(TimestampMs, Rejection)>,
}

/// Once per order, not per candle: kept out of the candle loop (`cold`, never inlined) so the
/// loop keeps its few live values in registers.
impl Desk {
    /// Candle `i` opens: the queued order fills at its open (exact, from the columns when they
    /// can give it, else from the candle).
    #[cold]
    #[inline(never)]
    fn fill_queued<S: Strategy + ?Sized>(
        &mut self,
        engine: &mut Engine<S>,
        candles: &[Candle],
        columns: &CandleColumns,
        i: usize,
    ) {
        let history = History::up_to(candles, columns, i);
        let time = history.open_time();
        // A resting limit entry fills (or times out) inside the candle, not at its open.
        if self.exchange.has_resting_entry() {
            if let Some(outcome) = self.exchange.on_resting_candle_filled(&history.current()) {
                self.settle(outcome, engine, time);
            }
            return;
        }
        if let Some(outcome) = self
            .exchange
            .fill_pending_filled(history.open_price(), time)
        {
            self.settle(outcome, engine, time);
        }
    }

    /// The engine sent an order at candle `i`'s close.
    #[cold]
    #[inline(never)]
    fn place<S: Strategy + ?Sized>(
        &mut self,
        intent: OrderIntent,
        engine: &mut Engine<S>,
        candles: &[Candle],
        columns: &CandleColumns,
        i: usize,
    ) {
        let history = History::up_to(candles, columns, i);
        let time = intent.decided_at;
        if let Some(outcome) = self
            .exchange
            .submit_filled(intent, || history.close_price(), time)
        {
            self.settle(outcome, engine, time);
        }
    }

    /// An order's outcome reaches the engine and the ledger.
    fn settle<S: Strategy + ?Sized>(
        &mut self,
        outcome: Outcome,
        engine: &mut Engine<S>,
        time: TimestampMs,
    ) {
        match outcome {
            Ok(filled) => self.book_filled(&filled.exec, filled.notional, engine),
            Err(why) => {
                engine.on_rejected();
                self.rejections.push((time, why));
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn book<S: Strategy + ?Sized>(&mut self, exec: &Execution, engine: &mut Engine<S>) {
        self.book_filled(exec, exec.price * exec.qty, engine);
    }

    /// [`book`](Self::book) an execution whose notional (`exec.price * exec.qty`) the fill
    /// worked out already.
    fn book_filled<S: Strategy + ?Sized>(
        &mut self,
        exec: &Execution,
        notional: Quote,
        engine: &mut Engine<S>,
    ) {
        let closed = engine.on_fill(exec, notional);
        self.ledger.record(exec, closed);
        // An entry whose scale-out would have been refused is kept whole: say so.
        if let Some(why) = self.exchange.take_unsplit() {
            self.rejections
                .push((exec.time, Rejection::NotScaledOut(why)));
        }
    }
}

/// Where a stored backtest run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    /// Someone (maybe another process) asked it to stop; the run ends `Cancelled` at its next
    /// poll.
    CancelRequested,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::CancelRequested => "cancel_requested",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::CancelRequested,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("unknown backtest status {s:?}"))
    }
}
