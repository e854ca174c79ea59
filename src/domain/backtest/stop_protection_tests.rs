//! The backtest engine refuses entry signals during a cooldown or lock after stops, by the same
//! rule live trading applies (`risk::stop_protection`), and lists them with the run's rejections.

use super::engine::{Engine, ExitReason, FixedFraction, Signal, Strategy, StrategyContext};
use crate::domain::market::candle::{Candle, CandleColumns};
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::risk::RiskConfig;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn candle(t: i64, close: Decimal) -> Candle {
    Candle {
        open_time: t,
        open: Price(close),
        high: Price(close),
        low: Price(close),
        close: Price(close),
        volume: Qty(dec!(1)),
    }
}

struct AlwaysBuyStop95;
impl Strategy for AlwaysBuyStop95 {
    fn name(&self) -> &str {
        "always-buy-stop-95"
    }
    fn on_candle(&mut self, _ctx: &StrategyContext<'_>) -> Option<Signal> {
        Some(Signal::enter_long().with_stop_loss(Price(dec!(95))))
    }
}

/// Hourly candles from 2025-01-15 00:00 UTC, all at 100, candle 1 dipping to 90: bought at
/// candle 0's close, stopped at 95 in candle 1 (01:00). With a 3-candle cooldown the entry
/// signals at the closes of candles 1 (02:00, one candle after the stop) and 2 (03:00, two)
/// are refused; candle 3's close (04:00, three) buys again. Without it, candle 1's close
/// buys right after the stop.
fn run_stopped_out(risk: &RiskConfig) -> crate::domain::backtest::BacktestResult {
    use crate::domain::backtest::fills::FillModel;
    use crate::domain::backtest::{BacktestConfig, BacktestService};
    use crate::domain::market::Interval;
    const T0: i64 = 1_736_899_200_000;
    let hour = Interval::H1.millis();
    let mut candles: Vec<Candle> = (0..5).map(|i| candle(T0 + i * hour, dec!(100))).collect();
    candles[1].low = Price(dec!(90));
    let cols = CandleColumns::from_candles(&candles);
    let mut config = BacktestConfig::new(Interval::H1);
    config.fill_model = FillModel::Close;
    let engine = Engine::new(
        Box::new(AlwaysBuyStop95),
        Box::new(FixedFraction {
            fraction: dec!(0.5),
        }),
        Quote(dec!(1000)),
    )
    .with_stop_protections(risk, hour);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    BacktestService::run(&config, engine, &candles, &cols, &cancel, &mut |_, _| {}).unwrap()
}

#[test]
fn an_entry_signal_inside_the_cooldown_after_a_stop_is_refused() {
    const T0: i64 = 1_736_899_200_000;
    const HOUR: i64 = 3_600_000;
    let risk = RiskConfig {
        cooldown_candles_after_stop: 3,
        ..RiskConfig::default()
    };
    let r = run_stopped_out(&risk);
    let entries: Vec<i64> = r.trades.iter().map(|t| t.entry_time).collect();
    assert_eq!(entries, vec![T0, T0 + 3 * HOUR]);
    assert_eq!(r.trades[0].exit_reason, Some(ExitReason::StopLoss));
    assert_eq!(r.trades[0].exit_time, Some(T0 + HOUR));
    let refused: Vec<(i64, String)> = r
        .rejections
        .iter()
        .map(|(at, why)| (*at, why.to_string()))
        .collect();
    assert_eq!(
        refused,
        vec![
            (
                T0 + HOUR,
                "entry refused by risk: cooldown: 1 of 3 candles after the stop at \
                 2025-01-15 01:00 UTC; entries resume at 2025-01-15 04:00 UTC"
                    .to_string()
            ),
            (
                T0 + 2 * HOUR,
                "entry refused by risk: cooldown: 2 of 3 candles after the stop at \
                 2025-01-15 01:00 UTC; entries resume at 2025-01-15 04:00 UTC"
                    .to_string()
            ),
        ]
    );
    // The same run without the rule re-enters at the stop candle's close.
    let free = run_stopped_out(&RiskConfig::default());
    assert_eq!(free.trades[1].entry_time, T0 + HOUR);
    assert!(free.rejections.is_empty());
}
