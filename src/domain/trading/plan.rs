//! The pure step between a decision and an order: what the decision asks of the account
//! (`intent_for`), what the risk verdict then allows (`Plan`), and how exit fills are booked
//! (`book_exit`). The trading service only carries a plan's steps out, so every rule here is
//! tested without SQLite or an exchange.

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use crate::domain::decision::{Action, DecisionInput, TradingDecision, level_price};
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::{IntentKind, RiskVerdict, TradeIntent};
use crate::domain::trading::order::Side;
use crate::domain::trading::{
    FillEffect, Position, PositionError, PositionFill, PositionService, PositionSide, SymbolFilters,
};

/// What became of one decision (or one manual close). Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionOutcome {
    /// Orders were sent and the position is booked (and protected, for an entry).
    Executed,
    /// The risk layer refused it; nothing was sent.
    Refused,
    /// The decision was HOLD.
    #[default]
    Hold,
    /// The decision failed validation.
    Invalid,
    /// The engine failed (LLM error, budget spent…).
    Error,
    /// Trading is paused or not reconciled; nothing was sent.
    Paused,
    /// The live guard refused, or an earlier fill on the symbol is not booked and protected yet.
    Blocked,
    /// The entry filled but could not be protected; the position was closed at market.
    ProtectionFailed,
    /// Nothing the account can do (a SELL with no long open: shorts are not traded).
    NothingToDo,
    /// The entry was accepted but did not fill.
    NotFilled,
    /// A limit entry was accepted and rests on the book, nothing filled yet: the order
    /// monitor books and protects what fills, and cancels it at its time-out.
    Resting,
    /// A close found the position already closed by its protection; nothing sold.
    AlreadyClosed,
}

impl ExecutionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionOutcome::Executed => "executed",
            ExecutionOutcome::Refused => "refused",
            ExecutionOutcome::Hold => "hold",
            ExecutionOutcome::Invalid => "invalid",
            ExecutionOutcome::Error => "error",
            ExecutionOutcome::Paused => "paused",
            ExecutionOutcome::Blocked => "blocked",
            ExecutionOutcome::ProtectionFailed => "protection_failed",
            ExecutionOutcome::NothingToDo => "nothing_to_do",
            ExecutionOutcome::NotFilled => "not_filled",
            ExecutionOutcome::Resting => "resting",
            ExecutionOutcome::AlreadyClosed => "already_closed",
        }
    }
}

impl std::fmt::Display for ExecutionOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the service is to do with an approved (or refused) intent.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Send nothing; record the decision with this outcome.
    Nothing {
        outcome: ExecutionOutcome,
        message: String,
    },
    /// Buy `quantity` at market; protect the position with `stop` (and `target`).
    Enter {
        quantity: Qty,
        stop: Option<Price>,
        target: Option<Price>,
    },
    /// Cancel the position's protection and sell what is still open.
    Close,
}

/// The plan for an intent under its risk verdict. `position` is the open position in the
/// intent's symbol (read under the symbol's trading lock).
pub fn plan(intent: &TradeIntent, verdict: &RiskVerdict, position: Option<&Position>) -> Plan {
    match verdict {
        RiskVerdict::Refused { reasons, .. } => Plan::Nothing {
            outcome: ExecutionOutcome::Refused,
            message: reasons.join("; "),
        },
        RiskVerdict::Approved {
            quantity,
            stop,
            take_profit,
            ..
        } => match (intent.kind, position) {
            (IntentKind::Entry, _) => Plan::Enter {
                quantity: *quantity,
                stop: *stop,
                target: *take_profit,
            },
            (_, Some(_)) => Plan::Close,
            (_, None) => Plan::Nothing {
                outcome: ExecutionOutcome::NothingToDo,
                message: format!("no open position in {} to close", intent.symbol),
            },
        },
    }
}

/// The risk intent a decision asks for, given the open position (if any); `None` when the
/// decision asks for nothing the account can do (HOLD, a SELL with no long open: shorts are
/// not traded). Percent levels are measured from the snapshot's price.
pub fn intent_for(
    decision: &TradingDecision,
    input: &DecisionInput,
    market_price: Price,
    position: Option<&Position>,
    strategy: Option<String>,
) -> Option<TradeIntent> {
    let confidence = Decimal::from_f64(decision.confidence).unwrap_or(Decimal::ZERO);
    let reference = input.price.get();
    match decision.action {
        Action::Buy => Some(TradeIntent {
            symbol: input.symbol.clone(),
            side: Side::Buy,
            kind: IntentKind::Entry,
            confidence,
            size_pct: Decimal::from_f64(decision.position_size_pct),
            entry: market_price,
            stop_loss: decision
                .stop_loss
                .and_then(|l| level_price(l, reference, true))
                .map(Price),
            take_profit: decision
                .take_profit
                .and_then(|l| level_price(l, reference, false))
                .map(Price),
            quantity: None,
            strategy,
        }),
        Action::Sell | Action::Close => {
            let p = position.filter(|p| p.side == PositionSide::Long)?;
            Some(TradeIntent {
                symbol: input.symbol.clone(),
                side: Side::Sell,
                kind: IntentKind::Close,
                confidence,
                size_pct: None,
                entry: market_price,
                stop_loss: None,
                take_profit: None,
                quantity: Some(p.quantity),
                strategy,
            })
        }
        Action::Hold => None,
    }
}

/// Apply closing fills; a remainder below one lot step (fee dust the exchange will not sell)
/// is closed at the last fill's price so the position does not linger.
pub fn book_exit(
    position: &mut Position,
    fills: &[PositionFill],
    filters: &SymbolFilters,
) -> Result<Quote, PositionError> {
    let mut realised = Quote::ZERO;
    let mut last_price = None;
    for f in fills {
        if position.closed_at.is_some() {
            break;
        }
        let mut f = f.clone();
        f.quantity = f.quantity.min(position.quantity);
        if !f.quantity.is_positive() {
            continue;
        }
        last_price = Some((f.price, f.time));
        realised += match PositionService::apply(position, &f)? {
            FillEffect::Reduced { realized } | FillEffect::Closed { realized } => realized,
            _ => Quote::ZERO,
        };
    }
    if position.closed_at.is_none()
        && filters.round_qty_down(position.quantity).is_zero()
        && let Some((price, time)) = last_price
    {
        let dust = PositionFill {
            symbol: position.symbol.clone(),
            side: position.side.opening_side().opposite(),
            price,
            quantity: position.quantity,
            fee: Quote::ZERO,
            time,
        };
        if let FillEffect::Closed { realized } = PositionService::apply(position, &dust)? {
            realised += realized;
        }
    }
    Ok(realised)
}

/// What protection a position needs, from its open stop leg's quantity (if any): the exchange
/// must hold a stop for exactly the sellable quantity — never less (part of the position naked)
/// and never more (a stop that sells other holdings of the asset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectionNeed {
    /// The open stop covers the sellable quantity exactly.
    Covered,
    /// Nothing left to protect: the position is dust the exchange will not sell (under one
    /// lot step, `minQty` or the minimum notional; see [`sellable_part`]).
    Dust,
    /// No stop-loss level is known for the position: a person must protect or close it.
    NoStopLevel,
    /// No open stop on the exchange: place one.
    Place,
    /// The open stop's quantity differs from the position's: cancel it and place one.
    Replace,
}

/// A position's quantity split into what the exchange will sell (and so what its protection
/// covers) and the dust it will not: the part under one lot step (after a fee taken in the
/// base asset), or the whole quantity when what is left on the step is under `minQty` or its
/// notional at the stop (the entry when there is no stop) is under the minimum notional.
/// Dust cannot be protected or sold, so it is reported as dust, never as unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sellable {
    pub sellable: Qty,
    pub dust: Qty,
}

pub fn sellable_part(position: &Position, filters: &SymbolFilters) -> Sellable {
    let on_step = filters.round_qty_down(position.quantity);
    let price = position.stop_loss.unwrap_or(position.entry_price);
    let sellable = if on_step.is_zero()
        || on_step.get() < filters.min_qty
        || filters.check_notional(price * on_step).is_err()
    {
        Qty::ZERO
    } else {
        on_step
    };
    Sellable {
        sellable,
        dust: Qty(position.quantity.get() - sellable.get()),
    }
}

pub fn protection_need(
    position: &Position,
    open_stop_qty: Option<Qty>,
    filters: &SymbolFilters,
) -> ProtectionNeed {
    let sellable = sellable_part(position, filters).sellable;
    if sellable.is_zero() {
        return ProtectionNeed::Dust;
    }
    match open_stop_qty {
        Some(q) if q == sellable => ProtectionNeed::Covered,
        _ if position.stop_loss.is_none() => ProtectionNeed::NoStopLevel,
        Some(_) => ProtectionNeed::Replace,
        None => ProtectionNeed::Place,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::risk::RiskVerdict;
    use crate::domain::symbol::Symbol;
    use rust_decimal_macros::dec;

    fn filters() -> SymbolFilters {
        let mut f = SymbolFilters::permissive("BTC", "USDT");
        f.step_size = dec!(0.00001);
        f.min_qty = dec!(0.00001);
        f
    }

    fn long(qty: Decimal, stop: Option<Decimal>) -> Position {
        let fill = PositionFill {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            price: Price(dec!(50000)),
            quantity: Qty(qty),
            fee: Quote::ZERO,
            time: 0,
        };
        let mut p = PositionService::open(&fill, PositionSide::Long).unwrap();
        p.stop_loss = stop.map(Price);
        p
    }

    fn intent(kind: IntentKind) -> TradeIntent {
        TradeIntent {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            kind,
            confidence: Decimal::ONE,
            size_pct: None,
            entry: Price(dec!(50000)),
            stop_loss: None,
            take_profit: None,
            quantity: None,
            strategy: None,
        }
    }

    #[test]
    fn a_refusal_plans_nothing_and_says_every_reason() {
        let verdict = RiskVerdict::Refused {
            reasons: vec!["daily loss limit".into(), "heat".into()],
            checks: vec![],
        };
        assert_eq!(
            plan(&intent(IntentKind::Entry), &verdict, None),
            Plan::Nothing {
                outcome: ExecutionOutcome::Refused,
                message: "daily loss limit; heat".into()
            }
        );
    }

    #[test]
    fn protection_is_placed_replaced_or_left_by_the_open_stops_quantity() {
        let f = filters();
        let p = long(dec!(0.01998), Some(dec!(49000)));
        assert_eq!(protection_need(&p, None, &f), ProtectionNeed::Place);
        assert_eq!(
            protection_need(&p, Some(Qty(dec!(0.01998))), &f),
            ProtectionNeed::Covered
        );
        // A stop for the old quantity after an add, or for more than is held, is replaced.
        assert_eq!(
            protection_need(&p, Some(Qty(dec!(0.00999))), &f),
            ProtectionNeed::Replace
        );
        assert_eq!(
            protection_need(&p, Some(Qty(dec!(0.03))), &f),
            ProtectionNeed::Replace
        );
        assert_eq!(
            protection_need(&long(dec!(0.01998), None), None, &f),
            ProtectionNeed::NoStopLevel
        );
        assert_eq!(
            protection_need(&long(dec!(0.000009), Some(dec!(49000))), None, &f),
            ProtectionNeed::Dust
        );
    }

    #[test]
    fn what_the_exchange_will_not_sell_is_dust_not_a_position_to_protect() {
        let mut f = filters();
        f.min_notional = dec!(5);
        // A base-asset fee leaves 0.02075922 of a 0.02078 buy: 0.02075 is sold by the
        // protection, 0.00000922 is under the 0.00001 step.
        let p = long(dec!(0.02075922), Some(dec!(47000)));
        assert_eq!(
            sellable_part(&p, &f),
            Sellable {
                sellable: Qty(dec!(0.02075)),
                dust: Qty(dec!(0.00000922))
            }
        );
        assert_eq!(
            protection_need(&p, Some(Qty(dec!(0.02075))), &f),
            ProtectionNeed::Covered
        );
        // 0.00009 on the step but worth 0.00009 × 49000 = 4.41 at its stop, under the 5
        // minimum notional: the whole of it is dust, nothing to place.
        let small = long(dec!(0.00009), Some(dec!(49000)));
        assert_eq!(sellable_part(&small, &f).dust, Qty(dec!(0.00009)));
        assert_eq!(protection_need(&small, None, &f), ProtectionNeed::Dust);
        // 0.00011 × 49000 = 5.39 can be sold: protected.
        let enough = long(dec!(0.00011), Some(dec!(49000)));
        assert_eq!(protection_need(&enough, None, &f), ProtectionNeed::Place);
        // Under minQty on the step: dust.
        f.min_qty = dec!(0.001);
        assert_eq!(
            protection_need(&long(dec!(0.0009), Some(dec!(49000))), None, &f),
            ProtectionNeed::Dust
        );
    }

    #[test]
    fn outcomes_serialise_as_their_stored_names() {
        for o in [
            ExecutionOutcome::Executed,
            ExecutionOutcome::ProtectionFailed,
            ExecutionOutcome::NothingToDo,
            ExecutionOutcome::AlreadyClosed,
        ] {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<ExecutionOutcome>(&json).unwrap(), o);
        }
    }
}
