//! Risk-based sizing for the engine: live trading's own entry check,
//! `RiskManagementService::validate` (the risk domain's `size_position` in fixed, fractional
//! Kelly or ATR mode, then the position, balance, symbol-exposure, heat and exchange caps, floored
//! to the lot step), asked about a flat account behind the engine's `Sizer` trait. A backtest and
//! the live trading of the same strategy size an entry with the same code and the same inputs.
//!
//! Where a backtest's inputs must differ from live ones (and why):
//! - the account is flat at every entry (the engine never adds), so the exposure and heat caps
//!   see no other position; live trading of several symbols at once can be capped lower;
//! - the circuit breaker, daily-loss and drawdown halts are not simulated (start-of-day and peak
//!   equity are today's equity): a backtest shows what the strategy does, not when risk halts it;
//! - the minimum reward:risk is not judged (the engine's sizer is not shown the take-profit), nor
//!   the decision confidence (a strategy's signal has none; the strategy engine says 1.0);
//! - the fee reserve is the run's taker fee (`--fee-bps`), live it is `risk.fee_rate`;
//! - ATR comes from the last ten periods of the visible history, live from the whole snapshot.

use super::engine::{History, OrderAmount, SizeDecision, Sizer, SizingInput};
use crate::domain::market::indicators::{Atr, Ohlcv};
use crate::domain::money::{Price, Quote};
use crate::domain::risk::{
    BreakerState, IntentKind, MarketSnapshot, RiskConfig, RiskContext, RiskManagementService,
    RiskVerdict, SizingMode, TradeIntent,
};
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::Side;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

/// ATR look-back used by ATR sizing.
pub const ATR_PERIOD: usize = 14;

/// Sizes entries with the risk domain's rules and `RiskConfig`.
#[derive(Debug, Clone)]
pub struct RiskSizer {
    pub config: RiskConfig,
    /// The exchange filters live sizing rounds with (tick for the entry and stop, lot step for
    /// the quantity). Default: no tick, a 1e-8 lot, as live trading does without a step.
    pub filters: SymbolFilters,
}

impl RiskSizer {
    pub fn new(config: RiskConfig) -> Self {
        let mut filters = SymbolFilters::permissive("BASE", "QUOTE");
        filters.tick_size = Decimal::ZERO;
        filters.step_size = Decimal::ZERO;
        RiskSizer { config, filters }
    }

    /// Round as the exchange does (use the backtest's own filters, so sizing and fills agree).
    pub fn with_filters(mut self, filters: SymbolFilters) -> Self {
        self.filters = filters;
        self
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
            open_time: h.open_times()[i],
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
        let config = RiskConfig {
            fee_rate: input.fee_rate,
            min_reward_risk: Decimal::ZERO,
            min_confidence: Decimal::ZERO,
            ..self.config.clone()
        };
        // Kelly alone reads the closed trades; copying them for every entry of a long run
        // would be quadratic.
        let closed_trades = match config.sizing_mode {
            SizingMode::Kelly => input.closed_trades.to_vec(),
            _ => Vec::new(),
        };
        let symbol = Symbol::new("BACKTEST").ok()?;
        let context = RiskContext {
            equity: input.equity,
            available_balance: input.cash,
            open_positions: Vec::new(),
            realised_pnl_today: Quote::ZERO,
            unrealised_pnl: Quote::ZERO,
            start_of_day_equity: input.equity,
            peak_equity: input.equity,
            closed_trades,
            config,
            market: MarketSnapshot {
                // The backtest fills a stop at its price: no stop-limit offset to count.
                stop_limit_offset_pct: Decimal::ZERO,
                price: input.price,
                atr,
                filters: self.filters.clone(),
            },
            breaker: BreakerState::Active,
            // The engine applies the cooldown and lock itself, before sizing.
            stop_exits: Default::default(),
        };
        let intent = TradeIntent {
            symbol,
            side: Side::Buy,
            kind: IntentKind::Entry,
            confidence: Decimal::ONE,
            size_pct: None,
            entry: input.price,
            stop_loss: input.stop_loss,
            take_profit: None,
            quantity: None,
            strategy: None,
        };
        match RiskManagementService::validate(&intent, &context) {
            RiskVerdict::Approved { quantity, stop, .. } => Some(SizeDecision {
                amount: OrderAmount::Qty(quantity),
                stop_loss: stop,
            }),
            RiskVerdict::Refused { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::market::candle::{Candle, CandleColumns};
    use crate::domain::money::Qty;
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

    /// `sizer` on a 10000 account at price 100 with a flat 4-wide history.
    fn size_with(sizer: &RiskSizer, stop: Option<Decimal>, cash: Decimal) -> Option<SizeDecision> {
        let candles = flat_candles(40, dec!(4));
        let cols = CandleColumns::from_candles(&candles);
        let h = History::up_to(&candles, &cols, 39);
        sizer.size(&SizingInput {
            cash: Quote(cash),
            equity: Quote(dec!(10000)),
            price: Price(dec!(100)),
            stop_loss: stop.map(Price),
            fee_rate: dec!(0.001),
            history: &h,
            closed_trades: &[],
        })
    }

    fn size(mode: SizingMode, stop: Option<Decimal>, cash: Decimal) -> Option<SizeDecision> {
        let config = RiskConfig {
            sizing_mode: mode,
            max_position_pct: dec!(100),
            ..RiskConfig::default()
        };
        size_with(&RiskSizer::new(config), stop, cash)
    }

    #[test]
    fn fixed_risk_loses_one_percent_of_equity_at_the_stop() {
        // 1 % of 10000 = 100 at risk, after fees as live: the entry at 100 + 0.05 % slippage
        // = 100.05 costs 100.15005 with the 0.1 % fee, the stop sells at 95 less 0.1 % =
        // 94.905; 5.24505 lost a unit → 19.06559518 units (20 on the price distance alone).
        let d = size(SizingMode::Fixed, Some(dec!(95)), dec!(10000)).unwrap();
        assert_eq!(d.amount, OrderAmount::Qty(Qty(dec!(19.06559518))));
        assert_eq!(d.stop_loss, Some(Price(dec!(95))));
        // without a stop, fixed risk cannot size: no trade
        assert!(size(SizingMode::Fixed, None, dec!(10000)).is_none());
    }

    #[test]
    fn atr_sizing_sets_its_own_stop_two_atrs_below() {
        // every true range is 4, so ATR = 4 and the stop is 100 - 2 * 4 = 92; after fees and
        // slippage 100.15005 − 91.908 = 8.24205 lost a unit: 100 / 8.24205 = 12.13290382
        let d = size(SizingMode::Atr, None, dec!(10000)).unwrap();
        assert_eq!(d.stop_loss, Some(Price(dec!(92))));
        match d.amount {
            OrderAmount::Qty(q) => assert_eq!(q, Qty(dec!(12.13290382))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn size_is_capped_by_the_cash_after_fees() {
        // 20 units wanted, but 1001 cash buys 1001 / (100 * 1.001) = 10
        let d = size(SizingMode::Fixed, Some(dec!(95)), dec!(1001)).unwrap();
        assert_eq!(d.amount, OrderAmount::Qty(Qty(dec!(10))));
    }

    #[test]
    fn position_cap_is_the_notional_limit_without_fees_as_live() {
        // 1 % of 10000 over a 1.00 stop = 100 units, capped by 10 % of equity: 1000 / 100 = 10
        // units (not 1000 / 100.1: the fee reserve applies to the cash, as live).
        let sizer = RiskSizer::new(RiskConfig {
            max_position_pct: dec!(10),
            ..RiskConfig::default()
        });
        let d = size_with(&sizer, Some(dec!(99)), dec!(10000)).unwrap();
        assert_eq!(d.amount, OrderAmount::Qty(Qty(dec!(10))));
    }

    #[test]
    fn stop_is_rounded_up_to_the_tick_and_the_size_down_to_the_lot_as_live() {
        // stop 94.995 → 95.00 on a 0.01 tick; after fees a unit loses 5.24505 (fee in USDT) or
        // 5.239905 plus a 0.01 lot of dust, 0.94905 (fee in BTC): (100 − 0.94905) / 5.239905
        // = 18.903 → 18.90 on the lot; cash 1000 buys 1000 / 100.1 = 9.99000999 → 9.99.
        let mut filters = SymbolFilters::permissive("BTC", "USDT");
        filters.tick_size = dec!(0.01);
        filters.step_size = dec!(0.01);
        let sizer = RiskSizer::new(RiskConfig {
            max_position_pct: dec!(100),
            max_symbol_exposure_pct: dec!(100),
            ..RiskConfig::default()
        })
        .with_filters(filters);
        let d = size_with(&sizer, Some(dec!(94.995)), dec!(10000)).unwrap();
        assert_eq!(d.amount, OrderAmount::Qty(Qty(dec!(18.90))));
        assert_eq!(d.stop_loss, Some(Price(dec!(95.00))));
        let d = size_with(&sizer, Some(dec!(94.995)), dec!(1000)).unwrap();
        assert_eq!(d.amount, OrderAmount::Qty(Qty(dec!(9.99))));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// The backtest sizes as live does: random prices, stops, fees 0–100 bps, slippage
            /// and tick/step/minNotional filters; whichever asset pays the entry fee, selling
            /// what is held at the stop loses no more than the run's 1 % risk per trade.
            #[test]
            fn a_backtest_entry_stopped_at_its_stop_loses_no_more_than_the_risk_budget(
                price in 1i64..10_000_000, stop_pct in 1i64..9_999, fee_bps in 0i64..=100,
                slippage_bps in 0i64..=100, tick_exp in 0u32..4, step_exp in 0u32..7,
                min_notional in 0i64..20,
            ) {
                let price = Decimal::new(price, 2);
                let mut filters = SymbolFilters::permissive("BTC", "USDT");
                filters.tick_size = Decimal::new(1, tick_exp);
                filters.min_price = filters.tick_size;
                filters.step_size = Decimal::new(1, step_exp);
                filters.min_qty = filters.step_size;
                filters.min_notional = Decimal::from(min_notional);
                let config = RiskConfig {
                    max_position_pct: dec!(100),
                    max_symbol_exposure_pct: dec!(100),
                    heat_cap_pct: dec!(100),
                    slippage_pct: Decimal::new(slippage_bps, 2),
                    min_stop_distance_pct: Decimal::ZERO,
                    ..RiskConfig::default()
                };
                let fee_rate = Decimal::new(fee_bps, 4);
                let sizer = RiskSizer::new(config.clone()).with_filters(filters.clone());
                let candles = flat_candles(40, dec!(4));
                let cols = CandleColumns::from_candles(&candles);
                let h = History::up_to(&candles, &cols, 39);
                let equity = dec!(10000);
                let stop = Price(price * Decimal::new(stop_pct, 4));
                let decided = sizer.size(&SizingInput {
                    cash: Quote(equity),
                    equity: Quote(equity),
                    price: Price(price),
                    stop_loss: Some(stop),
                    fee_rate,
                    history: &h,
                    closed_trades: &[],
                });
                if let Some(SizeDecision { amount: OrderAmount::Qty(q), stop_loss: Some(stop) }) = decided {
                    let fill = filters.round_price_up(Price(
                        price * (Decimal::ONE + config.slippage_pct / Decimal::ONE_HUNDRED),
                    )).get();
                    let budget = equity * config.risk_per_trade_pct / Decimal::ONE_HUNDRED;
                    for fee_in_base in [false, true] {
                        let (paid, held) = if fee_in_base {
                            (q.get() * fill, q.get() - q.get() * fee_rate)
                        } else {
                            (q.get() * fill * (Decimal::ONE + fee_rate), q.get())
                        };
                        let sold = filters.round_qty_down(Qty(held)).get() * stop.get();
                        let lost = paid - (sold - sold * fee_rate);
                        prop_assert!(
                            lost <= budget * (Decimal::ONE + Decimal::new(1, 9)),
                            "lost {} over the budget {} (fee in base: {})", lost, budget, fee_in_base
                        );
                    }
                }
            }
        }
    }
}
