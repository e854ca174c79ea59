//! A run kept as exact columns alone (no decimal candle per row) must be the run with the
//! decimal candles beside them, to the last digit; and a run that keeps only its last equity
//! point must give the total return of the full run, bit for bit.

use super::fills::FillModel;
use super::strategies::{StrategySpec, build_strategy};
use super::test_walk::{normalised, tick_walk};
use super::{AllIn, BacktestConfig, BacktestResult, BacktestService, Engine, FixedFraction};
use crate::domain::market::Interval;
use crate::domain::market::candle::{Candle, CandleColumns};
use crate::domain::money::{Price, Qty, Quote};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::sync::atomic::AtomicBool;

/// A walk of whole ticks with odd volumes (so that rebuilding a candle exercises every column),
/// its decimals normalised as parsed ones are (the columns give candles back normalised).
fn candles(steps: &[i8], cents: i64) -> Vec<Candle> {
    tick_walk(steps, cents, 2)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            normalised(Candle {
                volume: Qty(Decimal::new(1_000 + i as i64 * 37, 3)),
                ..c
            })
        })
        .collect()
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

fn engine(spec: &StrategySpec, all_in: bool) -> Engine<super::BuiltinStrategy> {
    let cash = Quote(Decimal::new(100_000, 0));
    let strategy = Box::new(build_strategy(spec).unwrap());
    if all_in {
        Engine::new(strategy, Box::new(AllIn), cash)
    } else {
        let fraction = Decimal::new(37, 2);
        Engine::new(strategy, Box::new(FixedFraction { fraction }), cash)
    }
}

fn config(fill: FillModel) -> BacktestConfig {
    let mut config = BacktestConfig::new(Interval::M1);
    config.fill_model = fill;
    config
}

fn run(
    spec: &StrategySpec,
    fill: FillModel,
    all_in: bool,
    candles: &[Candle],
    columns: &CandleColumns,
    trade_from: usize,
) -> BacktestResult {
    let never = AtomicBool::new(false);
    BacktestService::run_builtin(
        &config(fill),
        engine(spec, all_in),
        candles,
        columns,
        trade_from,
        &never,
        &mut |_, _| {},
    )
    .unwrap()
}

/// The exits that read whole candles (stops and targets inside a candle, a trailing stop
/// walked through its path, break-even moves at closes, a resting limit entry).
const EXITS: [&[(&str, f64)]; 6] = [
    &[],
    &[("stop_pct", 1.0), ("take_pct", 2.0)],
    &[("stop_pct", 1.0), ("take_pct", 3.0), ("breakeven_r", 1.0)],
    &[("trail_bips", 80.0)],
    &[
        ("entry_limit_bps", 30.0),
        ("entry_timeout_candles", 3.0),
        ("stop_pct", 1.5),
    ],
    &[
        ("stop_pct", 1.0),
        ("take_pct", 1.0),
        ("scale_out_pct", 50.0),
    ],
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_run_on_exact_columns_alone_is_the_run_with_the_candles(
        steps in prop::collection::vec(-3i8..=3, 40..500),
        cents in prop::sample::select(vec![1i64, 50, 500]),
        fast in 1usize..10,
        longer in 1usize..20,
        fill in prop::sample::select(vec![FillModel::Close, FillModel::NextOpen]),
        all_in in any::<bool>(),
        exits in 0usize..EXITS.len(),
        warm in 0usize..40,
    ) {
        let data = candles(&steps, cents);
        let columns = CandleColumns::from_candles(&data);
        prop_assert!(columns.holds_exact_candles());
        let spec = spec(fast, fast + longer, EXITS[exits]);
        let trade_from = warm.min(data.len() - 1);
        let with_candles = run(&spec, fill, all_in, &data, &columns, trade_from);
        let alone = run(&spec, fill, all_in, &[], &columns, trade_from);
        // Debug shows every decimal with its scale and every f64 to its last bit.
        prop_assert_eq!(format!("{alone:?}"), format!("{with_candles:?}"));
    }

    #[test]
    fn the_last_point_alone_gives_the_total_return_of_the_full_run(
        steps in prop::collection::vec(-3i8..=3, 40..500),
        cents in prop::sample::select(vec![1i64, 50, 500]),
        fast in 1usize..10,
        longer in 1usize..20,
        fill in prop::sample::select(vec![FillModel::Close, FillModel::NextOpen]),
        all_in in any::<bool>(),
        exits in 0usize..EXITS.len(),
    ) {
        let data = candles(&steps, cents);
        let columns = CandleColumns::from_candles(&data);
        let spec = spec(fast, fast + longer, EXITS[exits]);
        let never = AtomicBool::new(false);
        let full = run(&spec, fill, all_in, &data, &columns, 0).metrics.total_return_pct;
        let last_only = BacktestService::run_builtin_total_return(
            &config(fill),
            engine(&spec, all_in),
            &data,
            &columns,
            &never,
        )
        .unwrap();
        prop_assert_eq!(last_only.to_bits(), full.to_bits());
    }
}

/// A run handed no candles and columns that cannot give them back is a driver's mistake, not
/// a run on nothing.
#[test]
#[should_panic(expected = "do not hold them exactly")]
fn a_run_without_candles_needs_exact_columns() {
    let mut data = candles(&[1, -1, 2, -2, 1], 50);
    // 29 significant digits: no f64 gives this price back.
    data[2].high = Price(Decimal::from_i128_with_scale(
        12_345_678_901_234_567_890_123_456_789,
        10,
    ));
    let columns = CandleColumns::from_candles(&data);
    assert!(!columns.holds_exact_candles());
    run(&spec(1, 2, &[]), FillModel::Close, true, &[], &columns, 0);
}
