//! `PortfolioHeatService`: the money at risk if every stop is hit, as a share of TOTAL equity
//! (the seed divided by invested value, which made a small, fully stopped book look hot).

use crate::domain::money::{Price, Qty, Quote};
use crate::domain::symbol::Symbol;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An open long position as the risk layer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPosition {
    pub symbol: Symbol,
    pub quantity: Qty,
    pub entry: Price,
    /// The protective stop; `None` counts the whole notional as at risk.
    pub stop: Option<Price>,
}

impl OpenPosition {
    /// Money lost if the stop is hit: (entry − stop) × quantity, never negative (a stop moved
    /// above the entry locks in profit and risks nothing). Without a stop, the whole notional.
    pub fn risk(&self) -> Quote {
        match self.stop {
            Some(stop) => {
                let per_unit = (self.entry.get() - stop.get()).max(Decimal::ZERO);
                Quote(per_unit * self.quantity.get())
            }
            None => self.entry * self.quantity,
        }
    }

    /// Notional at the entry price.
    pub fn notional(&self) -> Quote {
        self.entry * self.quantity
    }
}

/// One row of the heat breakdown (for the TUI).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionHeat {
    pub symbol: Symbol,
    pub quantity: Qty,
    pub entry: Price,
    pub stop: Option<Price>,
    pub risk: Quote,
    /// `risk` as % of total equity.
    pub heat_pct: Decimal,
}

/// The portfolio's heat against its cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortfolioHeat {
    pub positions: Vec<PositionHeat>,
    pub total_risk: Quote,
    pub equity: Quote,
    /// `total_risk` as % of equity (100 when equity is not positive and anything is at risk).
    pub heat_pct: Decimal,
    pub cap_pct: Decimal,
    /// Risk a new entry may still add before the cap (zero when at or over it).
    pub room: Quote,
}

/// Portfolio heat, the seed's name for the aggregate-risk check.
pub struct PortfolioHeatService;

fn pct_of(amount: Quote, equity: Quote) -> Decimal {
    if equity.get() <= Decimal::ZERO {
        return if amount.is_zero() {
            Decimal::ZERO
        } else {
            Decimal::ONE_HUNDRED
        };
    }
    // Saturate rather than panic on a dust equity.
    amount
        .get()
        .checked_div(equity.get())
        .and_then(|r| r.checked_mul(Decimal::ONE_HUNDRED))
        .unwrap_or(Decimal::MAX)
}

impl PortfolioHeatService {
    /// Heat of `positions` for an account worth `equity`, against a cap of `cap_pct` %.
    pub fn measure(positions: &[OpenPosition], equity: Quote, cap_pct: Decimal) -> PortfolioHeat {
        let rows: Vec<PositionHeat> = positions
            .iter()
            .map(|p| {
                let risk = p.risk();
                PositionHeat {
                    symbol: p.symbol.clone(),
                    quantity: p.quantity,
                    entry: p.entry,
                    stop: p.stop,
                    risk,
                    heat_pct: pct_of(risk, equity),
                }
            })
            .collect();
        let total_risk: Quote = rows.iter().map(|r| r.risk).sum();
        let budget = Quote(equity.get().max(Decimal::ZERO) * cap_pct / Decimal::ONE_HUNDRED);
        PortfolioHeat {
            heat_pct: pct_of(total_risk, equity),
            room: Quote((budget - total_risk).get().max(Decimal::ZERO)),
            positions: rows,
            total_risk,
            equity,
            cap_pct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn pos(sym: &str, qty: Decimal, entry: Decimal, stop: Option<Decimal>) -> OpenPosition {
        OpenPosition {
            symbol: Symbol::new(sym).unwrap(),
            quantity: Qty(qty),
            entry: Price(entry),
            stop: stop.map(Price),
        }
    }

    #[test]
    fn heat_is_risk_over_total_equity_not_invested_value() {
        // BTC: (100 - 95) * 2 = 10; ETH: (50 - 48) * 5 = 10; total 20 on 1000 equity = 2 %.
        // The seed would have divided by the invested 450 and reported 4.44 %.
        let ps = [
            pos("BTCUSDT", dec!(2), dec!(100), Some(dec!(95))),
            pos("ETHUSDT", dec!(5), dec!(50), Some(dec!(48))),
        ];
        let heat = PortfolioHeatService::measure(&ps, Quote(dec!(1000)), dec!(6));
        assert_eq!(heat.total_risk, Quote(dec!(20)));
        assert_eq!(heat.heat_pct, dec!(2));
        assert_eq!(heat.positions[0].heat_pct, dec!(1));
        // cap 6 % of 1000 = 60, 20 used, 40 left
        assert_eq!(heat.room, Quote(dec!(40)));
    }

    #[test]
    fn stop_above_entry_risks_nothing_and_no_stop_risks_everything() {
        let ps = [
            pos("BTCUSDT", dec!(1), dec!(100), Some(dec!(110))),
            pos("ETHUSDT", dec!(2), dec!(30), None),
        ];
        let heat = PortfolioHeatService::measure(&ps, Quote(dec!(1000)), dec!(6));
        assert_eq!(heat.positions[0].risk, Quote::ZERO);
        assert_eq!(heat.positions[1].risk, Quote(dec!(60)));
        assert_eq!(heat.heat_pct, dec!(6));
        assert_eq!(heat.room, Quote::ZERO);
    }
}
