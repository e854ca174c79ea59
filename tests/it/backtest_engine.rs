//! The backtest engine as a flow: a strategy cannot see past the current candle, and a full
//! round trip books slippage, fees and lot rounding exactly as computed by hand.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::atomic::AtomicBool;
use trademind::domain::backtest::{
    AllIn, BacktestConfig, BacktestError, BacktestService, Costs, Engine, FillModel, History,
    Signal, Strategy, StrategyContext,
};
use trademind::domain::market::{Candle, CandleColumns, Interval};
use trademind::domain::money::{Price, Qty, Quote};

fn candle(i: i64, open: Decimal, close: Decimal) -> Candle {
    Candle {
        open_time: i * 3_600_000,
        open: Price(open),
        high: Price(open.max(close)),
        low: Price(open.min(close)),
        close: Price(close),
        volume: Qty(dec!(1)),
    }
}

/// Records everything it was shown and trades on the sum of every close it can see, so any
/// leak of a later candle would change its decisions.
#[derive(Default)]
struct Snooper {
    seen: Vec<(usize, i64, i64)>,
    decisions: Vec<bool>,
}

impl Strategy for Snooper {
    fn name(&self) -> &str {
        "snooper"
    }
    fn on_candle(&mut self, ctx: &StrategyContext<'_>) -> Option<Signal> {
        let h = &ctx.history;
        let newest = h.candles().iter().map(|c| c.open_time).max().unwrap();
        self.seen.push((h.len(), h.current().open_time, newest));
        let all: f64 = h.closes().iter().sum();
        let buy = all / h.len() as f64 > h.close();
        self.decisions.push(buy);
        buy.then(Signal::enter_long)
    }
}

#[test]
fn strategy_sees_only_candles_up_to_the_current_one() {
    let base: Vec<Candle> = (0..50)
        .map(|i| candle(i, Decimal::from(100 + i % 7), Decimal::from(100 + i % 5)))
        .collect();
    // Same first 25 candles, then a wildly different future.
    let mut other = base.clone();
    for (i, c) in other.iter_mut().enumerate().skip(25) {
        *c = candle(i as i64, dec!(1), Decimal::from(1000 * i as i64));
    }
    let mut decisions = Vec::new();
    for candles in [&base, &other] {
        let cols = CandleColumns::from_candles(candles);
        let mut snooper = Snooper::default();
        for i in 0..candles.len() {
            let ctx = StrategyContext {
                history: History::up_to(candles, &cols, i),
                position: Default::default(),
                cash: Quote::ZERO,
            };
            snooper.on_candle(&ctx);
            let (len, current, newest) = snooper.seen[i];
            assert_eq!(len, i + 1);
            assert_eq!(current, candles[i].open_time);
            assert_eq!(newest, current, "a later candle was visible at {i}");
            assert_eq!(ctx.history.closes().len(), i + 1);
            assert_eq!(ctx.history.highs().len(), i + 1);
        }
        decisions.push(snooper.decisions);
    }
    assert_eq!(decisions[0][..25], decisions[1][..25]);
    assert_ne!(decisions[0][25..], decisions[1][25..]);
}

/// Buys on the first candle's close, sells on the second's.
struct Script(usize);
impl Strategy for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn on_candle(&mut self, _ctx: &StrategyContext<'_>) -> Option<Signal> {
        self.0 += 1;
        match self.0 {
            1 => Some(Signal::enter_long()),
            2 => Some(Signal::exit_long()),
            _ => None,
        }
    }
}

#[test]
fn round_trip_books_slippage_fees_and_lot_rounding_to_the_cent() {
    let candles = vec![
        candle(0, dec!(100), dec!(100)),
        candle(1, dec!(100), dec!(105)),
        candle(2, dec!(110), dec!(111)),
    ];
    let cols = CandleColumns::from_candles(&candles);
    let mut config = BacktestConfig::new(Interval::H1);
    config.initial_cash = Quote(dec!(10000));
    config.costs = Costs::from_bps(dec!(10), dec!(10), dec!(10));
    config.fill_model = FillModel::NextOpen;
    config.filters.step_size = dec!(0.01);
    let engine = Engine::new(Box::new(Script(0)), Box::new(AllIn), config.initial_cash);
    let r = BacktestService::run(
        &config,
        engine,
        &candles,
        &cols,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap();
    // Buy at candle 1's open 100 + 10 bps = 100.1; 10000 / (100.1 * 1.001) = 99.8003.. -> 99.80
    // cost 99.80 * 100.1 = 9989.98, fee 9.98998, cash left 0.03002.
    // Sell at candle 2's open 110 - 10 bps = 109.89; 99.80 * 109.89 = 10967.022, fee 10.967022.
    let t = &r.trades[0];
    assert_eq!(t.entry_price, Price(dec!(100.1)));
    assert_eq!(t.qty, Qty(dec!(99.80)));
    assert_eq!(t.entry_fee, Quote(dec!(9.98998)));
    assert_eq!(t.exit_price, Some(Price(dec!(109.89))));
    assert_eq!(t.exit_fee, Quote(dec!(10.967022)));
    assert_eq!(r.final_equity, Quote(dec!(10956.084998)));
    // 10967.022 - 10.967022 - 9989.98 - 9.98998
    assert_eq!(t.pnl, Quote(dec!(956.084998)));
    assert!((r.metrics.fees_paid - 20.957002).abs() < 1e-9);
    assert_eq!(r.metrics.trades, 1);
    assert!((r.metrics.win_rate_pct - 100.0).abs() < 1e-12);
}

#[test]
fn cancelling_stops_the_run() {
    let candles = vec![candle(0, dec!(1), dec!(1))];
    let cols = CandleColumns::from_candles(&candles);
    let config = BacktestConfig::new(Interval::H1);
    let engine = Engine::new(Box::new(Script(0)), Box::new(AllIn), config.initial_cash);
    let r = BacktestService::run(
        &config,
        engine,
        &candles,
        &cols,
        &AtomicBool::new(true),
        &mut |_, _| {},
    );
    assert_eq!(
        r,
        Err(BacktestError::Cancelled {
            done: 0,
            total: 1,
            partial: None
        })
    );
}
