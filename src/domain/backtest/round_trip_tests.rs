//! The round trip's shortcuts are the general path to the last digit: an all-in entry sized by
//! the engine itself (no `SizingInput`, no dynamic call) is the entry the sizer sizes through
//! its input; the notional a fill hands to the booking is `price * qty`, scale included; the
//! budget factor worked out once is `1 + fee` for the fee the fill is charged.

use super::engine::{AllIn, Engine, OrderAmount, OrderIntent, SizeDecision, Sizer, SizingInput};
use super::fills::{Costs, FillModel, SimulatedExchange};
use super::strategies::{StrategySpec, build_strategy};
use super::test_walk::{normalised, tick_walk};
use super::{BacktestConfig, BacktestService, ExitReason};
use crate::domain::market::Interval;
use crate::domain::market::candle::{Candle, CandleColumns};
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::RiskConfig;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::Side;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::sync::atomic::AtomicBool;

/// [`AllIn`] without saying so: the engine sizes through the input and the dynamic call.
struct AllInAskedThroughItsInput;

impl Sizer for AllInAskedThroughItsInput {
    fn name(&self) -> &str {
        AllIn.name()
    }
    fn size(&self, input: &SizingInput<'_>) -> Option<SizeDecision> {
        AllIn.size(input)
    }
}

/// A walk of whole ticks `cents` apart, prices with as many trailing zeros as not (the
/// decimals' scales vary from candle to candle, as parsed prices' do).
fn candles(steps: &[i8], cents: i64) -> Vec<Candle> {
    tick_walk(steps, cents, 1)
        .into_iter()
        .map(normalised)
        .collect()
}

fn run(data: &[Candle], spec: &StrategySpec, fill: FillModel, costs: Costs, said: bool) -> String {
    let mut config = BacktestConfig::new(Interval::M1);
    config.fill_model = fill;
    config.costs = costs;
    let sizer: Box<dyn Sizer> = if said {
        Box::new(AllIn)
    } else {
        Box::new(AllInAskedThroughItsInput)
    };
    let risk = RiskConfig {
        cooldown_candles_after_stop: 2,
        ..RiskConfig::default()
    };
    let engine = Engine::new(
        Box::new(build_strategy(spec).unwrap()),
        sizer,
        Quote(Decimal::new(100_000, 0)),
    )
    .with_fee_rate(costs.taker_fee)
    .with_stop_protections(&risk, Interval::M1.millis());
    let columns = CandleColumns::from_candles(data);
    let never = AtomicBool::new(false);
    let result =
        BacktestService::run_builtin(&config, engine, data, &columns, 0, &never, &mut |_, _| {})
            .unwrap();
    // Every digit: `Debug` shows each decimal with its scale and each f64 as the shortest text
    // that reads back to its bits.
    format!("{result:?}")
}

fn fee_bps() -> impl Strategy<Value = Decimal> {
    // The same rates at different scales (10 bps as 0.001 and as 0.0010) give sums of
    // different scales.
    prop::sample::select(vec![
        Decimal::new(1, 3),
        Decimal::new(10, 4),
        Decimal::new(75, 5),
        Decimal::ZERO,
        Decimal::new(25, 4),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn an_all_in_entry_sized_by_the_engine_is_the_one_the_sizer_sizes(
        steps in prop::collection::vec(-3i8..=3, 40..500),
        cents in prop::sample::select(vec![1i64, 7, 50, 500]),
        fast in 1usize..10,
        longer in 1usize..20,
        fill in prop::sample::select(vec![FillModel::Close, FillModel::NextOpen]),
        exits in 0usize..6,
        taker in fee_bps(),
        maker in fee_bps(),
        slippage in prop::sample::select(vec![Decimal::ZERO, Decimal::new(5, 4)]),
    ) {
        let data = candles(&steps, cents);
        let extra: &[(&str, f64)] = match exits {
            0 => &[],
            1 => &[("stop_pct", 1.0), ("take_pct", 2.0)],
            2 => &[("time_exit_candles", 7.0)],
            3 => &[("trail_bips", 80.0)],
            4 => &[("entry_limit_bps", 30.0), ("entry_timeout_candles", 3.0)],
            _ => &[("stop_pct", 0.5), ("breakeven_r", 1.0)],
        };
        let mut params: std::collections::BTreeMap<String, f64> =
            [("fast".into(), fast as f64), ("slow".into(), (fast + longer) as f64)].into();
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), *v)));
        let spec = StrategySpec { name: "sma-cross".into(), params };
        let costs = Costs { taker_fee: taker, maker_fee: maker, slippage };
        prop_assert_eq!(
            run(&data, &spec, fill, costs, true),
            run(&data, &spec, fill, costs, false)
        );
    }

    /// Whatever the price, amount, fee and filters, the notional handed over with an execution
    /// is `price * qty` to the last digit of its representation, and the fee was worked from it.
    #[test]
    fn a_fill_hands_over_the_notional_its_fee_was_worked_from(
        price_units in 1i64..100_000_000,
        price_scale in 0u32..6,
        amount_units in 1i64..10_000_000_000,
        amount_scale in 0u32..10,
        budget in any::<bool>(),
        taker in fee_bps(),
        tick in prop::sample::select(vec![Decimal::ZERO, Decimal::new(1, 2)]),
        step in prop::sample::select(vec![Decimal::ZERO, Decimal::new(1, 5)]),
        slippage in prop::sample::select(vec![Decimal::ZERO, Decimal::new(5, 4)]),
    ) {
        let mut filters = SymbolFilters::permissive("BTC", "USDT");
        filters.tick_size = tick;
        filters.step_size = step;
        let costs = Costs { taker_fee: taker, maker_fee: taker, slippage };
        let mut ex = SimulatedExchange::new(FillModel::Close, costs, filters);
        let amount = Decimal::new(amount_units, amount_scale);
        let amount = if budget {
            OrderAmount::QuoteBudget(Quote(amount))
        } else {
            OrderAmount::Qty(Qty(amount))
        };
        let buy = OrderIntent::market(Side::Buy, amount, ExitReason::Signal, 0);
        let price = Price(Decimal::new(price_units, price_scale));
        let mut intent = buy;
        // The entry, then the exit of what it bought.
        while let Some(Ok(filled)) = ex.submit_filled(intent, || price, 0) {
            let e = filled.exec;
            prop_assert_eq!(filled.notional.get().serialize(), (e.price * e.qty).get().serialize());
            prop_assert_eq!(e.fee.get().serialize(), (filled.notional * taker).get().serialize());
            if intent.side == Side::Sell {
                break;
            }
            intent.side = Side::Sell;
            intent.amount = OrderAmount::Qty(e.qty);
        }
    }
}

/// The factor a budget is divided by follows the fee the fill is charged, also when the costs
/// change after the exchange was built: 1,000 at 100 with a 0.2 % fee (set after) buys
/// 1000 / 100.2 = 9.980039920159 (to twelve places), not the 9.990009990009 of the 0.1 % the
/// exchange was built with.
#[test]
fn the_budget_factor_follows_costs_changed_after_construction() {
    let mut filters = SymbolFilters::permissive("BTC", "USDT");
    filters.tick_size = Decimal::ZERO;
    filters.step_size = Decimal::ZERO;
    let mut ex = SimulatedExchange::new(FillModel::Close, Costs::default(), filters);
    ex.costs.taker_fee = Decimal::new(2, 3);
    let intent = OrderIntent::market(
        Side::Buy,
        OrderAmount::QuoteBudget(Quote(Decimal::new(1000, 0))),
        ExitReason::Signal,
        0,
    );
    let e = ex
        .submit_at(intent, || Price(Decimal::new(100, 0)), 0)
        .unwrap()
        .unwrap();
    assert_eq!(e.qty.get().to_string(), "9.980039920159");
}
