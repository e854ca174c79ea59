//! What the backtest tests share: hourly candles from a list of closes, and a run through the
//! command line's path (`app::backtest::run_on`: the engine loop specialised for the strategy).

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use trademind::app::backtest::{BacktestRequest, CandleSource, SizingChoice, run_on};
use trademind::domain::backtest::{BacktestResult, Costs, FillModel, StrategySpec};
use trademind::domain::market::{Candle, CandleColumns, Interval};
use trademind::domain::money::{Price, Qty, Quote};
use trademind::domain::risk::RiskConfig;

pub const H: i64 = 3_600_000;

/// Hourly candles from t = 0, each opening at the previous close.
pub fn hourly_candles(closes: &[f64]) -> Vec<Candle> {
    let mut prev = closes[0];
    closes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (open, close) = (
                Decimal::from_f64(prev).unwrap(),
                Decimal::from_f64(c).unwrap(),
            );
            prev = c;
            Candle {
                open_time: i as i64 * H,
                open: Price(open),
                high: Price(open.max(close)),
                low: Price(open.min(close)),
                close: Price(close),
                volume: Qty(Decimal::ONE),
            }
        })
        .collect()
}

/// A strategy by name with `key=value` parameters.
pub fn spec(name: &str, params: &[(&str, f64)]) -> StrategySpec {
    StrategySpec {
        name: name.into(),
        params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

/// An all-in hourly request with Binance's default fees.
pub fn request(strategy: StrategySpec, initial_cash: Decimal, fill: FillModel) -> BacktestRequest {
    BacktestRequest {
        strategy,
        symbol: "TEST".into(),
        interval: Interval::H1,
        from: None,
        to: None,
        source: CandleSource::Csv(PathBuf::from("unused.csv")),
        initial_cash: Quote(initial_cash),
        costs: Costs::default(),
        fill,
        sizing: SizingChoice::AllIn,
        risk: RiskConfig::default(),
    }
}

/// Run `strategy` all-in over `candles` from 100,000 quote, as `trademind backtest` does.
pub fn run_all_in(strategy: StrategySpec, candles: &[Candle], fill: FillModel) -> BacktestResult {
    run_on(
        &request(strategy, Decimal::new(100_000, 0), fill),
        candles,
        &CandleColumns::from_candles(candles),
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap()
}
