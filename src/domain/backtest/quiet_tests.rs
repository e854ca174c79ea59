//! The engine skips the candles a strategy says it is quiet on (`Strategy::quiet_until`),
//! marking only their equity. A run that skips must be the run that asks the strategy on every
//! candle, to the last digit: trades, fees, every equity point, metrics and refusals.

use super::engine::{Engine, History, Signal, Strategy, StrategyContext};
use super::fills::FillModel;
use super::strategies::{
    BuiltinStrategy, SharedColumns, StrategySpec, build_strategy, build_strategy_shared,
};
use super::test_walk::tick_walk;
use super::{AllIn, BacktestConfig, BacktestResult, BacktestService, FixedFraction};
use crate::domain::market::Interval;
use crate::domain::market::candle::{Candle, CandleColumns};
use crate::domain::money::Quote;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::sync::atomic::AtomicBool;

/// The same strategy, asked on every candle: `quiet_until` is left at its default.
struct EveryCandle(BuiltinStrategy);

impl Strategy for EveryCandle {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        self.0.on_candle(ctx)
    }
}

/// Candles from a walk of whole ticks (`cents` apart), so that the averages often tie exactly.
fn candles(steps: &[i8], cents: i64) -> Vec<Candle> {
    tick_walk(steps, cents, 1)
}

fn spec(fast: usize, slow: usize, extra: &[(&str, f64)]) -> StrategySpec {
    let mut params: std::collections::BTreeMap<String, f64> =
        [("fast".into(), fast as f64), ("slow".into(), slow as f64)].into();
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), *v)));
    StrategySpec {
        name: "sma-cross".into(),
        params,
    }
}

fn engine<S: Strategy + ?Sized>(strategy: Box<S>, all_in: bool) -> Engine<S> {
    let cash = Quote(Decimal::new(100_000, 0));
    if all_in {
        Engine::new(strategy, Box::new(AllIn), cash)
    } else {
        let fraction = Decimal::new(37, 2);
        Engine::new(strategy, Box::new(FixedFraction { fraction }), cash)
    }
}

struct Case<'a> {
    candles: &'a [Candle],
    spec: StrategySpec,
    fill: FillModel,
    all_in: bool,
    trade_from: usize,
}

impl Case<'_> {
    fn config(&self) -> BacktestConfig {
        let mut config = BacktestConfig::new(Interval::M1);
        config.fill_model = self.fill;
        config
    }

    /// Skipping quiet candles, with averages of its own (`shared: None`) or from columns.
    fn skipping(&self, shared: Option<&SharedColumns<'_>>) -> BacktestResult {
        let columns = CandleColumns::from_candles(self.candles);
        let strategy = match shared {
            Some(s) => build_strategy_shared(&self.spec, s).unwrap(),
            None => build_strategy(&self.spec).unwrap(),
        };
        let never = AtomicBool::new(false);
        BacktestService::run_builtin(
            &self.config(),
            engine(Box::new(strategy), self.all_in),
            self.candles,
            &columns,
            self.trade_from,
            &never,
            &mut |_, _| {},
        )
        .unwrap()
    }

    /// Asking the strategy on every candle.
    fn every_candle(&self) -> BacktestResult {
        let columns = CandleColumns::from_candles(self.candles);
        let strategy: Box<dyn Strategy> =
            Box::new(EveryCandle(build_strategy(&self.spec).unwrap()));
        let never = AtomicBool::new(false);
        BacktestService::run_from(
            &self.config(),
            engine(strategy, self.all_in),
            self.candles,
            &columns,
            self.trade_from,
            &never,
            &mut |_, _| {},
        )
        .unwrap()
    }
}

/// Every digit of a result: `Debug` shows decimals with their scale and each f64 as the
/// shortest text that reads back to the same bits.
fn digits(r: &BacktestResult) -> String {
    format!("{r:?}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn skipping_quiet_candles_gives_the_run_of_every_candle(
        steps in prop::collection::vec(-3i8..=3, 40..700),
        cents in prop::sample::select(vec![1i64, 50, 500]),
        fast in 1usize..12,
        longer in 1usize..30,
        fill in prop::sample::select(vec![FillModel::Close, FillModel::NextOpen]),
        all_in in any::<bool>(),
        exits in 0usize..4,
        warm in 0usize..60,
    ) {
        let data = candles(&steps, cents);
        let extra: &[(&str, f64)] = match exits {
            0 => &[],
            1 => &[("stop_pct", 1.0), ("take_pct", 2.0)],
            2 => &[("time_exit_candles", 7.0)],
            _ => &[("trail_bips", 80.0)],
        };
        let case = Case {
            candles: &data,
            spec: spec(fast, fast + longer, extra),
            fill,
            all_in,
            trade_from: warm.min(data.len() - 1),
        };
        let reference = digits(&case.every_candle());
        prop_assert_eq!(&digits(&case.skipping(None)), &reference, "own averages");
        let closes = CandleColumns::from_candles(&data).close;
        let shared = SharedColumns::new(&closes);
        prop_assert_eq!(&digits(&case.skipping(Some(&shared))), &reference, "shared columns");
    }

    /// A sweep's runs keep only the metrics, taken as each point is marked: the same metrics
    /// as the whole run's, bit for bit.
    #[test]
    fn metrics_without_the_curve_are_the_metrics_of_the_curve(
        steps in prop::collection::vec(-3i8..=3, 40..700),
        cents in prop::sample::select(vec![1i64, 50, 500]),
        fast in 1usize..12,
        longer in 1usize..30,
        all_in in any::<bool>(),
    ) {
        let data = candles(&steps, cents);
        let case = Case {
            candles: &data,
            spec: spec(fast, fast + longer, &[]),
            fill: FillModel::Close,
            all_in,
            trade_from: 0,
        };
        let columns = CandleColumns::from_candles(&data);
        let shared = SharedColumns::new(&columns.close);
        let never = AtomicBool::new(false);
        let metrics = BacktestService::run_builtin_metrics(
            &case.config(),
            engine(Box::new(build_strategy_shared(&case.spec, &shared).unwrap()), all_in),
            &data,
            &columns,
            &never,
        )
        .unwrap();
        prop_assert_eq!(format!("{metrics:?}"), format!("{:?}", case.every_candle().metrics));
    }
}

/// The crossover is quiet up to its next cross and no further: the candle it stops at is the
/// one `on_candle` signals on.
#[test]
fn sma_cross_is_quiet_up_to_its_next_cross() {
    // Closes 99, 98, .., 95, then 98, 101, 104, then 101, 98, ..: SMA(2) crosses above SMA(3)
    // at 98 (96.5 > 96.33), back under at the second fall (99.5 < 101).
    let steps = [-1i8, -1, -1, -1, -1, 3, 3, 3, -3, -3, -3, -3];
    let data = candles(&steps, 100);
    let columns = CandleColumns::from_candles(&data);
    let mut quiet = build_strategy(&spec(2, 3, &[])).unwrap();
    let mut asked = build_strategy(&spec(2, 3, &[])).unwrap();
    let last = History::up_to(&data, &columns, data.len() - 1);
    let mut from = 0;
    let mut stops = Vec::new();
    while from < data.len() {
        let at = quiet.quiet_until(last, from);
        if at == data.len() {
            break;
        }
        let ctx = |i| StrategyContext {
            history: History::up_to(&data, &columns, i),
            position: Default::default(),
            cash: Quote(Decimal::ONE),
        };
        assert!(
            quiet.on_candle(&ctx(at)).is_some(),
            "quiet up to a candle with no signal"
        );
        stops.push(at);
        from = at + 1;
    }
    let signalled: Vec<usize> = (0..data.len())
        .filter(|&i| {
            asked
                .on_candle(&StrategyContext {
                    history: History::up_to(&data, &columns, i),
                    position: Default::default(),
                    cash: Quote(Decimal::ONE),
                })
                .is_some()
        })
        .collect();
    assert_eq!(stops, signalled);
    assert_eq!(signalled.len(), 2, "one cross up, one down");
}
