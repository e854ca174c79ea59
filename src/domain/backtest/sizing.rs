//! Risk-based sizing for the engine: the risk domain's `size_position` (fixed risk, fractional
//! Kelly, ATR) behind the engine's `Sizer` trait, capped by the position limit and the cash.

use super::engine::{History, OrderAmount, SizeDecision, Sizer, SizingInput};
use crate::domain::market::indicators::{Atr, Ohlcv};
use crate::domain::money::{Price, Qty};
use crate::domain::risk::{RiskConfig, SizingInputs, SizingMode, size_position};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

/// ATR look-back used by ATR sizing.
pub const ATR_PERIOD: usize = 14;

/// Sizes entries with the risk domain's rules and `RiskConfig`.
#[derive(Debug, Clone)]
pub struct RiskSizer {
    pub config: RiskConfig,
}

impl RiskSizer {
    pub fn new(config: RiskConfig) -> Self {
        RiskSizer { config }
    }
}

/// The market module's Wilder ATR over a bounded window of the visible history (ten periods, so
/// an entry costs O(period) however long the run), or `None` with too little history.
fn average_true_range(h: &History<'_>, period: usize) -> Option<f64> {
    let n = h.len();
    let start = n.saturating_sub(period * 10);
    let mut atr = Atr::new(period);
    let mut last = None;
    for i in start..n {
        last = atr.update(&Ohlcv {
            open_time: h.candles()[i].open_time,
            open: h.opens()[i],
            high: h.highs()[i],
            low: h.lows()[i],
            close: h.closes()[i],
            volume: h.volumes()[i],
        });
    }
    last
}

impl Sizer for RiskSizer {
    fn name(&self) -> &str {
        match self.config.sizing_mode {
            SizingMode::Fixed => "fixed",
            SizingMode::Kelly => "kelly",
            SizingMode::Atr => "atr",
        }
    }

    fn size(&self, input: &SizingInput<'_>) -> Option<SizeDecision> {
        let atr = match self.config.sizing_mode {
            SizingMode::Atr => Some(Price(Decimal::from_f64(average_true_range(
                input.history,
                ATR_PERIOD,
            )?)?)),
            _ => None,
        };
        let sizing = size_position(
            &self.config,
            &SizingInputs {
                equity: input.equity,
                entry: input.price,
                stop: input.stop_loss,
                atr,
                closed_trades: input.closed_trades,
            },
        )
        .ok()?;
        // Never more than the position limit, nor more than the cash buys after fees.
        let per_unit = input.price.get() * (Decimal::ONE + input.fee_rate);
        let cap_quote = (input.equity.get() * self.config.max_position_pct / Decimal::ONE_HUNDRED)
            .min(input.cash.get());
        let qty = sizing.quantity.get().min(cap_quote / per_unit);
        (qty > Decimal::ZERO).then_some(SizeDecision {
            amount: OrderAmount::Qty(Qty(qty)),
            stop_loss: Some(sizing.stop),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::market::candle::{Candle, CandleColumns};
    use crate::domain::money::Quote;
    use rust_decimal_macros::dec;

    fn flat_candles(n: i64, range: Decimal) -> Vec<Candle> {
        (0..n)
            .map(|i| Candle {
                open_time: i,
                open: Price(dec!(100)),
                high: Price(dec!(100) + range / dec!(2)),
                low: Price(dec!(100) - range / dec!(2)),
                close: Price(dec!(100)),
                volume: Qty(dec!(1)),
            })
            .collect()
    }

    fn size(mode: SizingMode, stop: Option<Decimal>, cash: Decimal) -> Option<SizeDecision> {
        let candles = flat_candles(40, dec!(4));
        let cols = CandleColumns::from_candles(&candles);
        let h = History::up_to(&candles, &cols, 39);
        let config = RiskConfig {
            sizing_mode: mode,
            max_position_pct: dec!(100),
            ..RiskConfig::default()
        };
        RiskSizer::new(config).size(&SizingInput {
            cash: Quote(cash),
            equity: Quote(dec!(10000)),
            price: Price(dec!(100)),
            stop_loss: stop.map(Price),
            fee_rate: dec!(0.001),
            history: &h,
            closed_trades: &[],
        })
    }

    #[test]
    fn fixed_risk_loses_one_percent_of_equity_at_the_stop() {
        // 1 % of 10000 = 100 at risk over a 5.00 stop distance = 20 units
        let d = size(SizingMode::Fixed, Some(dec!(95)), dec!(10000)).unwrap();
        assert_eq!(d.amount, OrderAmount::Qty(Qty(dec!(20))));
        assert_eq!(d.stop_loss, Some(Price(dec!(95))));
        // without a stop, fixed risk cannot size: no trade
        assert!(size(SizingMode::Fixed, None, dec!(10000)).is_none());
    }

    #[test]
    fn atr_sizing_sets_its_own_stop_two_atrs_below() {
        // every true range is 4, so ATR = 4 and the stop is 100 - 2 * 4 = 92; 100 / 8 = 12.5
        let d = size(SizingMode::Atr, None, dec!(10000)).unwrap();
        assert_eq!(d.stop_loss, Some(Price(dec!(92))));
        match d.amount {
            OrderAmount::Qty(q) => assert!((q.to_f64() - 12.5).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn size_is_capped_by_the_cash_after_fees() {
        // 20 units wanted, but 1001 cash buys 1001 / (100 * 1.001) = 10
        let d = size(SizingMode::Fixed, Some(dec!(95)), dec!(1001)).unwrap();
        assert_eq!(d.amount, OrderAmount::Qty(Qty(dec!(10))));
    }
}
