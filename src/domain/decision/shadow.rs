//! The virtual paper book a challenger (shadow) engine trades on: its decisions are filled
//! here at the decision's price and never reach an exchange. Long-only and unlevered like the
//! live spot book, with the same fee on each side, so its return is comparable to the primary's.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use super::{Action, TradingDecision};
use crate::domain::{Price, Qty, Quote};

/// Buy or sell on the shadow book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ShadowSide {
    Buy,
    Sell,
}

impl ShadowSide {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowSide::Buy => "BUY",
            ShadowSide::Sell => "SELL",
        }
    }
}

/// One virtual fill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowFill {
    pub symbol: String,
    pub side: ShadowSide,
    pub quantity: Qty,
    pub price: Price,
    pub fee: Quote,
}

/// Cash and holdings of a shadow book, rebuilt from its fills.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShadowBook {
    pub cash: Quote,
    pub holdings: BTreeMap<String, Qty>,
}

impl ShadowBook {
    pub fn new(starting_cash: Quote) -> Self {
        ShadowBook {
            cash: starting_cash,
            holdings: BTreeMap::new(),
        }
    }

    /// Replay `fills` (oldest first) onto a book that started with `starting_cash`.
    pub fn from_fills<'a>(
        starting_cash: Quote,
        fills: impl IntoIterator<Item = &'a ShadowFill>,
    ) -> Self {
        let mut book = ShadowBook::new(starting_cash);
        for fill in fills {
            book.apply(fill);
        }
        book
    }

    pub fn apply(&mut self, fill: &ShadowFill) {
        let notional = fill.quantity.0 * fill.price.0;
        let held = self.holdings.entry(fill.symbol.clone()).or_default();
        match fill.side {
            ShadowSide::Buy => {
                held.0 += fill.quantity.0;
                self.cash.0 -= notional + fill.fee.0;
            }
            ShadowSide::Sell => {
                held.0 -= fill.quantity.0;
                self.cash.0 += notional - fill.fee.0;
            }
        }
        if held.0.is_zero() {
            self.holdings.remove(&fill.symbol);
        }
    }

    /// Cash plus holdings at `marks` (a holding without a mark counts at zero).
    pub fn equity(&self, marks: &BTreeMap<String, Price>) -> Quote {
        let held: Decimal = self
            .holdings
            .iter()
            .map(|(s, q)| q.0 * marks.get(s).map(|p| p.0).unwrap_or_default())
            .sum();
        Quote(self.cash.0 + held)
    }

    /// The fill a valid decision gets at `price`: a BUY commits `position_size_pct` of the
    /// book's equity (its cash: the symbol is flat, and other holdings are not marked here, so
    /// a book holding several symbols sizes conservatively) when the symbol is flat, like the live
    /// book's one-entry rule; SELL and CLOSE sell the whole holding. `None` when nothing
    /// happens (HOLD, a BUY while holding, a SELL while flat, no cash).
    pub fn fill_for(
        &self,
        decision: &TradingDecision,
        price: Price,
        fee_rate: Decimal,
    ) -> Option<ShadowFill> {
        if price.0 <= Decimal::ZERO {
            return None;
        }
        let held = self
            .holdings
            .get(&decision.symbol)
            .copied()
            .unwrap_or_default();
        match decision.action {
            Action::Hold => None,
            Action::Buy => {
                if held.0 > Decimal::ZERO {
                    return None;
                }
                let marks = BTreeMap::from([(decision.symbol.clone(), price)]);
                let equity = self.equity(&marks).0;
                let pct = Decimal::from_f64(decision.position_size_pct)?
                    .clamp(Decimal::ZERO, Decimal::ONE_HUNDRED)
                    / Decimal::ONE_HUNDRED;
                // What is spent, fee included, never exceeds the cash.
                let budget = (equity * pct).min(self.cash.0);
                let quantity = (budget / (price.0 * (Decimal::ONE + fee_rate))).round_dp(8);
                if quantity <= Decimal::ZERO {
                    return None;
                }
                Some(ShadowFill {
                    symbol: decision.symbol.clone(),
                    side: ShadowSide::Buy,
                    quantity: Qty(quantity),
                    price,
                    fee: Quote(quantity * price.0 * fee_rate),
                })
            }
            Action::Sell | Action::Close => {
                if held.0 <= Decimal::ZERO {
                    return None;
                }
                Some(ShadowFill {
                    symbol: decision.symbol.clone(),
                    side: ShadowSide::Sell,
                    quantity: held,
                    price,
                    fee: Quote(held.0 * price.0 * fee_rate),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn decision(action: Action, pct: f64) -> TradingDecision {
        let mut d = TradingDecision::hold("BTCUSDT", "test");
        d.action = action;
        d.position_size_pct = pct;
        d
    }

    #[test]
    fn a_shadow_buy_commits_its_share_of_equity_and_a_sell_returns_it_net_of_both_fees() {
        let fee = dec!(0.001);
        let mut book = ShadowBook::new(Quote(dec!(10000)));
        let buy = book
            .fill_for(&decision(Action::Buy, 10.0), Price(dec!(50000)), fee)
            .unwrap();
        // 1 000 of equity buys 1000 / (50000 × 1.001) BTC, the fee on top.
        assert_eq!(buy.quantity, Qty(dec!(0.01998002)));
        book.apply(&buy);
        assert!(book.cash.0 > dec!(8999.99) && book.cash.0 <= dec!(9000));
        // No second entry while holding.
        assert_eq!(
            book.fill_for(&decision(Action::Buy, 10.0), Price(dec!(50000)), fee),
            None
        );
        let sell = book
            .fill_for(&decision(Action::Sell, 0.0), Price(dec!(55000)), fee)
            .unwrap();
        assert_eq!(sell.quantity, buy.quantity);
        book.apply(&sell);
        assert!(book.holdings.is_empty());
        // +10 % on 1 000 less two fees of about 1 each.
        let gain = book.cash.0 - dec!(10000);
        assert!(gain > dec!(97.7) && gain < dec!(98.0), "{gain}");
        assert_eq!(
            ShadowBook::from_fills(Quote(dec!(10000)), [&buy, &sell]),
            book
        );
    }

    #[test]
    fn a_shadow_hold_or_a_sell_while_flat_fills_nothing() {
        let book = ShadowBook::new(Quote(dec!(10000)));
        let p = Price(dec!(50000));
        assert_eq!(
            book.fill_for(&decision(Action::Hold, 10.0), p, dec!(0)),
            None
        );
        assert_eq!(
            book.fill_for(&decision(Action::Sell, 10.0), p, dec!(0)),
            None
        );
        assert_eq!(
            book.fill_for(&decision(Action::Close, 0.0), p, dec!(0)),
            None
        );
    }
}
