//! The one engine: strategy -> sizing -> order intents, fed closed candles one at a time and told
//! about fills afterwards. A backtest drives it with historical candles, live trading with the
//! candles the exchange closes; neither path has code of its own between a candle and an intent.

use super::strategies::BuiltinStrategy;
use crate::domain::market::candle::{Candle, CandleColumns, TimestampMs};
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::{ClosedTrade, RiskConfig, stop_protection};
use crate::domain::trading::order::{Side, TrailingDelta};
use crate::domain::trading::scale_out::ScaleOutShare;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The closed candles a strategy may look at: every accessor returns the slice `[..=current]`,
/// so there is nothing after the current candle to read, by construction rather than by
/// convention. (Three words, sliced on access: building it for every candle costs nothing.)
///
/// The exact f64 columns are the run's data; the decimal candles are needed beside them only
/// when the columns cannot give them back exactly ([`CandleColumns::holds_exact_candles`]): a
/// run over exact columns passes no candles, and a candle is then rebuilt, exactly, from its
/// row when one is asked for (its decimals normalised, as parsed and stored candles are: a run
/// from columns built of candles with trailing zeros would print its prices without them).
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    /// Empty when the columns hold the candles exactly; else every candle, one per row.
    candles: &'a [Candle],
    columns: &'a CandleColumns,
    /// One past the current candle.
    end: usize,
}

impl<'a> History<'a> {
    /// The history up to and including `current`. `candles` may be empty when `columns`
    /// [holds exact candles](CandleColumns::holds_exact_candles); otherwise it is one candle per
    /// row. Reading it panics if `current` is out of range or neither gives the candle back
    /// (both are programming errors of the driver): each accessor slices the data, so nothing
    /// past it can be read.
    #[inline]
    pub fn up_to(candles: &'a [Candle], columns: &'a CandleColumns, current: usize) -> Self {
        let end = current + 1;
        History {
            candles,
            columns,
            end,
        }
    }

    /// The history up to and including `current`, of a run held as exact columns alone.
    #[inline]
    pub fn of_columns(columns: &'a CandleColumns, current: usize) -> Self {
        Self::up_to(&[], columns, current)
    }

    /// Number of closed candles visible (the current one included).
    #[inline]
    pub fn len(&self) -> usize {
        self.end
    }

    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// The candle that just closed.
    #[inline]
    pub fn current(&self) -> Candle {
        self.candle(self.end - 1)
    }

    /// Candle `i` (at most the current one): the decimal candle when the run holds them, else
    /// rebuilt exactly from the columns.
    #[inline]
    pub fn candle(&self, i: usize) -> Candle {
        assert!(i < self.end, "candle {i} is after the current one");
        match self.candles.get(i) {
            Some(c) => c.clone(),
            None => self.rebuilt(i),
        }
    }

    /// Candle `i` from the columns, out of line: the candle loop calls [`candle`](Self::candle)
    /// only on rare paths and stays small without the rebuild inlined into it.
    #[cold]
    #[inline(never)]
    fn rebuilt(&self, i: usize) -> Candle {
        self.columns.exact_candle(i).unwrap_or_else(|| {
            panic!("candle {i}: no decimal candles and the columns do not hold it exactly")
        })
    }

    /// Every candle so far, oldest first: borrowed when the run holds the decimal candles,
    /// rebuilt from the columns otherwise (see [`recent`](Self::recent) for a window).
    pub fn candles(&self) -> Cow<'a, [Candle]> {
        self.recent(self.end)
    }

    /// The last `count` candles (fewer at the start), oldest first, the current one last.
    pub fn recent(&self, count: usize) -> Cow<'a, [Candle]> {
        let from = self.end.saturating_sub(count);
        if self.candles.is_empty() && self.end > 0 {
            Cow::Owned((from..self.end).map(|i| self.candle(i)).collect())
        } else {
            Cow::Borrowed(&self.candles[from..self.end])
        }
    }
    pub fn open_times(&self) -> &'a [TimestampMs] {
        &self.columns.open_time[..self.end]
    }
    pub fn opens(&self) -> &'a [f64] {
        &self.columns.open[..self.end]
    }
    pub fn highs(&self) -> &'a [f64] {
        &self.columns.high[..self.end]
    }
    pub fn lows(&self) -> &'a [f64] {
        &self.columns.low[..self.end]
    }
    pub fn closes(&self) -> &'a [f64] {
        &self.columns.close[..self.end]
    }
    pub fn volumes(&self) -> &'a [f64] {
        &self.columns.volume[..self.end]
    }

    /// The current close as f64 (for indicator updates).
    #[inline]
    pub fn close(&self) -> f64 {
        self.columns.close[self.end - 1]
    }

    /// The current close, exact. Read from the f64 column the run streams anyway when the
    /// columns know it to be exact ([`CandleColumns::exact_close`]), from the candle otherwise:
    /// the same decimal either way, without a cache miss on the wide candle.
    #[inline]
    pub fn close_price(&self) -> Price {
        let i = self.end - 1;
        self.columns
            .exact_close(i)
            .unwrap_or_else(|| self.candle(i).close)
    }

    /// The current candle's open, exact (see [`close_price`](Self::close_price)).
    #[inline]
    pub fn open_price(&self) -> Price {
        let i = self.end - 1;
        self.columns
            .exact_open(i)
            .unwrap_or_else(|| self.candle(i).open)
    }

    /// The current candle's open time.
    #[inline]
    pub fn open_time(&self) -> TimestampMs {
        self.columns.open_time_at(self.end - 1)
    }
}

/// What the engine holds in the market, as booked from fills. Long-only for now: `qty` is never
/// negative; a short would be a negative quantity with the same fields.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Position {
    pub qty: Qty,
    /// Average entry price (fees excluded).
    pub entry_price: Price,
    pub entry_time: TimestampMs,
}

impl Position {
    pub fn is_flat(&self) -> bool {
        self.qty.is_zero()
    }
}

/// Everything a strategy is shown for one decision.
#[derive(Debug, Clone, Copy)]
pub struct StrategyContext<'a> {
    pub history: History<'a>,
    pub position: Position,
    pub cash: Quote,
}

/// What a strategy wants; the engine turns it into orders (or ignores it when it makes no sense,
/// e.g. an exit while flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    EnterLong,
    ExitLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub action: Action,
    /// Protective stop for the position this signal opens.
    pub stop_loss: Option<Price>,
    pub take_profit: Option<Price>,
    /// Protect the position with a trailing stop this many BIPS under the highest price since
    /// the entry (Binance's `trailingDelta`) instead of a fixed stop.
    pub trailing: Option<TrailingDelta>,
    /// Move the stop to break-even (entry + fees) once a close reaches entry + this many R
    /// (R: entry − the stop the position opened with).
    pub break_even_r: Option<Decimal>,
    /// Sell at the close of the Nth candle after the entry, if nothing sold it before.
    pub time_exit_candles: Option<u32>,
    /// Enter with a resting limit buy under the close instead of a market order.
    pub limit_entry: Option<LimitEntry>,
    /// Sell this share of the position at `take_profit` and keep the rest (see
    /// [`crate::domain::trading::scale_out`]).
    pub scale_out: Option<ScaleOutShare>,
}

/// An entry as a resting limit buy (issue #19): cheaper than a market order (maker fee, no
/// spread) at the cost of missing the trades the price never comes back for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitEntry {
    /// The limit is this many basis points under the close the entry is decided at.
    pub offset_bps: u32,
    /// Binance's `LIMIT_MAKER`: refused rather than filled as a taker.
    pub post_only: bool,
    /// Cancelled when the candles after the decision have not filled it by the close of the
    /// Nth (the order does not chase the price).
    pub timeout_candles: u32,
}

/// A resting limit order as sent: its price (the exchange rounds it down to the tick) and how
/// long it may rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOrder {
    pub price: Price,
    pub post_only: bool,
    pub timeout_candles: u32,
}

impl Signal {
    pub fn enter_long() -> Self {
        Signal {
            action: Action::EnterLong,
            stop_loss: None,
            take_profit: None,
            trailing: None,
            break_even_r: None,
            time_exit_candles: None,
            limit_entry: None,
            scale_out: None,
        }
    }
    pub fn exit_long() -> Self {
        Signal {
            action: Action::ExitLong,
            stop_loss: None,
            take_profit: None,
            trailing: None,
            break_even_r: None,
            time_exit_candles: None,
            limit_entry: None,
            scale_out: None,
        }
    }
    pub fn with_limit_entry(mut self, entry: LimitEntry) -> Self {
        self.limit_entry = Some(entry);
        self
    }
    pub fn with_scale_out(mut self, share: ScaleOutShare) -> Self {
        self.scale_out = Some(share);
        self
    }
    pub fn with_time_exit(mut self, candles: u32) -> Self {
        self.time_exit_candles = Some(candles);
        self
    }
    pub fn with_break_even(mut self, r_multiple: Decimal) -> Self {
        self.break_even_r = Some(r_multiple);
        self
    }
    pub fn with_trailing(mut self, delta: TrailingDelta) -> Self {
        self.trailing = Some(delta);
        self
    }
    pub fn with_stop_loss(mut self, price: Price) -> Self {
        self.stop_loss = Some(price);
        self
    }
    pub fn with_take_profit(mut self, price: Price) -> Self {
        self.take_profit = Some(price);
        self
    }
}

/// A trading strategy, shared by backtests and live trading. Object safe, so a rule-based
/// strategy and an LLM-backed decision engine plug in the same way (`Box<dyn Strategy>`).
pub trait Strategy: Send {
    fn name(&self) -> &str;
    /// Called once per closed candle, in time order, with only the candles closed so far.
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal>;

    /// The candles from `from` to the end of `history` on which this strategy would signal
    /// nothing, whatever the position: the first of them that may bring a signal (or
    /// `history.len()`), with the strategy left as if [`on_candle`](Self::on_candle) had been
    /// shown each candle before it. Each candle is judged on the candles up to it alone, as
    /// `on_candle` judges it. The engine marks such a quiet stretch's equity without asking the
    /// strategy candle by candle. The default judges nothing quiet.
    fn quiet_until(&mut self, history: History<'_>, from: usize) -> usize {
        let _ = history;
        from
    }
}

/// How much an order is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderAmount {
    /// An exact base quantity (rounded down to the lot step when filled).
    Qty(Qty),
    /// Spend at most this much quote, fees included (Binance's `quoteOrderQty`): the quantity is
    /// worked out at the fill price, so a next-open fill is sized at the price it really gets.
    QuoteBudget(Quote),
}

/// A market order the engine wants placed, with the brackets to attach once it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIntent {
    pub side: Side,
    pub amount: OrderAmount,
    pub stop_loss: Option<Price>,
    pub take_profit: Option<Price>,
    /// Protect with a trailing stop instead of `stop_loss` (see [`Signal::trailing`]).
    pub trailing: Option<TrailingDelta>,
    /// See [`Signal::break_even_r`].
    pub break_even_r: Option<Decimal>,
    /// A resting limit buy instead of a market order (entries only; see [`Signal::limit_entry`]).
    pub limit: Option<LimitOrder>,
    /// See [`Signal::scale_out`].
    pub scale_out: Option<ScaleOutShare>,
    /// Why a sell is sent ([`ExitReason::Signal`] for a strategy's exit).
    pub reason: ExitReason,
    /// Open time of the candle whose close produced the intent.
    pub decided_at: TimestampMs,
}

impl OrderIntent {
    /// A plain market order: no brackets, no limit, no scale-out.
    pub fn market(
        side: Side,
        amount: OrderAmount,
        reason: ExitReason,
        decided_at: TimestampMs,
    ) -> Self {
        OrderIntent {
            side,
            amount,
            stop_loss: None,
            take_profit: None,
            trailing: None,
            break_even_r: None,
            limit: None,
            scale_out: None,
            reason,
            decided_at,
        }
    }
}

/// Why a position changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    Signal,
    StopLoss,
    TakeProfit,
    /// The trailing stop triggered.
    TrailingStop,
    /// Held for the strategy's `time_exit_candles`.
    TimeExit,
    /// Sold at the end of a walk-forward test window, so the next window starts flat.
    WindowEnd,
}

/// One execution reported back to the engine (by the simulated exchange or the live adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub side: Side,
    pub qty: Qty,
    pub price: Price,
    pub fee: Quote,
    pub time: TimestampMs,
    pub reason: ExitReason,
}

/// Inputs a sizer may use.
#[derive(Debug, Clone, Copy)]
pub struct SizingInput<'a> {
    pub cash: Quote,
    /// Cash plus the position marked at the current close.
    pub equity: Quote,
    /// Reference price: the close of the signal candle.
    pub price: Price,
    pub stop_loss: Option<Price>,
    /// Taker fee rate the engine expects to pay (for sizers that reserve it).
    pub fee_rate: Decimal,
    pub history: &'a History<'a>,
    /// Round trips closed so far, oldest first (Kelly sizing learns from them).
    pub closed_trades: &'a [ClosedTrade],
}

/// A sizer's answer: how much, and the stop to protect it with (a sizer may set one, e.g. ATR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeDecision {
    pub amount: OrderAmount,
    pub stop_loss: Option<Price>,
}

/// Decides how big an entry is. Risk-based sizers (fixed risk, Kelly, ATR) implement it too.
pub trait Sizer: Send + Sync {
    fn name(&self) -> &str;
    /// `None` means "do not trade" (e.g. no cash, or the risk is too large).
    fn size(&self, input: &SizingInput<'_>) -> Option<SizeDecision>;

    /// This sizer decides exactly as [`AllIn`] does, from the cash and the signal's stop alone.
    /// The engine, told so once when it is built, then sizes an entry itself without marking the
    /// equity for an input nobody reads. Default: `false`.
    fn is_all_in(&self) -> bool {
        false
    }
}

/// Spend all the cash (fees included).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllIn;

impl Sizer for AllIn {
    fn name(&self) -> &str {
        "all-in"
    }
    fn size(&self, input: &SizingInput<'_>) -> Option<SizeDecision> {
        AllIn::decide(input.cash, input.stop_loss)
    }
    fn is_all_in(&self) -> bool {
        true
    }
}

impl AllIn {
    /// The whole cash as a quote budget, with the signal's stop: all an all-in entry reads.
    #[inline]
    fn decide(cash: Quote, stop_loss: Option<Price>) -> Option<SizeDecision> {
        cash.is_positive().then_some(SizeDecision {
            amount: OrderAmount::QuoteBudget(cash),
            stop_loss,
        })
    }
}

/// Spend a fixed fraction of equity (capped at the cash available).
#[derive(Debug, Clone, Copy)]
pub struct FixedFraction {
    pub fraction: Decimal,
}

impl Sizer for FixedFraction {
    fn name(&self) -> &str {
        "fixed-fraction"
    }
    fn size(&self, input: &SizingInput<'_>) -> Option<SizeDecision> {
        let budget = (input.equity * self.fraction).min(input.cash);
        budget.is_positive().then_some(SizeDecision {
            amount: OrderAmount::QuoteBudget(budget),
            stop_loss: input.stop_loss,
        })
    }
}

/// The strategy -> sizing -> order path, with the account booked from reported executions.
///
/// Generic over the strategy so a run over a built-in strategy compiles to one loop with the
/// strategy's step inlined; `Engine` alone (`Engine<dyn Strategy>`) takes any boxed strategy,
/// e.g. an LLM-backed one.
pub struct Engine<S: Strategy + ?Sized = dyn Strategy> {
    strategy: Box<S>,
    state: EngineState,
}

/// Everything the engine keeps besides its strategy: the sizer and the account booked from
/// executions.
struct EngineState {
    sizer: Box<dyn Sizer>,
    /// The sizer [is all-in](Sizer::is_all_in): entries are sized without a `SizingInput`.
    all_in: bool,
    cash: Quote,
    position: Position,
    /// Money put into the open position, fees included, for its round-trip PnL.
    position_cost: Quote,
    closed_trades: Vec<ClosedTrade>,
    fee_rate: Decimal,
    /// An order is out and not yet filled or rejected: do not send another.
    in_flight: bool,
    fees_paid: Quote,
    /// f64 shadows of cash and quantity, refreshed on each execution, so marking equity on every
    /// candle costs one multiply instead of a decimal conversion.
    cash_f64: f64,
    qty_f64: f64,
    /// `position.qty` is zero (kept beside it: asked several times per candle).
    flat: bool,
    /// The time exit of the entry in flight, then of the open position.
    time_exit: Option<u32>,
    /// Candles closed since the position opened (its entry candle not counted).
    held: u32,
    /// The cooldown and lock after stops (`risk::stop_protection`) and the candle length, when
    /// the run applies them; boxed, as most runs do not.
    stop_rules: Option<Box<(RiskConfig, i64)>>,
    /// Times of the stop-loss exits so far (kept only when `stop_rules` is set).
    stops: Vec<TimestampMs>,
    /// Entry signals refused by a cooldown or a lock, each with the reason in plain words.
    refused_entries: Vec<(TimestampMs, String)>,
}

/// A run generic over the strategy type, handed the engine once its built-in strategy's concrete
/// type is known (see [`Engine::specialise`]).
pub trait SpecialisedRun<R> {
    fn run<T: Strategy>(self, engine: Engine<T>) -> R;
}

impl Engine<BuiltinStrategy> {
    /// Hand `run` this engine with its built-in strategy unwrapped to the concrete type: the
    /// variant is matched once per run instead of once per candle, and the run's loop is
    /// compiled for that one strategy (its step inlined into the loop).
    pub fn specialise<R>(self, run: impl SpecialisedRun<R>) -> R {
        let Engine { strategy, state } = self;
        macro_rules! with {
            ($s:expr) => {
                run.run(Engine {
                    strategy: Box::new($s),
                    state,
                })
            };
        }
        match *strategy {
            BuiltinStrategy::SmaCross(s) => with!(s),
            BuiltinStrategy::RsiReversion(s) => with!(s),
            BuiltinStrategy::Macd(s) => with!(s),
            BuiltinStrategy::RsiMacd(s) => with!(s),
        }
    }
}

impl<S: Strategy + ?Sized> Engine<S> {
    pub fn new(strategy: Box<S>, sizer: Box<dyn Sizer>, cash: Quote) -> Self {
        Engine {
            strategy,
            state: EngineState {
                all_in: sizer.is_all_in(),
                sizer,
                cash,
                position: Position::default(),
                position_cost: Quote::ZERO,
                closed_trades: Vec::new(),
                fee_rate: Decimal::new(1, 3),
                in_flight: false,
                fees_paid: Quote::ZERO,
                cash_f64: cash.to_f64(),
                qty_f64: 0.0,
                flat: true,
                time_exit: None,
                held: 0,
                stop_rules: None,
                stops: Vec::new(),
                refused_entries: Vec::new(),
            },
        }
    }

    /// Refuse entries during a cooldown or a lock after stop-loss exits, by the same rule live
    /// trading applies (`risk::stop_protection`, with `config`'s
    /// `cooldown_candles_after_stop` and `stop_lock_*`); `candle_ms` is the run's interval.
    /// An entry signal is judged at its candle's close, as a live decision is.
    pub fn with_stop_protections(mut self, config: &RiskConfig, candle_ms: i64) -> Self {
        let on = config.cooldown_candles_after_stop > 0 || config.stop_lock_count > 0;
        self.state.stop_rules = on.then(|| Box::new((config.clone(), candle_ms)));
        self
    }

    /// Entry signals a cooldown or lock refused: the signal candle's open time and why.
    pub fn refused_entries(&self) -> &[(TimestampMs, String)] {
        &self.state.refused_entries
    }

    /// The taker fee rate sizers should reserve (default 0.001).
    pub fn with_fee_rate(mut self, fee_rate: Decimal) -> Self {
        self.state.fee_rate = fee_rate;
        self
    }

    pub fn closed_trades(&self) -> &[ClosedTrade] {
        &self.state.closed_trades
    }

    pub fn strategy_name(&self) -> &str {
        self.strategy.name()
    }
    pub fn sizer_name(&self) -> &str {
        self.state.sizer.name()
    }
    pub fn cash(&self) -> Quote {
        self.state.cash
    }
    pub fn position(&self) -> Position {
        self.state.position
    }
    pub fn fees_paid(&self) -> Quote {
        self.state.fees_paid
    }

    /// Exact equity at `price`.
    pub fn equity_at(&self, price: Price) -> Quote {
        self.state.cash + price * self.state.position.qty
    }

    /// Equity at `price` for statistics (f64).
    #[inline]
    pub fn equity_f64(&self, price: f64) -> f64 {
        self.state.cash_f64 + self.state.qty_f64 * price
    }

    #[inline]
    pub fn is_flat(&self) -> bool {
        self.state.flat
    }

    /// The engine would do nothing on a candle the strategy is quiet on: no order is out, and an
    /// open position has no time exit to count down.
    #[inline]
    pub fn may_skip_quiet(&self) -> bool {
        !self.state.in_flight && (self.state.flat || self.state.time_exit.is_none())
    }

    /// Candles `from..history.len()` the strategy signals nothing on (see
    /// [`Strategy::quiet_until`]): the first that may bring a signal. The engine is left as if
    /// it had been shown the quiet candles one by one (the position held that much longer).
    /// Only for an engine that [`may_skip_quiet`](Self::may_skip_quiet).
    #[inline]
    pub fn skip_quiet(&mut self, history: History<'_>, from: usize) -> usize {
        let end = self
            .strategy
            .quiet_until(history, from)
            .clamp(from, history.len());
        if !self.state.flat {
            self.state.held = self.state.held.saturating_add((end - from) as u32);
        }
        end
    }

    /// Cash and position size as the f64 the equity curve is marked with:
    /// `cash + qty * close` ([`equity_f64`](Self::equity_f64)).
    #[inline]
    pub fn equity_terms_f64(&self) -> (f64, f64) {
        (self.state.cash_f64, self.state.qty_f64)
    }

    /// Show the strategy a closed candle without acting on what it says: warm-up before the
    /// candles a run trades on. The account and any order in flight are untouched.
    pub fn observe(&mut self, history: History<'_>) {
        let ctx = StrategyContext {
            history,
            position: self.state.position,
            cash: self.state.cash,
        };
        let _ignored = self.strategy.on_candle(&ctx);
    }

    /// A candle closed: ask the strategy, size its wish and return the order to place (one at
    /// most: nothing new is sent while an order is in flight).
    ///
    /// Inlined into the run's loop: passed to a call, the history goes through memory, and the
    /// strategy's context reads it back wider than it was written (a load stalled on the stores,
    /// on every candle that may signal).
    #[inline(always)]
    pub fn on_candle(&mut self, history: History<'_>) -> Option<OrderIntent> {
        let ctx = StrategyContext {
            history,
            position: self.state.position,
            cash: self.state.cash,
        };
        // The signal is lent, not moved, to the order: a move copies it wide from where the
        // strategy wrote it narrow (only its options' tags when they are empty), and each such
        // copy stalls its loads on those stores.
        let signal = self.strategy.on_candle(&ctx);
        if self.state.flat {
            return self.order_for(signal.as_ref()?, &history);
        }
        self.state.held += 1;
        if self.state.in_flight {
            return None;
        }
        match &signal {
            Some(s) if s.action == Action::ExitLong => self.order_for(s, &history),
            _ if self.state.time_exit.is_some_and(|n| self.state.held >= n) => {
                self.time_exit(&history)
            }
            Some(s) => self.order_for(s, &history),
            None => None,
        }
    }

    /// The position has been held for its time exit: sell it all.
    #[cold]
    #[inline(never)]
    fn time_exit(&mut self, history: &History<'_>) -> Option<OrderIntent> {
        self.state.in_flight = true;
        Some(OrderIntent::market(
            Side::Sell,
            OrderAmount::Qty(self.state.position.qty),
            ExitReason::TimeExit,
            history.open_time(),
        ))
    }

    /// Size a signal into an order (cold: most candles bring no signal).
    #[cold]
    #[inline(never)]
    fn order_for(&mut self, signal: &Signal, history: &History<'_>) -> Option<OrderIntent> {
        let decided_at = history.open_time();
        if self.state.in_flight {
            return None;
        }
        let intent = match signal.action {
            Action::EnterLong if self.state.position.is_flat() => {
                if let Some(rules) = &self.state.stop_rules {
                    let (config, candle_ms) = rules.as_ref();
                    let now = decided_at.saturating_add(*candle_ms);
                    if let Some(p) = stop_protection(config, &self.state.stops, now, *candle_ms) {
                        self.state.refused_entries.push((decided_at, p.describe()));
                        return None;
                    }
                }
                self.state.time_exit = signal.time_exit_candles;
                // A limit entry is sized at its limit: the price it buys at if it buys.
                let limit = signal.limit_entry.map(|l| LimitOrder {
                    price: Price(
                        history.close_price().get()
                            * (Decimal::ONE - Decimal::from(l.offset_bps) * Decimal::new(1, 4)),
                    ),
                    post_only: l.post_only,
                    timeout_candles: l.timeout_candles,
                });
                let decision = if self.state.all_in {
                    AllIn::decide(self.state.cash, signal.stop_loss)
                } else {
                    let close = history.close_price();
                    let input = SizingInput {
                        cash: self.state.cash,
                        equity: self.equity_at(close),
                        price: limit.map_or(close, |l| l.price),
                        stop_loss: signal.stop_loss,
                        fee_rate: self.state.fee_rate,
                        history,
                        closed_trades: &self.state.closed_trades,
                    };
                    self.state.sizer.size(&input)
                };
                decision.map(|d| OrderIntent {
                    side: Side::Buy,
                    amount: d.amount,
                    stop_loss: d.stop_loss,
                    take_profit: signal.take_profit,
                    trailing: signal.trailing,
                    break_even_r: signal.break_even_r,
                    limit,
                    scale_out: signal.scale_out,
                    reason: ExitReason::Signal,
                    decided_at,
                })
            }
            Action::ExitLong if !self.state.position.is_flat() => Some(OrderIntent::market(
                Side::Sell,
                OrderAmount::Qty(self.state.position.qty),
                ExitReason::Signal,
                decided_at,
            )),
            _ => None,
        };
        self.state.in_flight = intent.is_some();
        intent
    }

    /// Book an execution: cash, position and fees change only here. Returns the round trip it
    /// closed, if it closed one.
    pub fn on_execution(&mut self, exec: &Execution) -> Option<ClosedTrade> {
        self.on_fill(exec, exec.price * exec.qty)
    }

    /// [`on_execution`](Self::on_execution) with the execution's notional as the exchange worked
    /// it out for its fee: `exec.price * exec.qty`, the same decimal (scale included), not
    /// multiplied a second time.
    pub(crate) fn on_fill(&mut self, exec: &Execution, notional: Quote) -> Option<ClosedTrade> {
        let mut closed = None;
        match exec.side {
            Side::Buy => {
                let old = self.state.position.qty;
                let new = old + exec.qty;
                if old.is_zero() {
                    self.state.held = 0;
                    // Opening from flat: the average is the fill price (no decimal division).
                    self.state.position.entry_price = exec.price;
                    self.state.position.entry_time = exec.time;
                } else if !new.is_zero() {
                    self.state.position.entry_price =
                        Price((self.state.position.entry_price * old + notional).get() / new.get());
                }
                self.state.position.qty = new;
                let spent = notional + exec.fee;
                self.state.cash -= spent;
                self.state.position_cost += spent;
            }
            Side::Sell => {
                if self.state.stop_rules.is_some()
                    && matches!(exec.reason, ExitReason::StopLoss | ExitReason::TrailingStop)
                {
                    self.state.stops.push(exec.time);
                }
                self.state.position.qty -= exec.qty;
                let received = notional - exec.fee;
                self.state.cash += received;
                if !self.state.position.qty.is_zero() {
                    // A part sold (scale-out): what it brought in comes off the cost, so the
                    // round trip's PnL is everything received less everything paid.
                    self.state.position_cost -= received;
                } else {
                    let trade = ClosedTrade {
                        pnl: received - self.state.position_cost,
                        closed_at: exec.time,
                    };
                    self.state.closed_trades.push(trade);
                    closed = Some(trade);
                    self.state.position = Position::default();
                    self.state.position_cost = Quote::ZERO;
                }
            }
        }
        self.state.fees_paid += exec.fee;
        self.state.in_flight = false;
        self.state.cash_f64 = self.state.cash.to_f64();
        self.state.qty_f64 = self.state.position.qty.to_f64();
        self.state.flat = self.state.position.is_flat();
        closed
    }

    /// The order sent for the last intent was refused (filters, no liquidity): allow new ones.
    pub fn on_rejected(&mut self) {
        self.state.in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    struct AlwaysBuy;
    impl Strategy for AlwaysBuy {
        fn name(&self) -> &str {
            "always-buy"
        }
        fn on_candle(&mut self, _ctx: &StrategyContext<'_>) -> Option<Signal> {
            Some(Signal::enter_long())
        }
    }

    fn candle(t: i64, close: Decimal) -> Candle {
        Candle {
            open_time: t,
            open: Price(close),
            high: Price(close),
            low: Price(close),
            close: Price(close),
            volume: Qty(dec!(1)),
        }
    }

    #[test]
    fn entry_is_sent_once_and_booked_from_the_execution() {
        let candles = vec![candle(0, dec!(100)), candle(1, dec!(100))];
        let cols = CandleColumns::from_candles(&candles);
        let mut engine = Engine::new(Box::new(AlwaysBuy), Box::new(AllIn), Quote(dec!(1000)));
        let intent = engine
            .on_candle(History::up_to(&candles, &cols, 0))
            .unwrap();
        assert_eq!(intent.amount, OrderAmount::QuoteBudget(Quote(dec!(1000))));
        // still in flight: no second order
        assert!(
            engine
                .on_candle(History::up_to(&candles, &cols, 1))
                .is_none()
        );
        engine.on_execution(&Execution {
            side: Side::Buy,
            qty: Qty(dec!(9)),
            price: Price(dec!(100)),
            fee: Quote(dec!(0.9)),
            time: 1,
            reason: ExitReason::Signal,
        });
        // 1000 - 900 - 0.9
        assert_eq!(engine.cash(), Quote(dec!(99.1)));
        assert_eq!(engine.position().qty, Qty(dec!(9)));
        // long already: a second entry is ignored
        assert!(
            engine
                .on_candle(History::up_to(&candles, &cols, 1))
                .is_none()
        );
        assert_eq!(engine.equity_at(Price(dec!(110))), Quote(dec!(1089.1)));
    }

    struct BuyHeldForTwo;
    impl Strategy for BuyHeldForTwo {
        fn name(&self) -> &str {
            "buy-held-for-two"
        }
        fn on_candle(&mut self, _ctx: &StrategyContext<'_>) -> Option<Signal> {
            Some(Signal::enter_long().with_time_exit(2))
        }
    }

    /// Bought 9 at 100 on candle 0's close (fee 0.9); candle 1 is the first held, candle 2 the
    /// second: its close (110) sells the 9 as a time exit, fee 9 × 110 × 0.001 = 0.99, PnL
    /// 990 − 0.99 − 900.9 = 88.11.
    #[test]
    fn time_exit_sells_at_the_close_of_the_nth_candle_after_the_entry() {
        use crate::domain::backtest::fills::{Costs, FillModel, SimulatedExchange};
        use crate::domain::trading::filters::SymbolFilters;
        let candles = vec![
            candle(0, dec!(100)),
            candle(1, dec!(105)),
            candle(2, dec!(110)),
        ];
        let cols = CandleColumns::from_candles(&candles);
        let mut filters = SymbolFilters::permissive("BTC", "USDT");
        filters.tick_size = Decimal::ZERO;
        filters.step_size = Decimal::ZERO;
        let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), filters);
        let mut engine = Engine::new(
            Box::new(BuyHeldForTwo),
            Box::new(FixedFraction {
                fraction: dec!(0.9009),
            }),
            Quote(dec!(1000)),
        );
        let mut sells = Vec::new();
        for i in 0..candles.len() {
            if let Some(intent) = engine.on_candle(History::up_to(&candles, &cols, i)) {
                let exec = ex.submit(intent, &candles[i]).unwrap().unwrap();
                if exec.side == Side::Sell {
                    sells.push((i, exec));
                }
                engine.on_execution(&exec);
            }
        }
        // 1000 × 0.9009 = 900.9 = 9 × 100 × 1.001
        let (at, exit) = sells[0];
        assert_eq!(sells.len(), 1);
        assert_eq!(at, 2);
        assert_eq!(exit.reason, ExitReason::TimeExit);
        assert_eq!((exit.qty, exit.price), (Qty(dec!(9)), Price(dec!(110))));
        assert_eq!(exit.fee, Quote(dec!(0.99)));
        assert_eq!(engine.closed_trades()[0].pnl, Quote(dec!(88.11)));
    }

    struct LimitBuyer;
    impl Strategy for LimitBuyer {
        fn name(&self) -> &str {
            "limit-buyer"
        }
        fn on_candle(&mut self, _ctx: &StrategyContext<'_>) -> Option<Signal> {
            Some(Signal::enter_long().with_limit_entry(LimitEntry {
                offset_bps: 150,
                post_only: true,
                timeout_candles: 4,
            }))
        }
    }

    /// Sizes with the reference price it is given (as a quantity, to show it).
    struct EchoPrice;
    impl Sizer for EchoPrice {
        fn name(&self) -> &str {
            "echo-price"
        }
        fn size(&self, input: &SizingInput<'_>) -> Option<SizeDecision> {
            Some(SizeDecision {
                amount: OrderAmount::Qty(Qty(input.price.get())),
                stop_loss: None,
            })
        }
    }

    /// 150 bps under a close at 200: a limit at 200 × 0.985 = 197, and the entry is sized at
    /// 197, the price it buys at if it buys.
    #[test]
    fn limit_entry_is_priced_under_the_close_and_sized_at_its_limit() {
        let candles = vec![candle(0, dec!(200))];
        let cols = CandleColumns::from_candles(&candles);
        let mut engine = Engine::new(Box::new(LimitBuyer), Box::new(EchoPrice), Quote(dec!(1000)));
        let intent = engine
            .on_candle(History::up_to(&candles, &cols, 0))
            .unwrap();
        assert_eq!(
            intent.limit,
            Some(LimitOrder {
                price: Price(dec!(197)),
                post_only: true,
                timeout_candles: 4,
            })
        );
        assert_eq!(intent.amount, OrderAmount::Qty(Qty(dec!(197))));
    }

    #[test]
    fn fixed_fraction_spends_the_fraction_of_equity() {
        let candles = vec![candle(0, dec!(100))];
        let cols = CandleColumns::from_candles(&candles);
        let h = History::up_to(&candles, &cols, 0);
        let input = SizingInput {
            cash: Quote(dec!(1000)),
            equity: Quote(dec!(1000)),
            price: Price(dec!(100)),
            stop_loss: None,
            fee_rate: dec!(0.001),
            history: &h,
            closed_trades: &[],
        };
        let s = FixedFraction {
            fraction: dec!(0.25),
        };
        assert_eq!(
            s.size(&input).map(|d| d.amount),
            Some(OrderAmount::QuoteBudget(Quote(dec!(250))))
        );
    }
}
