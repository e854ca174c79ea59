//! The simulated exchange a backtest fills orders on: next-open or close fills, slippage, maker
//! and taker fees, exchange filters, and stop-loss / take-profit / trailing stop checked inside
//! each candle.

use super::engine::{Execution, ExitReason, LimitOrder, OrderAmount, OrderIntent};
use crate::domain::market::candle::{Candle, TimestampMs};
use crate::domain::money::{Price, Qty, Quote, div_to_zero_dp};
use crate::domain::trading::filters::{FilterViolation, SymbolFilters};
use crate::domain::trading::order::{OrderType, Side, TrailingStop};
use crate::domain::trading::scale_out::{self, Split, Unsplittable};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Decimal places a quote-budget quantity keeps when the symbol has no lot step.
pub const BUDGET_QTY_DP: u32 = 12;
use std::str::FromStr;

/// When a market order decided on a candle's close fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillModel {
    /// At the next candle's open: what a live bot acting on a closed candle really gets.
    #[default]
    NextOpen,
    /// At the signal candle's own close (optimistic; for parity with tools that do this).
    Close,
}

impl FromStr for FillModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "next-open" => Ok(FillModel::NextOpen),
            "close" => Ok(FillModel::Close),
            other => Err(format!(
                "unknown fill model {other:?}: expected next-open or close"
            )),
        }
    }
}

impl fmt::Display for FillModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FillModel::NextOpen => "next-open",
            FillModel::Close => "close",
        })
    }
}

/// Trading costs. Rates are fractions (0.001 = 0.1 % = 10 bps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Costs {
    pub taker_fee: Decimal,
    pub maker_fee: Decimal,
    /// Adverse price move on market orders and triggered stops.
    pub slippage: Decimal,
}

impl Default for Costs {
    /// Binance spot's base rate: 0.1 % maker and taker, no slippage.
    fn default() -> Self {
        Costs {
            taker_fee: Decimal::new(1, 3),
            maker_fee: Decimal::new(1, 3),
            slippage: Decimal::ZERO,
        }
    }
}

impl Costs {
    /// From basis points (10 bps = 0.1 %).
    pub fn from_bps(taker_bps: Decimal, maker_bps: Decimal, slippage_bps: Decimal) -> Self {
        let bps = Decimal::new(1, 4);
        Costs {
            taker_fee: taker_bps * bps,
            maker_fee: maker_bps * bps,
            slippage: slippage_bps * bps,
        }
    }
}

/// Why the simulated exchange refused an order (a live exchange would answer -1013 / -2010).
/// Serialised as its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Filter(#[from] FilterViolation),
    #[error("quantity rounds to zero at price {price}")]
    ZeroQuantity { price: Price },
    /// A post-only (`LIMIT_MAKER`) buy at or over the price would trade as a taker: Binance's
    /// -2010 "Order would immediately match and take.".
    #[error("Order would immediately match and take. (post-only buy at {limit}, price {price})")]
    WouldTake { limit: Price, price: Price },
    /// A limit entry the price never came down to, cancelled at its time-out.
    #[error("limit entry at {limit} not filled within {candles} candles: cancelled")]
    Expired { limit: Price, candles: u32 },
    /// Not sent: the risk rules refused the entry signal (a cooldown or lock after stops), in
    /// plain words.
    #[error("entry refused by risk: {0}")]
    Risk(String),
    /// A scale-out's part or rest would be refused: the entry stands, protected whole.
    #[error(transparent)]
    NotScaledOut(#[from] Unsplittable),
}

impl Serialize for Rejection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The prices a candle is walked through, in order: open, then the nearer of low and high
/// (low first for a rising candle, high first for a falling one), then the other, then close.
/// The paper exchange replays a closed candle as these four trades, so an order that depends on
/// the order of prices (a trailing stop) fills in a backtest where it fills on paper.
pub fn candle_path(candle: &Candle) -> [Price; 4] {
    if candle.close >= candle.open {
        [candle.open, candle.low, candle.high, candle.close]
    } else {
        [candle.open, candle.high, candle.low, candle.close]
    }
}

/// The break-even move (issue #19), for the backtest and live trading alike: once `price` (a
/// close in a backtest, the last price at a live monitor pass right after a close) reaches
/// `entry + r_multiple × R`, with R = entry − stop (the risk the position opened with), the stop
/// moves to the price that sells the position for what it cost, entry × (1 + fee) / (1 − fee):
/// the entry fee and the exit fee at the stop covered. `None`: not reached, or the stop is not
/// under the entry (already moved). The caller rounds the result up to the tick.
pub fn break_even_stop(
    entry: Price,
    stop: Price,
    r_multiple: Decimal,
    fee_rate: Decimal,
    price: Price,
) -> Option<Price> {
    if stop >= entry || fee_rate >= Decimal::ONE {
        return None;
    }
    let trigger = entry.get() + r_multiple * (entry.get() - stop.get());
    (price.get() >= trigger)
        .then(|| Price(entry.get() * (Decimal::ONE + fee_rate) / (Decimal::ONE - fee_rate)))
}

/// Stop and target attached to the open position (OCO-like: whichever triggers first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Brackets {
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
    /// A trailing stop replaces `stop_loss`; it tracks from the entry's market price.
    trailing: Option<TrailingStop>,
    /// The entry price and R multiple of a pending break-even move.
    break_even: Option<(Price, Decimal)>,
    /// A scale-out whose part has not sold yet: the part's quantity. `take_profit` sells only
    /// it; `stop_loss` sells it with the rest, or alone when a trailing stop holds the rest.
    scale_out_part: Option<Qty>,
    /// The part has sold and the rest keeps a fixed stop: the entry price its stop moves to
    /// break-even from, at the next close above that level.
    rest_break_even: Option<Price>,
}

/// An execution with its notional (`price * qty`) as the fill worked it out for the fee, so the
/// booking takes the same decimal instead of multiplying again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filled {
    pub(crate) exec: Execution,
    pub(crate) notional: Quote,
}

/// What an order sent or resting came to, when it came to something.
pub(crate) type Outcome = Result<Filled, Rejection>;

/// The public face of an outcome: the execution alone.
#[inline]
fn public(outcome: Option<Outcome>) -> Option<Result<Execution, Rejection>> {
    outcome.map(|o| o.map(|f| f.exec))
}

/// A limit entry resting on the book: the order, its price on the tick, and the candles it may
/// still rest for.
#[derive(Debug, Clone, Copy)]
struct Resting {
    intent: OrderIntent,
    limit: LimitOrder,
    candles_left: u32,
}

/// The exchange a backtest trades on. Holds the orders waiting for the next open and the
/// brackets of the open position; the account itself is booked by the engine from executions.
#[derive(Debug, Clone)]
pub struct SimulatedExchange {
    pub fill_model: FillModel,
    pub costs: Costs,
    pub filters: SymbolFilters,
    pending: Option<OrderIntent>,
    /// A limit entry waiting for the price to come down to it.
    resting: Option<Resting>,
    brackets: Brackets,
    /// Brackets are checked on candles opening at or after this time: a position a limit entry
    /// bought inside a candle is protected after that candle's close, as live trading places
    /// its protection at the pass after the close that reports the fill.
    brackets_from: TimestampMs,
    position_qty: Qty,
    /// The open position's entry price (a scale-out's rest moves its stop to break-even from it).
    entry_price: Price,
    /// Why the last entry's scale-out was not split (taken by the runner, which reports it).
    unsplit: Option<Unsplittable>,
    /// A second leg filled in the candle [`check_brackets`](Self::check_brackets) last looked
    /// at (a scale-out's part beside its trailed rest).
    second_exit: Option<Execution>,
    /// A fee rate and `1 + rate`, the factor a quote budget is divided by, worked out once for
    /// the taker fee the exchange was built with (`costs` may be changed after: see
    /// [`budget_factor`](Self::budget_factor)).
    budget_factor: (Decimal, Decimal),
}

impl SimulatedExchange {
    pub fn new(fill_model: FillModel, costs: Costs, filters: SymbolFilters) -> Self {
        SimulatedExchange {
            fill_model,
            costs,
            filters,
            pending: None,
            resting: None,
            brackets: Brackets::default(),
            brackets_from: TimestampMs::MIN,
            position_qty: Qty::ZERO,
            entry_price: Price(Decimal::ZERO),
            unsplit: None,
            second_exit: None,
            budget_factor: (costs.taker_fee, Decimal::ONE + costs.taker_fee),
        }
    }

    /// `1 + fee_rate`, from the one worked out at construction when `fee_rate` is that rate to
    /// the last digit of its representation (scale included, as the sum's scale follows it).
    #[inline]
    fn budget_factor(&self, fee_rate: Decimal) -> Decimal {
        let (rate, factor) = self.budget_factor;
        if rate.serialize() == fee_rate.serialize() {
            factor
        } else {
            Decimal::ONE + fee_rate
        }
    }

    #[inline]
    pub fn has_pending(&self) -> bool {
        self.pending.is_some() || self.resting.is_some()
    }

    /// A limit entry is resting (it fills inside a candle, not at an open).
    #[inline]
    pub fn has_resting_entry(&self) -> bool {
        self.resting.is_some()
    }

    /// Whether the open position has a stop or a target to check inside each candle.
    #[inline]
    pub fn has_brackets(&self) -> bool {
        self.brackets.stop_loss.is_some()
            || self.brackets.take_profit.is_some()
            || self.brackets.trailing.is_some()
    }

    /// A break-even move waits for a close (see [`on_close`](Self::on_close)).
    #[inline]
    pub fn has_break_even(&self) -> bool {
        self.brackets.break_even.is_some() || self.brackets.rest_break_even.is_some()
    }

    /// Why the last entry was not scaled out, once (the runner reports it with the refusals).
    pub fn take_unsplit(&mut self) -> Option<Unsplittable> {
        self.unsplit.take()
    }

    /// A candle closed at `close` with the position open: move the stop to break-even when the
    /// close reached the position's trigger ([`break_even_stop`]); it applies from the next
    /// candle, as live trading replaces the exchange stop after the close.
    pub fn on_close(&mut self, close: Price) {
        if self.position_qty.is_zero() {
            return;
        }
        if let (Some((entry, r)), Some(stop)) = (self.brackets.break_even, self.brackets.stop_loss)
            && let Some(level) = break_even_stop(entry, stop, r, self.costs.taker_fee, close)
        {
            self.brackets.stop_loss = Some(self.filters.round_price_up(level).max(stop));
            self.brackets.break_even = None;
        }
        // A scale-out's rest after its part sold: the same rule live trading applies at the
        // monitor pass after the close (`scale_out::rest_break_even_stop`).
        if let (Some(entry), Some(stop)) = (self.brackets.rest_break_even, self.brackets.stop_loss)
            && let Some(level) = scale_out::rest_break_even_stop(
                entry,
                stop,
                self.costs.taker_fee,
                close,
                &self.filters,
            )
        {
            self.brackets.stop_loss = Some(level);
            self.brackets.rest_break_even = None;
        }
    }

    /// Accept an order decided at `candle`'s close: filled now (close model) or queued for the
    /// next open.
    pub fn submit(
        &mut self,
        intent: OrderIntent,
        candle: &Candle,
    ) -> Option<Result<Execution, Rejection>> {
        self.submit_at(intent, || candle.close, candle.open_time)
    }

    /// [`submit`](Self::submit) given the decision candle's open time and its close (asked for
    /// only when the order fills at it).
    #[inline]
    pub fn submit_at(
        &mut self,
        intent: OrderIntent,
        close: impl FnOnce() -> Price,
        time: TimestampMs,
    ) -> Option<Result<Execution, Rejection>> {
        public(self.submit_filled(intent, close, time))
    }

    /// [`submit_at`](Self::submit_at), the execution with its notional.
    #[inline]
    pub(crate) fn submit_filled(
        &mut self,
        intent: OrderIntent,
        close: impl FnOnce() -> Price,
        time: TimestampMs,
    ) -> Option<Outcome> {
        if let Some(limit) = intent.limit {
            return self.place_limit(intent, limit, close());
        }
        match self.fill_model {
            FillModel::Close => Some(self.fill_market(&intent, close(), time)),
            FillModel::NextOpen => {
                self.pending = Some(intent);
                None
            }
        }
    }

    /// A limit entry sent when the last price was `price` (the decision candle's close, whatever
    /// the fill model: the order rests from its placement). Its price is rounded down to the
    /// tick, as the order is built. A post-only order at or over the price is refused, as
    /// Binance refuses a `LIMIT_MAKER` that would take; a plain limit there fills at once as a
    /// taker at the price; any other rests.
    fn place_limit(
        &mut self,
        intent: OrderIntent,
        mut limit: LimitOrder,
        price: Price,
    ) -> Option<Outcome> {
        limit.price = self.filters.round_price_down(limit.price);
        if limit.price >= price {
            if limit.post_only {
                return Some(Err(Rejection::WouldTake {
                    limit: limit.price,
                    price,
                }));
            }
            return Some(self.fill_market(&intent, price, intent.decided_at));
        }
        self.resting = Some(Resting {
            intent,
            limit,
            candles_left: limit.timeout_candles.max(1),
        });
        None
    }

    /// The resting limit entry over `candle`: it fills at its own price (the maker's, with the
    /// maker fee) when the candle trades at or under it, as the paper exchange fills a resting
    /// buy that a replayed price crosses; it is cancelled when this candle was the last of its
    /// time-out.
    pub fn on_resting_candle(&mut self, candle: &Candle) -> Option<Result<Execution, Rejection>> {
        public(self.on_resting_candle_filled(candle))
    }

    /// [`on_resting_candle`](Self::on_resting_candle), the execution with its notional.
    pub(crate) fn on_resting_candle_filled(&mut self, candle: &Candle) -> Option<Outcome> {
        let mut resting = self.resting.take()?;
        let limit = resting.limit;
        if candle.low <= limit.price {
            let fee = self.costs.maker_fee;
            let filled = self.fill(
                &resting.intent,
                limit.price,
                limit.price,
                fee,
                candle.open_time,
            );
            if filled.is_ok() {
                self.brackets_from = candle.open_time.saturating_add(1);
            }
            return Some(filled);
        }
        resting.candles_left -= 1;
        if resting.candles_left == 0 {
            return Some(Err(Rejection::Expired {
                limit: limit.price,
                candles: limit.timeout_candles,
            }));
        }
        self.resting = Some(resting);
        None
    }

    /// A new candle opens: the queued order fills at its open.
    pub fn on_open(&mut self, candle: &Candle) -> Option<Result<Execution, Rejection>> {
        self.pending.as_ref()?;
        self.fill_pending(candle.open, candle.open_time)
    }

    /// The queued order fills at `open`, the open of the candle starting at `time`.
    pub fn fill_pending(
        &mut self,
        open: Price,
        time: TimestampMs,
    ) -> Option<Result<Execution, Rejection>> {
        public(self.fill_pending_filled(open, time))
    }

    /// [`fill_pending`](Self::fill_pending), the execution with its notional.
    pub(crate) fn fill_pending_filled(
        &mut self,
        open: Price,
        time: TimestampMs,
    ) -> Option<Outcome> {
        let intent = self.pending.take()?;
        Some(self.fill_market(&intent, open, time))
    }

    /// Stop-loss and take-profit inside `candle`. A gap through a level fills at the open; when
    /// the candle touches both, the stop is assumed to have come first (we cannot know the path,
    /// and assuming the worse keeps results honest).
    ///
    /// A trailing stop is walked through the candle's [`candle_path`] with the same trigger as
    /// the paper exchange and Binance ([`TrailingStop`]): it sells at the first of those prices
    /// that triggers it (taker fee, slippage), which is under the trigger level when the
    /// price jumped past it.
    ///
    /// Under a scale-out the legs are separate orders, as live: the target sells the part, the
    /// stop sells the part (and the rest, unless a trailing stop holds it), the trailing stop
    /// sells the rest. When two legs fill in the candle the second waits in
    /// [`take_second_exit`](Self::take_second_exit).
    pub fn check_brackets(&mut self, candle: &Candle) -> Option<Execution> {
        let first = self.check_legs(candle, true)?;
        if !self.position_qty.is_zero() {
            // The trailing stop has been walked through this candle already.
            self.second_exit = self.check_legs(candle, false);
        }
        Some(first)
    }

    /// The second leg filled in the candle `check_brackets` last looked at, once.
    pub fn take_second_exit(&mut self) -> Option<Execution> {
        self.second_exit.take()
    }

    fn check_legs(&mut self, candle: &Candle, walk_trailing: bool) -> Option<Execution> {
        if self.position_qty.is_zero() || candle.open_time < self.brackets_from {
            return None;
        }
        let part = self.brackets.scale_out_part;
        if let Some(mut trailing) = self.brackets.trailing
            && walk_trailing
        {
            for price in candle_path(candle) {
                if trailing.observe(price) {
                    let price = self.slipped(Side::Sell, price);
                    let rest = self.position_qty - part.unwrap_or(Qty::ZERO);
                    self.brackets.trailing = None;
                    return Some(self.exit(
                        rest,
                        price,
                        self.costs.taker_fee,
                        candle,
                        ExitReason::TrailingStop,
                    ));
                }
            }
            self.brackets.trailing = Some(trailing);
        }
        let b = self.brackets;
        if let Some(stop) = b.stop_loss
            && candle.low <= stop
        {
            let trigger = if candle.open <= stop {
                candle.open
            } else {
                stop
            };
            let price = self.slipped(Side::Sell, trigger);
            // Beside a trailed rest the fixed stop is the part's alone.
            let qty = match (part, b.trailing) {
                (Some(part), Some(_)) => part,
                _ => self.position_qty,
            };
            self.brackets.stop_loss = None;
            self.brackets.take_profit = None;
            self.brackets.scale_out_part = None;
            return Some(self.exit(
                qty,
                price,
                self.costs.taker_fee,
                candle,
                ExitReason::StopLoss,
            ));
        }
        if let Some(target) = b.take_profit
            && candle.high >= target
        {
            // A resting limit sell: fills at the target, or at the better open after a gap.
            let price = if candle.open >= target {
                candle.open
            } else {
                target
            };
            let qty = part.unwrap_or(self.position_qty);
            if part.is_some() {
                // The part's OCO is done; the rest keeps its trailing stop, or its fixed stop
                // with a break-even move to come.
                self.brackets.take_profit = None;
                self.brackets.scale_out_part = None;
                if b.trailing.is_some() {
                    self.brackets.stop_loss = None;
                } else {
                    self.brackets.rest_break_even = Some(self.entry_price);
                }
            }
            return Some(self.exit(
                qty,
                price,
                self.costs.maker_fee,
                candle,
                ExitReason::TakeProfit,
            ));
        }
        None
    }

    /// Sell `qty` of the position; selling the last of it clears every bracket.
    fn exit(
        &mut self,
        qty: Qty,
        price: Price,
        fee_rate: Decimal,
        candle: &Candle,
        reason: ExitReason,
    ) -> Execution {
        let fee = price * qty * fee_rate;
        self.position_qty -= qty;
        if self.position_qty.is_zero() {
            self.brackets = Brackets::default();
            // A bracket exit cancels any exit still queued for the next open.
            if matches!(self.pending, Some(p) if p.side == Side::Sell) {
                self.pending = None;
            }
        }
        Execution {
            side: Side::Sell,
            qty,
            price,
            fee,
            time: candle.open_time,
            reason,
        }
    }

    /// The scale-out split of the position just bought, when its intent asks for one: it needs
    /// a target and a fixed stop (the part's OCO). Checked at the stop, where a backtest sells a
    /// triggered stop, with both levels on the tick as the orders would be.
    fn split_for(&self, intent: &OrderIntent) -> Option<Split> {
        let share = intent.scale_out?;
        let target = self.filters.round_price(intent.take_profit?);
        let stop = self.filters.round_price(intent.stop_loss?);
        Some(scale_out::split(
            self.position_qty,
            share,
            target,
            stop,
            &self.filters,
        ))
    }

    #[inline]
    fn slipped(&self, side: Side, price: Price) -> Price {
        if self.costs.slippage.is_zero() {
            return price;
        }
        match side {
            Side::Buy => self
                .filters
                .round_price_up(price * (Decimal::ONE + self.costs.slippage)),
            Side::Sell => self
                .filters
                .round_price_down(price * (Decimal::ONE - self.costs.slippage)),
        }
    }

    fn fill_market(
        &mut self,
        intent: &OrderIntent,
        reference: Price,
        time: TimestampMs,
    ) -> Outcome {
        let price = self.slipped(intent.side, reference);
        self.brackets_from = TimestampMs::MIN;
        self.fill(intent, reference, price, self.costs.taker_fee, time)
    }

    /// Fill `intent` at `price` (`reference`: the market's price then, where a trailing stop
    /// starts tracking).
    fn fill(
        &mut self,
        intent: &OrderIntent,
        reference: Price,
        price: Price,
        fee_rate: Decimal,
        time: TimestampMs,
    ) -> Outcome {
        let raw_qty = match intent.amount {
            OrderAmount::Qty(q) => q,
            // budget = qty * price * (1 + fee). The quotient is cut (down, so the budget is never
            // overspent) to BUDGET_QTY_DP places, 10,000 times finer than Binance's finest lot:
            // a full 28-digit quantity would push every later multiplication onto the decimal
            // library's slow rescaling path, for digits no exchange accepts.
            OrderAmount::QuoteBudget(budget) => Qty(div_to_zero_dp(
                budget.get(),
                price.get() * self.budget_factor(fee_rate),
                BUDGET_QTY_DP,
            )
            .unwrap_or(Decimal::ZERO)),
        };
        let qty = match intent.side {
            // Selling the whole position must not leave dust the filters would refuse anyway.
            Side::Sell => raw_qty.min(self.position_qty),
            Side::Buy => self.filters.round_market_qty_down(raw_qty),
        };
        if qty.is_zero() {
            return Err(Rejection::ZeroQuantity { price });
        }
        let notional = price * qty;
        // A market order's filters (`check_order` for a market order: lot, then notional), with
        // the notional worked out once for the check and the fee. A full exit is checked only
        // for notional: the lot was accepted on the way in.
        if intent.side == Side::Buy || qty != self.position_qty {
            self.filters.check_qty(qty, true)?;
        }
        self.filters.check_notional(notional)?;
        let fee = notional * fee_rate;
        match intent.side {
            Side::Buy => {
                self.position_qty += qty;
                // The trailing stop starts from the market price the entry traded at (the
                // exchange's last price), as a trailing order without a stop price does.
                let trailing = intent.trailing.map(|delta| {
                    TrailingStop::placed(
                        OrderType::StopLossLimit,
                        Side::Sell,
                        delta,
                        None,
                        Some(reference),
                    )
                });
                let split = self.split_for(intent);
                let asked = split.is_some();
                let part = match split {
                    Some(Split::Parts { part, .. }) => Some(part),
                    Some(Split::Whole(why)) => {
                        self.unsplit = Some(why);
                        None
                    }
                    None => None,
                };
                // Unsplit, a target and a trailing stop are one OCO live (the fixed stop and the
                // target, no trailing): the same here.
                let trailing = trailing.filter(|_| part.is_some() || !asked);
                // The fixed stop protects a scale-out's part (with the rest, unless trailed);
                // without a scale-out the trailing stop replaces it.
                let stop_loss = intent
                    .stop_loss
                    .filter(|_| trailing.is_none() || part.is_some());
                self.brackets = Brackets {
                    stop_loss,
                    take_profit: intent.take_profit,
                    trailing,
                    break_even: intent
                        .break_even_r
                        .filter(|_| stop_loss.is_some())
                        .map(|r| (price, r)),
                    scale_out_part: part,
                    rest_break_even: None,
                };
                self.entry_price = price;
            }
            Side::Sell => {
                self.position_qty -= qty;
                if self.position_qty.is_zero() {
                    self.brackets = Brackets::default();
                }
            }
        }
        let exec = Execution {
            side: intent.side,
            qty,
            price,
            fee,
            time,
            reason: match intent.side {
                Side::Buy => ExitReason::Signal,
                Side::Sell => intent.reason,
            },
        };
        Ok(Filled { exec, notional })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Quote;
    use rust_decimal_macros::dec;

    fn c(open: Decimal, high: Decimal, low: Decimal, close: Decimal) -> Candle {
        Candle {
            open_time: 7,
            open: Price(open),
            high: Price(high),
            low: Price(low),
            close: Price(close),
            volume: Qty(dec!(1)),
        }
    }

    fn unrestricted() -> SymbolFilters {
        let mut f = SymbolFilters::permissive("BTC", "USDT");
        f.tick_size = Decimal::ZERO;
        f.step_size = Decimal::ZERO;
        f
    }

    fn buy(amount: OrderAmount, stop: Option<Decimal>, target: Option<Decimal>) -> OrderIntent {
        OrderIntent {
            stop_loss: stop.map(Price),
            take_profit: target.map(Price),
            ..OrderIntent::market(Side::Buy, amount, ExitReason::Signal, 0)
        }
    }

    fn long_with_brackets(stop: Decimal, target: Decimal) -> SimulatedExchange {
        let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), unrestricted());
        let entry = c(dec!(100), dec!(100), dec!(100), dec!(100));
        ex.submit(
            buy(OrderAmount::Qty(Qty(dec!(2))), Some(stop), Some(target)),
            &entry,
        )
        .unwrap()
        .unwrap();
        ex
    }

    #[test]
    fn a_rejection_serialises_as_its_message() {
        let why = Rejection::ZeroQuantity {
            price: Price(dec!(33601.65)),
        };
        assert_eq!(
            serde_json::to_string(&why).unwrap(),
            "\"quantity rounds to zero at price 33601.65\""
        );
    }

    #[test]
    fn all_in_budget_buys_cash_over_price_times_one_plus_fee() {
        let mut ex = SimulatedExchange::new(FillModel::NextOpen, Costs::default(), unrestricted());
        let signal = c(dec!(90), dec!(95), dec!(85), dec!(94));
        assert!(
            ex.submit(
                buy(OrderAmount::QuoteBudget(Quote(dec!(1001))), None, None),
                &signal
            )
            .is_none()
        );
        let next = c(dec!(100), dec!(110), dec!(99), dec!(105));
        let e = ex.on_open(&next).unwrap().unwrap();
        // 1001 / (100 * 1.001) = 10 units at the NEXT open, fee 10 * 100 * 0.001 = 1
        assert_eq!(e.price, Price(dec!(100)));
        assert_eq!(e.qty, Qty(dec!(10)));
        assert_eq!(e.fee, Quote(dec!(1)));
        assert!(ex.on_open(&next).is_none());
    }

    #[test]
    fn budget_quantity_is_cut_to_twelve_places_and_never_overspends() {
        let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), unrestricted());
        let k = c(dec!(3), dec!(3), dec!(3), dec!(3));
        let e = ex
            .submit(
                buy(OrderAmount::QuoteBudget(Quote(dec!(100))), None, None),
                &k,
            )
            .unwrap()
            .unwrap();
        // 100 / (3 * 1.001) = 33.300033300033300033.. -> 33.300033300033
        assert_eq!(e.qty, Qty(dec!(33.300033300033)));
        assert!(e.price * e.qty + e.fee <= Quote(dec!(100)));
    }

    #[test]
    fn slippage_moves_buys_up_and_sells_down_to_the_tick() {
        let mut f = unrestricted();
        f.tick_size = dec!(0.01);
        let costs = Costs::from_bps(dec!(10), dec!(10), dec!(5));
        let mut ex = SimulatedExchange::new(FillModel::Close, costs, f);
        let k = c(dec!(100), dec!(100), dec!(100), dec!(123.45));
        let b = ex
            .submit(buy(OrderAmount::Qty(Qty(dec!(1))), None, None), &k)
            .unwrap()
            .unwrap();
        // 123.45 * 1.0005 = 123.511725 -> up to the tick 123.52; fee 0.12352
        assert_eq!(b.price, Price(dec!(123.52)));
        assert_eq!(b.fee, Quote(dec!(0.12352)));
        let sell = OrderIntent::market(
            Side::Sell,
            OrderAmount::Qty(Qty(dec!(1))),
            ExitReason::Signal,
            0,
        );
        let s = ex.submit(sell, &k).unwrap().unwrap();
        // 123.45 * 0.9995 = 123.388275 -> down to 123.38
        assert_eq!(s.price, Price(dec!(123.38)));
    }

    #[test]
    fn stop_inside_the_candle_fills_at_the_stop_with_taker_fee() {
        let mut ex = long_with_brackets(dec!(95), dec!(120));
        let e = ex
            .check_brackets(&c(dec!(99), dec!(101), dec!(94), dec!(96)))
            .unwrap();
        assert_eq!(e.reason, ExitReason::StopLoss);
        assert_eq!(e.price, Price(dec!(95)));
        // 2 * 95 * 0.001
        assert_eq!(e.fee, Quote(dec!(0.19)));
        assert!(
            ex.check_brackets(&c(dec!(90), dec!(90), dec!(1), dec!(1)))
                .is_none()
        );
    }

    #[test]
    fn gap_through_the_stop_fills_at_the_open() {
        let mut ex = long_with_brackets(dec!(95), dec!(120));
        let e = ex
            .check_brackets(&c(dec!(90), dec!(92), dec!(88), dec!(91)))
            .unwrap();
        assert_eq!(e.price, Price(dec!(90)));
        assert_eq!(e.reason, ExitReason::StopLoss);
    }

    #[test]
    fn gap_through_the_target_fills_at_the_better_open_with_maker_fee() {
        let mut ex = long_with_brackets(dec!(95), dec!(120));
        let e = ex
            .check_brackets(&c(dec!(125), dec!(130), dec!(124), dec!(128)))
            .unwrap();
        assert_eq!(e.price, Price(dec!(125)));
        assert_eq!(e.reason, ExitReason::TakeProfit);
        assert_eq!(e.fee, Quote(dec!(0.25)));
    }

    #[test]
    fn target_inside_the_candle_fills_at_the_target() {
        let mut ex = long_with_brackets(dec!(95), dec!(120));
        let e = ex
            .check_brackets(&c(dec!(110), dec!(121), dec!(105), dec!(118)))
            .unwrap();
        assert_eq!(e.price, Price(dec!(120)));
    }

    #[test]
    fn candle_touching_stop_and_target_counts_the_stop_first() {
        let mut ex = long_with_brackets(dec!(95), dec!(120));
        let e = ex
            .check_brackets(&c(dec!(100), dec!(125), dec!(90), dec!(110)))
            .unwrap();
        assert_eq!(e.reason, ExitReason::StopLoss);
        assert_eq!(e.price, Price(dec!(95)));
    }

    /// Long 2 at 100 with a 500-BIPS (5 %) trailing stop. Candle 1 rises (path 100, 99, 110,
    /// 108): the high becomes 110, the trigger 104.5, and 108 and 99 (before the high) do not
    /// trigger. Candle 2 falls (path 107, 109, 103, 104): 107 and 109 are over 104.5, 103 is the
    /// first price under it, so the position sells at 103: fee 2 × 103 × 0.001 = 0.206.
    #[test]
    fn trailing_stop_follows_the_high_and_sells_at_the_first_price_past_the_trigger() {
        let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), unrestricted());
        let mut intent = buy(OrderAmount::Qty(Qty(dec!(2))), Some(dec!(95)), None);
        intent.trailing = Some(crate::domain::trading::order::TrailingDelta(500));
        ex.submit(intent, &c(dec!(100), dec!(100), dec!(100), dec!(100)))
            .unwrap()
            .unwrap();
        assert!(ex.has_brackets());
        assert!(
            ex.check_brackets(&c(dec!(100), dec!(110), dec!(99), dec!(108)))
                .is_none()
        );
        let e = ex
            .check_brackets(&c(dec!(107), dec!(109), dec!(103), dec!(104)))
            .unwrap();
        assert_eq!(e.reason, ExitReason::TrailingStop);
        assert_eq!(e.price, Price(dec!(103)));
        assert_eq!(e.qty, Qty(dec!(2)));
        assert_eq!(e.fee, Quote(dec!(0.206)));
        assert!(!ex.has_brackets());
    }

    /// The fixed stop (95) is replaced by the trailing one (trigger 95, 5 % under the 100
    /// entry): a candle falling to 94.9 would sell at the fixed stop's 95 as a StopLoss; the
    /// trailing stop sells at 94.9, the first price of the candle's path at or under 95.
    #[test]
    fn trailing_stop_replaces_the_fixed_stop() {
        let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), unrestricted());
        let mut intent = buy(OrderAmount::Qty(Qty(dec!(1))), Some(dec!(95)), None);
        intent.trailing = Some(crate::domain::trading::order::TrailingDelta(500));
        ex.submit(intent, &c(dec!(100), dec!(100), dec!(100), dec!(100)))
            .unwrap()
            .unwrap();
        assert!(
            ex.check_brackets(&c(dec!(99), dec!(99), dec!(96), dec!(97)))
                .is_none()
        );
        let e = ex
            .check_brackets(&c(dec!(97), dec!(97), dec!(94.9), dec!(95.5)))
            .unwrap();
        assert_eq!(e.reason, ExitReason::TrailingStop);
        assert_eq!(e.price, Price(dec!(94.9)));
    }

    /// Long 2 at 100, stop 95 (R = 5), break-even after 1 R, fees 0.1 %: a close at 104.99
    /// moves nothing; a close at 105 moves the stop to 100 × 1.001 / 0.999 = 100.2002.. (up to
    /// the 0.01 tick: 100.21), so the next candle's dip to 100 sells at 100.21, not at 95.
    #[test]
    fn break_even_moves_the_stop_to_entry_plus_fees_after_a_close_at_one_r() {
        let mut f = unrestricted();
        f.tick_size = dec!(0.01);
        let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), f);
        let mut intent = buy(OrderAmount::Qty(Qty(dec!(2))), Some(dec!(95)), None);
        intent.break_even_r = Some(dec!(1));
        ex.submit(intent, &c(dec!(100), dec!(100), dec!(100), dec!(100)))
            .unwrap()
            .unwrap();
        assert!(ex.has_break_even());
        ex.on_close(Price(dec!(104.99)));
        assert!(ex.has_break_even());
        ex.on_close(Price(dec!(105)));
        assert!(!ex.has_break_even());
        let e = ex
            .check_brackets(&c(dec!(104), dec!(104), dec!(100), dec!(101)))
            .unwrap();
        assert_eq!(e.reason, ExitReason::StopLoss);
        assert_eq!(e.price, Price(dec!(100.21)));
        // 2 × 100.21 × 0.001
        assert_eq!(e.fee, Quote(dec!(0.20042)));
        // The round trip keeps its cost: 2 × 100.21 × 0.999 = 200.21958 ≥ 2 × 100 × 1.001 = 200.2
        assert!(e.price * e.qty - e.fee >= Quote(dec!(200.2)));
    }

    fn limit_buy(qty: Decimal, limit: Decimal, post_only: bool, timeout: u32) -> OrderIntent {
        let mut intent = buy(OrderAmount::Qty(Qty(qty)), Some(dec!(95)), Some(dec!(120)));
        intent.limit = Some(LimitOrder {
            price: Price(limit),
            post_only,
            timeout_candles: timeout,
        });
        intent
    }

    fn ticked() -> SimulatedExchange {
        let mut f = unrestricted();
        f.tick_size = dec!(0.01);
        // Maker 2 bps, taker 10 bps: which one a fill pays shows who it was.
        let costs = Costs::from_bps(dec!(10), dec!(2), dec!(0));
        SimulatedExchange::new(FillModel::Close, costs, f)
    }

    /// A limit buy 2 at 99.504 (rounded down to the tick: 99.50) decided on a close at 100, stop
    /// 95. Candle 1 dips to 99.51: not filled. Candle 2 falls to 94: filled at its own 99.50
    /// (the maker's price, not the low), fee 2 × 99.5 × 0.0002 = 0.0398; the stop is not checked
    /// in the candle that filled it (live protection is placed after that close). Candle 3
    /// falls from 96 through 95: the stop sells at 95 with the taker fee 0.19.
    #[test]
    fn limit_entry_rests_fills_at_its_own_price_with_the_maker_fee_then_is_protected() {
        let mut ex = ticked();
        let decided = c(dec!(100), dec!(100), dec!(100), dec!(100));
        assert!(
            ex.submit(limit_buy(dec!(2), dec!(99.504), true, 3), &decided)
                .is_none()
        );
        assert!(ex.has_pending() && ex.has_resting_entry());
        let mut k1 = c(dec!(100), dec!(101), dec!(99.51), dec!(100.5));
        k1.open_time = 1;
        assert!(ex.on_resting_candle(&k1).is_none());
        let mut k2 = c(dec!(100), dec!(100.2), dec!(94), dec!(96));
        k2.open_time = 2;
        let e = ex.on_resting_candle(&k2).unwrap().unwrap();
        assert_eq!(e.side, Side::Buy);
        assert_eq!((e.qty, e.price), (Qty(dec!(2)), Price(dec!(99.50))));
        assert_eq!(e.fee, Quote(dec!(0.0398)));
        assert_eq!(e.time, 2);
        assert!(!ex.has_pending());
        assert!(
            ex.check_brackets(&k2).is_none(),
            "stopped in its fill candle"
        );
        let mut k3 = c(dec!(96), dec!(97), dec!(94.5), dec!(95));
        k3.open_time = 3;
        let s = ex.check_brackets(&k3).unwrap();
        assert_eq!(s.reason, ExitReason::StopLoss);
        assert_eq!(s.price, Price(dec!(95)));
        assert_eq!(s.fee, Quote(dec!(0.19)));
    }

    /// Time-out 2: the candles after the decision come down to 99.51 and 99.6, never to the
    /// 99.50 limit, and the second one cancels it; a later candle at 90 buys nothing.
    #[test]
    fn limit_entry_the_price_never_reaches_is_cancelled_after_its_time_out() {
        let mut ex = ticked();
        let decided = c(dec!(100), dec!(100), dec!(100), dec!(100));
        assert!(
            ex.submit(limit_buy(dec!(2), dec!(99.5), false, 2), &decided)
                .is_none()
        );
        assert!(
            ex.on_resting_candle(&c(dec!(100), dec!(101), dec!(99.51), dec!(100)))
                .is_none()
        );
        let why = ex
            .on_resting_candle(&c(dec!(100), dec!(101), dec!(99.6), dec!(100)))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            why,
            Rejection::Expired {
                limit: Price(dec!(99.5)),
                candles: 2
            }
        );
        assert!(!ex.has_pending());
        assert!(
            ex.on_resting_candle(&c(dec!(90), dec!(90), dec!(90), dec!(90)))
                .is_none()
        );
    }

    /// At or over the last price a post-only buy is refused as Binance refuses a LIMIT_MAKER
    /// that would take (-2010); a plain limit there buys at once at the price as a taker
    /// (2 × 100 × 0.001 = 0.2).
    #[test]
    fn post_only_entry_that_would_take_is_refused_and_a_plain_limit_takes() {
        let mut ex = ticked();
        let decided = c(dec!(100), dec!(100), dec!(100), dec!(100));
        let refused = ex
            .submit(limit_buy(dec!(2), dec!(100), true, 1), &decided)
            .unwrap()
            .unwrap_err();
        assert!(matches!(refused, Rejection::WouldTake { .. }));
        assert!(
            refused
                .to_string()
                .starts_with("Order would immediately match and take.")
        );
        assert!(!ex.has_pending());
        let taken = ex
            .submit(limit_buy(dec!(2), dec!(100.004), false, 1), &decided)
            .unwrap()
            .unwrap();
        assert_eq!(
            (taken.price, taken.fee),
            (Price(dec!(100)), Quote(dec!(0.2)))
        );
    }

    #[test]
    fn filters_round_the_lot_down_and_refuse_small_orders() {
        let mut f = unrestricted();
        f.step_size = dec!(0.001);
        f.min_qty = dec!(0.001);
        f.min_notional = dec!(10);
        let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), f);
        let k = c(dec!(300), dec!(300), dec!(300), dec!(300));
        // 100 / (300 * 1.001) = 0.33300033.. -> 0.333 lots, fee 0.333 * 300 * 0.001 = 0.0999
        let e = ex
            .submit(
                buy(OrderAmount::QuoteBudget(Quote(dec!(100))), None, None),
                &k,
            )
            .unwrap()
            .unwrap();
        assert_eq!(e.qty, Qty(dec!(0.333)));
        assert_eq!(e.fee, Quote(dec!(0.0999)));
        // 9 / (300 * 1.001) = 0.02997 -> 0.029 lots = 8.70 notional < 10 minimum
        let mut ex2 =
            SimulatedExchange::new(FillModel::Close, Costs::default(), ex.filters.clone());
        let r = ex2
            .submit(
                buy(OrderAmount::QuoteBudget(Quote(dec!(9))), None, None),
                &k,
            )
            .unwrap();
        assert!(matches!(
            r,
            Err(Rejection::Filter(FilterViolation::MinNotional { .. }))
        ));
    }
}
