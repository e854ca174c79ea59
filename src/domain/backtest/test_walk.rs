//! Candles from a walk of whole ticks, shared by the backtest's property tests: prices a whole
//! number of `cents` apart, so the averages often tie exactly.

use crate::domain::market::Candle;
use crate::domain::money::{Price, Qty};
use rust_decimal::Decimal;

/// One candle a step, one minute apart: open at the last close, close `step` ticks away, the
/// wicks `wick` ticks beyond the body; prices in cents (scale 2), volume 1.
pub(crate) fn tick_walk(steps: &[i8], cents: i64, wick: i64) -> Vec<Candle> {
    let mut price: i64 = 10_000;
    steps
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let open = price;
            price = (price + i64::from(s) * cents).max(cents);
            let (lo, hi) = (open.min(price), open.max(price));
            Candle {
                open_time: 1_700_000_000_000 + i as i64 * 60_000,
                open: Price(Decimal::new(open, 2)),
                high: Price(Decimal::new(hi + wick * cents, 2)),
                low: Price(Decimal::new((lo - wick * cents).max(1), 2)),
                close: Price(Decimal::new(price, 2)),
                volume: Qty(Decimal::ONE),
            }
        })
        .collect()
}

/// `c` with every decimal normalised, as parsed candles are.
pub(crate) fn normalised(c: Candle) -> Candle {
    Candle {
        open: Price(c.open.0.normalize()),
        high: Price(c.high.0.normalize()),
        low: Price(c.low.0.normalize()),
        close: Price(c.close.0.normalize()),
        volume: Qty(c.volume.0.normalize()),
        ..c
    }
}
