//! `RiskManagementService::validate`: the last word on every order. Every check is evaluated and
//! listed with its verdict, passed ones included, so the TUI and the decision log can say why.

use super::breaker::{BreakerState, ClosedTrade};
use super::config::RiskConfig;
use super::heat::{OpenPosition, PortfolioHeatService};
use super::protections::StopExits;
use super::sizing::{SizingInputs, TradeCosts, loss_at_stop, size_position};
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What the order does to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentKind {
    /// Open or add to a position.
    Entry,
    /// Close the whole position in the symbol.
    Close,
    /// Sell part of the position (`TradeIntent::quantity`).
    Reduce,
}

/// An order a strategy or the LLM wants, before risk has sized it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeIntent {
    pub symbol: Symbol,
    /// `Buy` opens a long. Short entries are refused for now; the field leaves room for them.
    pub side: Side,
    pub kind: IntentKind,
    /// Decision confidence, 0..=1.
    pub confidence: Decimal,
    /// Optional size the decision asked for, % of equity notional (can only shrink the order).
    pub size_pct: Option<Decimal>,
    /// Reference entry price (limit or last price).
    pub entry: Price,
    /// Required for entries (except in ATR mode, which derives one).
    pub stop_loss: Option<Price>,
    /// Needed for the reward:risk check.
    pub take_profit: Option<Price>,
    /// Quantity to sell for `Reduce`; ignored otherwise.
    pub quantity: Option<Qty>,
    pub strategy: Option<String>,
}

/// The market for the intent's symbol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketSnapshot {
    pub price: Price,
    pub atr: Option<Price>,
    pub filters: SymbolFilters,
    /// How far under its stop the protective stop-limit sells, % (`trading.stop_limit_offset_pct`):
    /// the loss at the stop is counted at that limit.
    pub stop_limit_offset_pct: Decimal,
}

/// Everything the risk check reads. Time is not needed: the breaker state is passed in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskContext {
    pub equity: Quote,
    /// Free quote balance an entry can spend.
    pub available_balance: Quote,
    pub open_positions: Vec<OpenPosition>,
    pub realised_pnl_today: Quote,
    pub unrealised_pnl: Quote,
    pub start_of_day_equity: Quote,
    pub peak_equity: Quote,
    /// Closed trades, oldest first (Kelly, losing streaks).
    pub closed_trades: Vec<ClosedTrade>,
    pub config: RiskConfig,
    pub market: MarketSnapshot,
    pub breaker: BreakerState,
    /// The deciding book's stop-loss exits in the intent's symbol, for the cooldown and the
    /// lock after stops (`protections`); empty applies neither.
    pub stop_exits: StopExits,
}

/// One check and its verdict. The name is borrowed when the check is made and owned when a
/// stored verdict is read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: std::borrow::Cow<'static, str>,
    pub passed: bool,
    pub detail: String,
}

/// The answer to an intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum RiskVerdict {
    Approved {
        quantity: Qty,
        entry: Price,
        /// Always set for entries; `None` for closes and reductions.
        stop: Option<Price>,
        take_profit: Option<Price>,
        notional: Quote,
        /// Money lost if the stop fills at its limit: the price distance, both fees, the entry's
        /// slippage and a base-asset fee's dust included (`sizing::loss_at_stop`).
        risk_amount: Quote,
        checks: Vec<Check>,
    },
    Refused {
        reasons: Vec<String>,
        checks: Vec<Check>,
    },
}

impl RiskVerdict {
    pub fn is_approved(&self) -> bool {
        matches!(self, RiskVerdict::Approved { .. })
    }

    pub fn checks(&self) -> &[Check] {
        match self {
            RiskVerdict::Approved { checks, .. } | RiskVerdict::Refused { checks, .. } => checks,
        }
    }
}

/// Today's loss (realised + unrealised) as % of start-of-day equity; positive = losing.
pub fn daily_loss_pct(realised: Quote, unrealised: Quote, start_of_day_equity: Quote) -> Decimal {
    let loss = -(realised + unrealised).get();
    if start_of_day_equity.get() <= Decimal::ZERO {
        return if loss > Decimal::ZERO {
            Decimal::ONE_HUNDRED
        } else {
            Decimal::ZERO
        };
    }
    loss.checked_div(start_of_day_equity.get())
        .and_then(|r| r.checked_mul(Decimal::ONE_HUNDRED))
        .unwrap_or(Decimal::MAX)
}

/// Drawdown of `equity` from `peak`, % (zero at or above the peak).
pub fn drawdown_pct(equity: Quote, peak: Quote) -> Decimal {
    if peak.get() <= Decimal::ZERO || equity >= peak {
        return Decimal::ZERO;
    }
    (peak - equity).get() / peak.get() * Decimal::ONE_HUNDRED
}

/// Largest multiple of `step` with `q × per_unit ≤ budget` (exact: the quotient's last-digit
/// rounding is corrected, so the product never exceeds the budget).
fn floor_qty(budget: Decimal, per_unit: Decimal, step: Decimal) -> Decimal {
    if budget <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    if per_unit <= Decimal::ZERO {
        return Decimal::MAX;
    }
    let Some(units) = budget
        .checked_div(per_unit)
        .and_then(|u| u.checked_div(step))
    else {
        return Decimal::MAX;
    };
    let Some(mut q) = units.floor().checked_mul(step) else {
        return Decimal::MAX;
    };
    while q > Decimal::ZERO && q.checked_mul(per_unit).is_none_or(|v| v > budget) {
        q -= step;
    }
    q.max(Decimal::ZERO)
}

struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, name: &'static str, passed: bool, detail: impl Into<String>) -> bool {
        self.0.push(Check {
            name: std::borrow::Cow::Borrowed(name),
            passed,
            detail: detail.into(),
        });
        passed
    }

    fn refused(self) -> RiskVerdict {
        let reasons = self
            .0
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        RiskVerdict::Refused {
            reasons,
            checks: self.0,
        }
    }

    fn all_passed(&self) -> bool {
        self.0.iter().all(|c| c.passed)
    }
}

fn n(d: Decimal) -> String {
    d.round_dp(8).normalize().to_string()
}

/// Risk management, the seed's name for sizing and limits.
pub struct RiskManagementService;

impl RiskManagementService {
    /// Size and check one intent. Entries pass every limit or are refused; closes and
    /// reductions are always allowed (even with the breaker tripped) subject to the exchange
    /// filters. See the module docs of `sizing` and `heat` for the arithmetic.
    pub fn validate(intent: &TradeIntent, context: &RiskContext) -> RiskVerdict {
        match intent.kind {
            IntentKind::Entry => validate_entry(intent, context),
            IntentKind::Close | IntentKind::Reduce => validate_exit(intent, context),
        }
    }
}

/// Free function form of [`RiskManagementService::validate`].
pub fn validate(intent: &TradeIntent, context: &RiskContext) -> RiskVerdict {
    RiskManagementService::validate(intent, context)
}

fn step_of(filters: &SymbolFilters) -> Decimal {
    if filters.step_size.is_zero() {
        // No lot step on the exchange: still size in whole units of 1e-8.
        Decimal::new(1, 8)
    } else {
        filters.step_size
    }
}

fn validate_exit(intent: &TradeIntent, ctx: &RiskContext) -> RiskVerdict {
    let mut checks = Checks(Vec::new());
    let filters = &ctx.market.filters;
    let held: Decimal = ctx
        .open_positions
        .iter()
        .filter(|p| p.symbol == intent.symbol)
        .map(|p| p.quantity.get())
        .sum();
    checks.add(
        "position_exists",
        held > Decimal::ZERO,
        format!("holding {} {}", n(held), intent.symbol),
    );
    let wanted = match intent.kind {
        IntentKind::Reduce => intent.quantity.map(|q| q.get()).unwrap_or(Decimal::ZERO),
        _ => held,
    };
    let qty = filters.round_market_qty_down(Qty(wanted.min(held))).get();
    let price = ctx.market.price;
    let filter_result = filters
        .check_qty(Qty(qty), true)
        .and_then(|()| filters.check_notional(price * Qty(qty)));
    checks.add(
        "exchange_filters",
        filter_result.is_ok(),
        match &filter_result {
            Ok(()) => format!("sell {} at ~{}", n(qty), price),
            Err(e) => e.to_string(),
        },
    );
    if !checks.all_passed() {
        return checks.refused();
    }
    RiskVerdict::Approved {
        quantity: Qty(qty),
        entry: price,
        stop: None,
        take_profit: None,
        notional: price * Qty(qty),
        risk_amount: Quote::ZERO,
        checks: checks.0,
    }
}

/// Whether `stop` leaves the entry room: strictly under the entry's tick (a stop rounded onto
/// the entry bounds no loss) and at least `min_stop_distance_pct` of the entry and
/// `min_stop_atr_multiple` × ATR under it (a tighter stop is hit by the spread and fees alone).
fn stop_distance_check(entry: Price, stop: Price, ctx: &RiskContext) -> (bool, String) {
    let cfg = &ctx.config;
    let distance = entry.get() - stop.get();
    if distance <= Decimal::ZERO {
        return (
            false,
            format!(
                "the stop {stop} rounds onto the entry {entry} (tick {}): it bounds no loss",
                n(ctx.market.filters.tick_size)
            ),
        );
    }
    let pct = distance / entry.get() * Decimal::ONE_HUNDRED;
    if pct < cfg.min_stop_distance_pct {
        return (
            false,
            format!(
                "the stop {stop} is {} % under the entry {entry}; risk.min_stop_distance_pct is {} %",
                n(pct.round_dp(6)),
                n(cfg.min_stop_distance_pct)
            ),
        );
    }
    if let Some(atr) = ctx
        .market
        .atr
        .filter(|_| cfg.min_stop_atr_multiple > Decimal::ZERO)
    {
        let least = atr.get() * cfg.min_stop_atr_multiple;
        if distance < least {
            return (
                false,
                format!(
                    "the stop {stop} is {} under the entry {entry}; risk.min_stop_atr_multiple asks for {} × ATR {} = {}",
                    n(distance),
                    n(cfg.min_stop_atr_multiple),
                    n(atr.get()),
                    n(least)
                ),
            );
        }
    }
    (
        true,
        format!("stop {stop} is {} % under the entry", n(pct.round_dp(4))),
    )
}

fn validate_entry(intent: &TradeIntent, ctx: &RiskContext) -> RiskVerdict {
    let cfg = &ctx.config;
    let filters = &ctx.market.filters;
    let hundred = Decimal::ONE_HUNDRED;
    let equity = ctx.equity.get();
    let mut checks = Checks(Vec::new());

    checks.add(
        "long_only",
        intent.side == Side::Buy,
        if intent.side == Side::Buy {
            "long entry".to_string()
        } else {
            "short entries are not supported yet".to_string()
        },
    );
    checks.add(
        "breaker_active",
        ctx.breaker == BreakerState::Active,
        format!("circuit breaker is {}", ctx.breaker),
    );
    checks.add(
        "equity_positive",
        equity > Decimal::ZERO,
        format!("equity {}", n(equity)),
    );
    checks.add(
        "min_confidence",
        intent.confidence >= cfg.min_confidence,
        format!(
            "confidence {} vs minimum {}",
            n(intent.confidence),
            n(cfg.min_confidence)
        ),
    );
    let loss_pct = daily_loss_pct(
        ctx.realised_pnl_today,
        ctx.unrealised_pnl,
        ctx.start_of_day_equity,
    );
    checks.add(
        "daily_loss_limit",
        loss_pct < cfg.max_daily_loss_pct,
        format!(
            "today's loss {} % vs limit {} %",
            n(loss_pct),
            n(cfg.max_daily_loss_pct)
        ),
    );
    let dd = drawdown_pct(ctx.equity, ctx.peak_equity);
    checks.add(
        "max_drawdown",
        dd < cfg.max_drawdown_pct,
        format!(
            "drawdown {} % vs limit {} %",
            n(dd),
            n(cfg.max_drawdown_pct)
        ),
    );
    if cfg.cooldown_candles_after_stop > 0 || cfg.stop_lock_count > 0 {
        match ctx.stop_exits.protection(cfg) {
            Some(p) => checks.add(p.name(), false, p.detail()),
            None => checks.add(
                "stop_protections",
                true,
                format!(
                    "no cooldown or lock after stops in {} ({} stop(s) on record)",
                    intent.symbol,
                    ctx.stop_exits.stops.len()
                ),
            ),
        };
    }
    let already_open = ctx.open_positions.iter().any(|p| p.symbol == intent.symbol);
    let open_count = ctx.open_positions.len();
    let max_open = usize::try_from(cfg.max_open_positions).unwrap_or(usize::MAX);
    checks.add(
        "max_open_positions",
        already_open || open_count < max_open,
        format!("{open_count} open vs maximum {max_open}"),
    );

    // Prices on the tick, in the direction that never makes the risk bigger: entry down,
    // stop up, take-profit down (reward:risk is judged on what can actually be ordered).
    let entry = filters.round_price_down(intent.entry);
    let requested_stop = intent.stop_loss.map(|s| filters.round_price_up(s));
    let stop_ok = requested_stop.is_some() || cfg.sizing_mode == super::config::SizingMode::Atr;
    checks.add(
        "stop_loss_required",
        stop_ok,
        match requested_stop {
            Some(s) => format!("stop {s}"),
            None if stop_ok => "stop derived from ATR".to_string(),
            None => "an entry needs a stop-loss".to_string(),
        },
    );
    let price_ok = filters.check_price(entry);
    checks.add(
        "entry_price",
        price_ok.is_ok(),
        match &price_ok {
            Ok(()) => format!("entry {entry}"),
            Err(e) => e.to_string(),
        },
    );

    let sizing = size_position(
        cfg,
        &SizingInputs {
            equity: ctx.equity,
            entry,
            stop: requested_stop,
            atr: ctx.market.atr,
            closed_trades: &ctx.closed_trades,
        },
    );
    let sizing = match sizing {
        Ok(s) => {
            checks.add(
                "sizing",
                true,
                format!(
                    "{:?}: risk budget {} over stop distance {} → {}",
                    s.basis,
                    n(s.risk_budget.get()),
                    n(s.stop_distance),
                    n(s.quantity.get())
                ),
            );
            Some(s)
        }
        Err(e) => {
            checks.add("sizing", false, e.to_string());
            None
        }
    };
    let stop_on_tick = sizing.as_ref().map(|s| filters.round_price_up(s.stop));
    let stop = match stop_on_tick {
        Some(stop) => {
            let (passed, detail) = stop_distance_check(entry, stop, ctx);
            checks.add("min_stop_distance", passed, detail);
            Some(stop).filter(|_| passed)
        }
        None => None,
    };
    let costs = TradeCosts {
        entry_fee_rate: cfg.fee_rate,
        exit_fee_rate: cfg.fee_rate,
        slippage: cfg.slippage_pct / hundred,
        stop_limit_offset: ctx.market.stop_limit_offset_pct / hundred,
    };
    let at_stop = stop.map(|stop| loss_at_stop(intent.entry, stop, &costs, filters));

    let take_profit = intent.take_profit.map(|t| filters.round_price_down(t));
    let rr_detail;
    let rr_ok = match (at_stop.zip(stop), take_profit) {
        (Some((loss, stop)), Some(tp)) => {
            // Both legs after fees and the entry's slippage: what the target nets over what
            // the stop costs when it sells at its trigger. (Sizing counts the worse fill at the
            // stop-limit's limit; judging the trade's odds on that worst case would refuse the
            // plain 2 %/4 % levels whenever the limit offset is wide.)
            let at_trigger = loss_at_stop(
                intent.entry,
                stop,
                &TradeCosts {
                    stop_limit_offset: Decimal::ZERO,
                    ..costs
                },
                filters,
            );
            let rr = loss
                .reward_per_unit(tp, &costs)
                .checked_div(at_trigger.per_unit_quote_fee)
                .unwrap_or(Decimal::MAX);
            rr_detail = format!(
                "reward:risk {} after fees vs minimum {}",
                n(rr),
                n(cfg.min_reward_risk)
            );
            rr >= cfg.min_reward_risk
        }
        (_, None) if cfg.min_reward_risk.is_zero() => {
            rr_detail = "no take-profit; no minimum set".to_string();
            true
        }
        (_, None) => {
            rr_detail = "a take-profit is needed to judge reward:risk".to_string();
            false
        }
        (None, Some(_)) => {
            rr_detail = "no valid stop to judge reward:risk".to_string();
            false
        }
    };
    checks.add("min_reward_risk", rr_ok, rr_detail);

    let (Some(sizing), Some(stop), Some(at_stop)) = (sizing, stop, at_stop) else {
        return checks.refused();
    };
    let step = step_of(filters);
    // ATR mode sizes on k×ATR when that is wider than the stop: the extra distance is added to
    // the per-unit loss, so the size never grows past the price-only ATR size.
    let extra = (sizing.stop_distance - (entry.get() - stop.get())).max(Decimal::ZERO);
    let per_unit_risk = at_stop.per_unit_quote_fee + extra;
    let per_unit_risk_base_fee = at_stop.per_unit_base_fee + extra;

    // Caps, each as the most quantity it allows.
    let budget = sizing.risk_budget.get();
    let mut qty = floor_qty(budget, per_unit_risk, step).min(floor_qty(
        budget - at_stop.dust,
        per_unit_risk_base_fee,
        step,
    ));
    let risk_qty = qty;
    let max_notional = equity * cfg.max_position_pct / hundred;
    let position_cap = floor_qty(max_notional, entry.get(), step);
    let balance_cap = floor_qty(
        ctx.available_balance.get(),
        entry.get() * (Decimal::ONE + cfg.fee_rate),
        step,
    );
    let held_notional: Decimal = ctx
        .open_positions
        .iter()
        .filter(|p| p.symbol == intent.symbol)
        .map(|p| p.notional().get())
        .sum();
    let symbol_room = equity * cfg.max_symbol_exposure_pct / hundred - held_notional;
    let symbol_cap = floor_qty(symbol_room, entry.get(), step);
    let heat = PortfolioHeatService::measure(&ctx.open_positions, ctx.equity, cfg.heat_cap_pct);
    let heat_cap = floor_qty(heat.room.get(), per_unit_risk, step);
    let requested_cap = intent
        .size_pct
        .map(|pct| floor_qty(equity * pct / hundred, entry.get(), step));
    let exchange_cap = if filters.max_qty.is_zero() {
        Decimal::MAX
    } else {
        (filters.max_qty / step).floor() * step
    };

    // The limit that sets the size, in the trader's words: a refusal names it.
    let mut binding = format!(
        "at the {} % risk per trade ({} after fees to the stop's limit {})",
        n(cfg.risk_per_trade_pct),
        n(budget),
        at_stop.stop_limit
    );
    let symbol = &intent.symbol;
    let mut bind = |cap: Decimal, why: String| {
        if cap < qty {
            qty = cap;
            binding = why;
        }
    };
    bind(
        position_cap,
        format!("at the {} % position size cap", n(cfg.max_position_pct)),
    );
    bind(
        balance_cap,
        format!(
            "with the {} {} available",
            n(ctx.available_balance.get()),
            filters.quote_asset
        ),
    );
    bind(
        symbol_cap,
        format!(
            "at the {} % {symbol} exposure cap",
            n(cfg.max_symbol_exposure_pct)
        ),
    );
    bind(
        heat_cap,
        format!("at the {} % portfolio heat cap", n(cfg.heat_cap_pct)),
    );
    if let Some(cap) = requested_cap {
        bind(cap, "at the size the decision asked for".to_string());
    }
    bind(
        exchange_cap,
        "at the exchange's largest quantity".to_string(),
    );
    if !filters.min_qty.is_zero() && !filters.step_size.is_zero() {
        // Binance counts steps from min_qty; keep the quantity on that grid.
        let above = qty - filters.min_qty;
        if above >= Decimal::ZERO {
            qty = filters.min_qty + (above / step).floor() * step;
        }
    }

    checks.add(
        "max_position_size",
        position_cap > Decimal::ZERO,
        format!(
            "notional cap {} ({} % of equity)",
            n(max_notional),
            n(cfg.max_position_pct)
        ),
    );
    checks.add(
        "available_balance",
        balance_cap > Decimal::ZERO,
        format!(
            "{} available, fee reserve {} %",
            n(ctx.available_balance.get()),
            n(cfg.fee_rate * hundred)
        ),
    );
    checks.add(
        "symbol_exposure",
        symbol_room > Decimal::ZERO,
        format!(
            "{} already in {}, cap {} % of equity",
            n(held_notional),
            intent.symbol,
            n(cfg.max_symbol_exposure_pct)
        ),
    );
    checks.add(
        "portfolio_heat",
        heat.room.get() > Decimal::ZERO,
        format!(
            "heat {} % of equity vs cap {} %, room {}",
            n(heat.heat_pct),
            n(cfg.heat_cap_pct),
            n(heat.room.get())
        ),
    );
    let resized = if qty < risk_qty {
        format!("resized from {} to {} by the caps", n(risk_qty), n(qty))
    } else {
        format!("{} after rounding to step {}", n(qty), n(step))
    };
    let notional = entry * Qty(qty);
    let filter_result = filters
        .check_qty(Qty(qty), false)
        .and_then(|()| filters.check_notional(notional));
    checks.add(
        "exchange_filters",
        filter_result.is_ok(),
        match &filter_result {
            Ok(()) => resized,
            Err(e) => format!(
                "{} {symbol} can be bought {binding}, under the exchange's minimum ({e})",
                n(qty)
            ),
        },
    );

    if !checks.all_passed() {
        return checks.refused();
    }
    RiskVerdict::Approved {
        quantity: Qty(qty),
        entry,
        stop: Some(stop),
        take_profit,
        notional,
        // What the stop really costs (ATR's wider sizing distance is not lost at this stop).
        risk_amount: Quote(at_stop.of(qty)),
        checks: checks.0,
    }
}
