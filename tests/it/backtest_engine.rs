//! The backtest engine as a flow: a strategy cannot see past the current candle, and a full
//! round trip books slippage, fees and lot rounding exactly as computed by hand.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::atomic::AtomicBool;
use trademind::domain::backtest::{
    AllIn, BacktestConfig, BacktestError, BacktestService, Costs, Engine, ExitReason, FillModel,
    History, LimitEntry, Rejection, Signal, Strategy, StrategyContext,
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

/// Wants in on every candle: a post-only limit buy 50 bps under the close, resting 2 candles,
/// stop 95.
struct LimitDipBuyer;
impl Strategy for LimitDipBuyer {
    fn name(&self) -> &str {
        "limit-dip-buyer"
    }
    fn on_candle(&mut self, _ctx: &StrategyContext<'_>) -> Option<Signal> {
        Some(
            Signal::enter_long()
                .with_stop_loss(Price(dec!(95)))
                .with_limit_entry(LimitEntry {
                    offset_bps: 50,
                    post_only: true,
                    timeout_candles: 2,
                }),
        )
    }
}

fn bar(i: i64, open: Decimal, high: Decimal, low: Decimal, close: Decimal) -> Candle {
    Candle {
        open_time: i * 3_600_000,
        open: Price(open),
        high: Price(high),
        low: Price(low),
        close: Price(close),
        volume: Qty(dec!(1)),
    }
}

/// Fees 10 bps taker, 2 bps maker; all in; lot 0.01.
/// Candle 0 closes at 100: a buy limit at 99.50 rests. Candles 1 and 2 dip to 99.6 and 99.8
/// only: at candle 2 it is cancelled (a rejection "not filled within 2 candles"), and candle 2's
/// close sends a new one at 99.50. Candle 3 falls to 94: it fills at 99.50 as the maker,
/// 10000 / (99.5 × 1.0002) = 100.482.. -> 100.48, cost 9997.76, fee 1.999552 (the stop is
/// not checked in the candle that filled it). Candle 4 falls from 96 through the stop: sold at
/// 95 as a taker, 9545.6, fee 9.5456. PnL 9545.6 − 9.5456 − 9997.76 − 1.999552 =
/// −463.705152.
#[test]
fn limit_entry_fills_at_its_limit_as_the_maker_and_a_missed_one_is_cancelled_at_its_time_out() {
    let candles = vec![
        bar(0, dec!(100), dec!(100), dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(101), dec!(99.6), dec!(100.5)),
        bar(2, dec!(100.5), dec!(101), dec!(99.8), dec!(100)),
        bar(3, dec!(100), dec!(100.2), dec!(94), dec!(96)),
        bar(4, dec!(96), dec!(97), dec!(94.5), dec!(95)),
    ];
    let cols = CandleColumns::from_candles(&candles);
    for fill_model in [FillModel::Close, FillModel::NextOpen] {
        let mut config = BacktestConfig::new(Interval::H1);
        config.initial_cash = Quote(dec!(10000));
        config.costs = Costs::from_bps(dec!(10), dec!(2), dec!(0));
        config.fill_model = fill_model;
        config.filters.step_size = dec!(0.01);
        config.filters.tick_size = dec!(0.01);
        let engine = Engine::new(
            Box::new(LimitDipBuyer),
            Box::new(AllIn),
            config.initial_cash,
        )
        .with_fee_rate(config.costs.taker_fee);
        let r = BacktestService::run(
            &config,
            engine,
            &candles,
            &cols,
            &AtomicBool::new(false),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(
            r.rejections,
            [(
                2 * 3_600_000,
                Rejection::Expired {
                    limit: Price(dec!(99.5)),
                    candles: 2
                }
            )],
            "{fill_model}"
        );
        assert_eq!(r.trades.len(), 1, "{:#?}", r.trades);
        let t = &r.trades[0];
        assert_eq!(t.entry_time, 3 * 3_600_000);
        assert_eq!(
            (t.entry_price, t.qty),
            (Price(dec!(99.5)), Qty(dec!(100.48)))
        );
        assert_eq!(t.entry_fee, Quote(dec!(1.999552)));
        assert_eq!(t.exit_reason, Some(ExitReason::StopLoss));
        assert_eq!(t.exit_time, Some(4 * 3_600_000));
        assert_eq!(t.exit_price, Some(Price(dec!(95))));
        assert_eq!(t.exit_fee, Quote(dec!(9.5456)));
        assert_eq!(t.pnl, Quote(dec!(-463.705152)));
    }
}
