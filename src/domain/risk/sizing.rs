//! Position sizing before any cap: how much to buy so that a stop-out loses the risk budget.
//! Three modes (the seed's): fixed fraction, fractional Kelly, ATR. `risk_per_trade_pct` is the
//! ceiling in every mode: Kelly and ATR may size smaller than fixed, never larger.

use super::breaker::ClosedTrade;
use super::config::{RiskConfig, SizingMode};
use crate::domain::money::{Price, Qty, Quote};
use rust_decimal::Decimal;
use serde::Serialize;

/// What sizing needs to know.
#[derive(Debug, Clone, Copy)]
pub struct SizingInputs<'a> {
    pub equity: Quote,
    /// Entry price (already on the tick).
    pub entry: Price,
    /// The stop the intent asked for, if any (already on the tick).
    pub stop: Option<Price>,
    /// Average true range of the symbol, for ATR mode.
    pub atr: Option<Price>,
    /// Closed trades, oldest first, for Kelly.
    pub closed_trades: &'a [ClosedTrade],
}

/// The mode actually used (Kelly falls back to fixed with too few trades).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SizingBasis {
    Fixed,
    Kelly,
    KellyFallbackToFixed,
    Atr,
}

/// Raw size before caps and exchange rounding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizing {
    pub basis: SizingBasis,
    /// Money the trade may lose between entry and stop.
    pub risk_budget: Quote,
    /// Stop used (the intent's, or entry − k×ATR in ATR mode without one).
    pub stop: Price,
    /// Distance the quantity is sized against.
    pub stop_distance: Decimal,
    /// `risk_budget ÷ stop_distance`, not yet rounded.
    pub quantity: Qty,
    /// Kelly fraction in % of equity (after the fractional multiplier), when Kelly was used.
    pub kelly_pct: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    #[error("equity {0} is not positive")]
    NoEquity(Quote),
    #[error("an entry needs a stop-loss below the entry price")]
    NoStop,
    #[error("stop-loss {stop} is not below the entry {entry} (on the tick): it bounds no loss")]
    StopNotBelowEntry { stop: Price, entry: Price },
    #[error("ATR sizing needs a positive ATR")]
    NoAtr,
    #[error("Kelly gives no edge (win rate {win_rate_pct} %, payoff {payoff}): no trade")]
    NoEdge {
        win_rate_pct: Decimal,
        payoff: Decimal,
    },
}

/// Kelly fraction f = W − (1 − W) / R from closed trades (W: win rate, R: average win ÷ average
/// loss), or `None` when it is undefined (no trades). Not yet floored, scaled or capped.
pub fn kelly_fraction(trades: &[ClosedTrade]) -> Option<(Decimal, Decimal, Decimal)> {
    if trades.is_empty() {
        return None;
    }
    let wins: Vec<Decimal> = trades
        .iter()
        .map(|t| t.pnl.get())
        .filter(|p| *p > Decimal::ZERO)
        .collect();
    let losses: Vec<Decimal> = trades
        .iter()
        .map(|t| t.pnl.get())
        .filter(|p| *p < Decimal::ZERO)
        .collect();
    let n = Decimal::from(trades.len());
    let w = Decimal::from(wins.len()) / n;
    if losses.is_empty() {
        // No loss seen: the payoff ratio is unbounded and f = W.
        return Some((w, w, Decimal::ZERO));
    }
    if wins.is_empty() {
        return Some((-Decimal::ONE, w, Decimal::ZERO));
    }
    let avg_win = wins.iter().sum::<Decimal>() / Decimal::from(wins.len());
    let avg_loss = -losses.iter().sum::<Decimal>() / Decimal::from(losses.len());
    // A vanishing average loss makes the payoff unbounded: f tends to W.
    let Some(r) = avg_win.checked_div(avg_loss) else {
        return Some((w, w, Decimal::MAX));
    };
    let f = (Decimal::ONE - w).checked_div(r).map_or(w, |x| w - x);
    Some((f, w, r))
}

/// Size one long entry per `config.sizing_mode`. See the module doc for the modes.
///
/// ATR mode: the stop distance is k × ATR; when the intent also gives a stop, the WIDER of the
/// two distances is used so the money lost at the real stop never exceeds the budget, and the
/// intent's stop is kept. Without a stop, the stop becomes entry − k × ATR.
pub fn size_position(
    config: &RiskConfig,
    inputs: &SizingInputs<'_>,
) -> Result<Sizing, SizingError> {
    if inputs.equity.get() <= Decimal::ZERO {
        return Err(SizingError::NoEquity(inputs.equity));
    }
    let hundred = Decimal::ONE_HUNDRED;
    let fixed_budget = inputs.equity.get() * config.risk_per_trade_pct / hundred;
    let entry = inputs.entry;
    let (stop, distance) = match config.sizing_mode {
        SizingMode::Atr => {
            let atr = inputs
                .atr
                .filter(|a| a.is_positive())
                .ok_or(SizingError::NoAtr)?;
            let atr_distance = atr.get() * config.atr_multiplier;
            match inputs.stop {
                Some(stop) => {
                    let d = entry.get() - stop.get();
                    if d <= Decimal::ZERO {
                        return Err(SizingError::StopNotBelowEntry { stop, entry });
                    }
                    (stop, d.max(atr_distance))
                }
                None => {
                    let stop = Price(entry.get() - atr_distance);
                    if !stop.is_positive() {
                        return Err(SizingError::StopNotBelowEntry { stop, entry });
                    }
                    (stop, atr_distance)
                }
            }
        }
        _ => {
            let stop = inputs.stop.ok_or(SizingError::NoStop)?;
            let d = entry.get() - stop.get();
            if d <= Decimal::ZERO {
                return Err(SizingError::StopNotBelowEntry { stop, entry });
            }
            (stop, d)
        }
    };
    let (basis, budget, kelly_pct) = match config.sizing_mode {
        SizingMode::Fixed => (SizingBasis::Fixed, fixed_budget, None),
        SizingMode::Atr => (SizingBasis::Atr, fixed_budget, None),
        SizingMode::Kelly => {
            let lookback = usize::try_from(config.kelly_lookback).unwrap_or(usize::MAX);
            let trades =
                &inputs.closed_trades[inputs.closed_trades.len().saturating_sub(lookback)..];
            let enough =
                trades.len() >= usize::try_from(config.kelly_min_trades).unwrap_or(usize::MAX);
            match (enough, kelly_fraction(trades)) {
                (true, Some((f, w, r))) => {
                    if f <= Decimal::ZERO {
                        return Err(SizingError::NoEdge {
                            win_rate_pct: (w * hundred).round_dp(2),
                            payoff: r.round_dp(4),
                        });
                    }
                    let pct = (f * config.kelly_fraction * hundred)
                        .min(config.kelly_cap_pct)
                        .min(config.risk_per_trade_pct);
                    (
                        SizingBasis::Kelly,
                        inputs.equity.get() * pct / hundred,
                        Some(pct),
                    )
                }
                _ => (SizingBasis::KellyFallbackToFixed, fixed_budget, None),
            }
        }
    };
    Ok(Sizing {
        basis,
        risk_budget: Quote(budget),
        stop,
        stop_distance: distance,
        quantity: Qty(budget.checked_div(distance).unwrap_or(Decimal::MAX)),
        kelly_pct,
    })
}

/// The costs between an entry and its stop that the price distance alone does not show: the
/// fees both ways, the slippage of the market entry and the stop-limit's offset under the stop.
/// Rates are fractions (0.001 = 0.1 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeCosts {
    /// Fee of the (taker) market entry.
    pub entry_fee_rate: Decimal,
    /// Fee of the stop's sell (taker: a triggered stop-limit takes liquidity).
    pub exit_fee_rate: Decimal,
    /// Worst the market entry may fill above its reference price.
    pub slippage: Decimal,
    /// How far under the stop its limit price sits (`trading.stop_limit_offset_pct`).
    pub stop_limit_offset: Decimal,
}

/// The loss of a long at its stop per unit bought, fees, slippage and the fee asset included,
/// with the quantity-independent part (step dust) apart. See [`loss_at_stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopLoss {
    /// Worst price the entry pays per unit (reference × (1 + slippage), on the tick, up).
    pub entry_fill: Price,
    /// The price the stop sells at when it fills at its limit.
    pub stop_limit: Price,
    /// Loss per unit when the entry fee is paid in the quote asset: the whole quantity is sold.
    pub per_unit_quote_fee: Decimal,
    /// Loss per unit when the fee is taken from the base asset bought (what is held, and so
    /// what the stop can sell, is `q × (1 − fee)`)...
    pub per_unit_base_fee: Decimal,
    /// ...plus at most one lot step left unsold under the exchange's step (dust, counted lost).
    pub dust: Decimal,
}

impl StopLoss {
    /// The loss at the stop of `qty` bought: the worse of the two fee assets.
    pub fn of(&self, qty: Decimal) -> Decimal {
        (qty * self.per_unit_quote_fee).max(qty * self.per_unit_base_fee + self.dust)
    }

    /// The post-fee gain per unit at `target` (the worse of the two fee assets), for reward:risk.
    pub fn reward_per_unit(&self, target: Price, costs: &TradeCosts) -> Decimal {
        let e = self.entry_fill.get();
        let sold = target.get() * (Decimal::ONE - costs.exit_fee_rate);
        let quote_fee = sold - e * (Decimal::ONE + costs.entry_fee_rate);
        let base_fee = sold * (Decimal::ONE - costs.entry_fee_rate) - e;
        quote_fee.min(base_fee)
    }
}

/// What a long entered at `entry` (reference price) and stopped at `stop` (on the tick) loses
/// when the stop sells at its limit, under `costs` and the exchange `filters` (the limit is
/// rounded down to the tick, as the protective order is; the held quantity down to the step).
pub fn loss_at_stop(
    entry: Price,
    stop: Price,
    costs: &TradeCosts,
    filters: &crate::domain::trading::filters::SymbolFilters,
) -> StopLoss {
    let one = Decimal::ONE;
    let entry_fill = filters.round_price_up(Price(entry.get() * (one + costs.slippage)));
    let stop_limit = filters.round_price_down(Price(stop.get() * (one - costs.stop_limit_offset)));
    let e = entry_fill.get();
    let sold = stop_limit.get() * (one - costs.exit_fee_rate);
    let step = if filters.step_size.is_zero() {
        Decimal::ZERO
    } else {
        filters.step_size
    };
    StopLoss {
        entry_fill,
        stop_limit,
        per_unit_quote_fee: e * (one + costs.entry_fee_rate) - sold,
        per_unit_base_fee: e - sold * (one - costs.entry_fee_rate),
        // No fee taken from the base asset, no quantity off the step grid.
        dust: if costs.entry_fee_rate.is_zero() {
            Decimal::ZERO
        } else {
            step * sold
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn trades(pnls: &[Decimal]) -> Vec<ClosedTrade> {
        pnls.iter()
            .enumerate()
            .map(|(i, p)| ClosedTrade {
                pnl: Quote(*p),
                closed_at: i64::try_from(i).unwrap(),
            })
            .collect()
    }

    fn inputs<'a>(
        stop: Option<Decimal>,
        atr: Option<Decimal>,
        closed: &'a [ClosedTrade],
    ) -> SizingInputs<'a> {
        SizingInputs {
            equity: Quote(dec!(10000)),
            entry: Price(dec!(100)),
            stop: stop.map(Price),
            atr: atr.map(Price),
            closed_trades: closed,
        }
    }

    #[test]
    fn fixed_fraction_risks_one_percent_between_entry_and_stop() {
        // 1 % of 10 000 = 100 at risk; 100 / (100 - 95) = 20 units.
        let s = size_position(&RiskConfig::default(), &inputs(Some(dec!(95)), None, &[])).unwrap();
        assert_eq!(s.basis, SizingBasis::Fixed);
        assert_eq!(s.risk_budget, Quote(dec!(100)));
        assert_eq!(s.quantity, Qty(dec!(20)));
    }

    #[test]
    fn fixed_fraction_refuses_a_missing_or_inverted_stop() {
        let c = RiskConfig::default();
        assert_eq!(
            size_position(&c, &inputs(None, None, &[])),
            Err(SizingError::NoStop)
        );
        assert!(matches!(
            size_position(&c, &inputs(Some(dec!(100)), None, &[])),
            Err(SizingError::StopNotBelowEntry { .. })
        ));
    }

    #[test]
    fn kelly_uses_win_rate_and_payoff_times_the_fraction() {
        // 20 trades: 12 wins of +30, 8 losses of -20. W = 0.6, R = 1.5,
        // f = 0.6 - 0.4 / 1.5 = 0.3333..; × 0.25 = 8.33 % → capped at kelly_cap 2 % → then at
        // risk_per_trade 1 %. Raise risk_per_trade to 5 and kelly_cap to 25 to see the raw value.
        let mut pnl = vec![dec!(30); 12];
        pnl.extend(vec![dec!(-20); 8]);
        let closed = trades(&pnl);
        let c = RiskConfig {
            sizing_mode: SizingMode::Kelly,
            risk_per_trade_pct: dec!(10),
            kelly_cap_pct: dec!(25),
            ..RiskConfig::default()
        };
        let s = size_position(&c, &inputs(Some(dec!(95)), None, &closed)).unwrap();
        assert_eq!(s.basis, SizingBasis::Kelly);
        let pct = s.kelly_pct.unwrap();
        assert_eq!(pct.round_dp(6), dec!(8.333333));
        // 10 000 × 8.3333 % = 833.33; / 5 = 166.67 units
        assert_eq!(s.risk_budget.get().round_dp(2), dec!(833.33));
        assert_eq!(s.quantity.get().round_dp(2), dec!(166.67));
        // With the default caps, the 1 % risk per trade is the ceiling.
        let c = RiskConfig {
            sizing_mode: SizingMode::Kelly,
            ..RiskConfig::default()
        };
        let s = size_position(&c, &inputs(Some(dec!(95)), None, &closed)).unwrap();
        assert_eq!(s.kelly_pct, Some(dec!(1)));
        assert_eq!(s.quantity, Qty(dec!(20)));
    }

    #[test]
    fn kelly_with_a_small_edge_sizes_below_fixed() {
        // 10 wins of +10, 10 losses of -10: W = 0.5, R = 1, f = 0 → no edge, no trade.
        let mut pnl = vec![dec!(10); 10];
        pnl.extend(vec![dec!(-10); 10]);
        let c = RiskConfig {
            sizing_mode: SizingMode::Kelly,
            ..RiskConfig::default()
        };
        assert!(matches!(
            size_position(&c, &inputs(Some(dec!(95)), None, &trades(&pnl))),
            Err(SizingError::NoEdge { .. })
        ));
        // 11 wins of +10, 9 losses of -10: W = 0.55, R = 1, f = 0.1; × 0.25 = 2.5 % → cap 2 % →
        // risk_per_trade 1 %. With risk_per_trade 5 and cap 25: 2.5 % of 10 000 = 250 / 5 = 50.
        let mut pnl = vec![dec!(10); 11];
        pnl.extend(vec![dec!(-10); 9]);
        let c = RiskConfig {
            sizing_mode: SizingMode::Kelly,
            risk_per_trade_pct: dec!(5),
            kelly_cap_pct: dec!(25),
            ..RiskConfig::default()
        };
        let s = size_position(&c, &inputs(Some(dec!(95)), None, &trades(&pnl))).unwrap();
        assert_eq!(s.kelly_pct, Some(dec!(2.5)));
        assert_eq!(s.quantity, Qty(dec!(50)));
    }

    #[test]
    fn kelly_with_too_few_trades_falls_back_to_fixed() {
        let closed = trades(&vec![dec!(10); 19]);
        let c = RiskConfig {
            sizing_mode: SizingMode::Kelly,
            ..RiskConfig::default()
        };
        let s = size_position(&c, &inputs(Some(dec!(95)), None, &closed)).unwrap();
        assert_eq!(s.basis, SizingBasis::KellyFallbackToFixed);
        assert_eq!(s.quantity, Qty(dec!(20)));
    }

    #[test]
    fn kelly_looks_only_at_the_lookback_window() {
        // 30 old losses then 20 recent trades (12 × +30, 8 × -20); lookback 20 ignores the losses.
        let mut pnl = vec![dec!(-50); 30];
        pnl.extend(vec![dec!(30); 12]);
        pnl.extend(vec![dec!(-20); 8]);
        let c = RiskConfig {
            sizing_mode: SizingMode::Kelly,
            kelly_lookback: 20,
            ..RiskConfig::default()
        };
        let s = size_position(&c, &inputs(Some(dec!(95)), None, &trades(&pnl))).unwrap();
        assert_eq!(s.basis, SizingBasis::Kelly);
    }

    #[test]
    fn atr_mode_sets_the_stop_k_atr_below_entry_without_one() {
        // k = 2, ATR = 4: distance 8, stop 92; 100 at risk / 8 = 12.5 units.
        let c = RiskConfig {
            sizing_mode: SizingMode::Atr,
            ..RiskConfig::default()
        };
        let s = size_position(&c, &inputs(None, Some(dec!(4)), &[])).unwrap();
        assert_eq!(s.stop, Price(dec!(92)));
        assert_eq!(s.quantity, Qty(dec!(12.5)));
    }

    #[test]
    fn atr_mode_sizes_against_the_wider_of_atr_and_given_stop() {
        let c = RiskConfig {
            sizing_mode: SizingMode::Atr,
            ..RiskConfig::default()
        };
        // given stop 90 (distance 10) is wider than 2 × 4 = 8: 100 / 10 = 10 units, stop kept.
        let s = size_position(&c, &inputs(Some(dec!(90)), Some(dec!(4)), &[])).unwrap();
        assert_eq!((s.stop, s.quantity), (Price(dec!(90)), Qty(dec!(10))));
        // given stop 97 (distance 3) is tighter: sized on 8 → 12.5 units, stop 97 kept.
        let s = size_position(&c, &inputs(Some(dec!(97)), Some(dec!(4)), &[])).unwrap();
        assert_eq!((s.stop, s.quantity), (Price(dec!(97)), Qty(dec!(12.5))));
        assert_eq!(
            size_position(&c, &inputs(None, None, &[])),
            Err(SizingError::NoAtr)
        );
    }
}
