//! The market a candle replay implies, for a replay that has no exchange behind it (the demo):
//! the trades a candle's moves printed and an order book around its close. Deterministic: the
//! same candle, tick and step always give the same trades and book, so the demo's Market
//! screen can be snapshotted.

use rust_decimal::Decimal;

use super::candle::{Candle, Interval};
use crate::domain::money::{Price, Qty};

/// One side of a book: (price, quantity) levels, best first.
pub type BookSide = Vec<(Price, Qty)>;

/// One trade a candle implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayTrade {
    pub time_ms: i64,
    pub price: Price,
    pub qty: Qty,
    /// The aggressor sold (the price ticked down to this print), as Binance's `m` flag says.
    pub buyer_is_maker: bool,
}

/// The prints of one candle: open, then the nearer extreme of its path (low first when it
/// closed up, high first when it closed down), the other extreme, and the close, spread over
/// the candle's time. Its volume is split evenly between them, at the symbol's `step`.
pub fn candle_trades(
    candle: &Candle,
    interval: Interval,
    tick: Decimal,
    step: Decimal,
) -> Vec<ReplayTrade> {
    let up = candle.close >= candle.open;
    let path = if up {
        [candle.open, candle.low, candle.high, candle.close]
    } else {
        [candle.open, candle.high, candle.low, candle.close]
    };
    let span = (interval.millis() - 1).max(0);
    let qty = floor_to(candle.volume.get() / Decimal::from(path.len()), step).max(step);
    let mut previous = candle.open;
    path.iter()
        .enumerate()
        .map(|(i, price)| {
            let price = Price(round_to(price.get(), tick));
            let buyer_is_maker = if i == 0 { !up } else { price < previous };
            previous = price;
            ReplayTrade {
                time_ms: candle.open_time + span * i as i64 / (path.len() as i64 - 1),
                price,
                qty: Qty(qty),
                buyer_is_maker,
            }
        })
        .collect()
}

/// A book of `levels` a side around the candle's close: the best bid one tick under the close
/// and the best ask one tick over it; deeper levels spaced by a fraction of the candle's range
/// (at least a tick) and sized from its volume, thicker with depth, with a wobble derived
/// from the candle's time so the ladder does not look machine-made. Best level first.
pub fn candle_book(
    candle: &Candle,
    tick: Decimal,
    step: Decimal,
    levels: usize,
) -> (BookSide, BookSide) {
    if levels == 0 || tick <= Decimal::ZERO {
        return (Vec::new(), Vec::new());
    }
    let close = round_to(candle.close.get(), tick);
    let range = candle.high.get() - candle.low.get();
    let gap = round_to(range / Decimal::from(levels as u64 * 4), tick).max(tick);
    // A level's share of the candle's volume: 1 % at the top, growing with depth.
    let unit = candle.volume.get() / Decimal::from(100);
    let size = |side: u64, i: usize| {
        let wobble = Decimal::from(wobble(candle.open_time, side, i as u64)) / Decimal::from(100);
        let depth = Decimal::ONE + Decimal::from(i as u64) / Decimal::from(4);
        Qty(floor_to(unit * depth * wobble, step).max(step))
    };
    let mut bids = Vec::with_capacity(levels);
    let mut asks = Vec::with_capacity(levels);
    for i in 0..levels {
        let away = tick + gap * Decimal::from(i as u64);
        let bid = close - away;
        if bid > Decimal::ZERO {
            bids.push((Price(bid), size(0, i)));
        }
        asks.push((Price(close + away), size(1, i)));
    }
    (bids, asks)
}

/// 50..=150, from a hash of the candle's time, its side and level (splitmix64's finaliser).
fn wobble(open_time: i64, side: u64, level: u64) -> u64 {
    let mut z = (open_time as u64)
        .wrapping_add(side.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(level.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    50 + z % 101
}

fn round_to(value: Decimal, tick: Decimal) -> Decimal {
    if tick <= Decimal::ZERO {
        return value;
    }
    (value / tick).round() * tick
}

fn floor_to(value: Decimal, step: Decimal) -> Decimal {
    if step <= Decimal::ZERO {
        return value;
    }
    (value / step).floor() * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn candle(open: Decimal, high: Decimal, low: Decimal, close: Decimal) -> Candle {
        Candle {
            open_time: 1_735_689_600_000,
            open: Price(open),
            high: Price(high),
            low: Price(low),
            close: Price(close),
            volume: Qty(dec!(1000.12345)),
        }
    }

    #[test]
    fn an_up_candle_prints_open_low_high_close_inside_its_hour() {
        let c = candle(dec!(100), dec!(110), dec!(95), dec!(105));
        let trades = candle_trades(&c, Interval::H1, dec!(0.01), dec!(0.00001));
        let prices: Vec<Decimal> = trades.iter().map(|t| t.price.get()).collect();
        assert_eq!(prices, vec![dec!(100), dec!(95), dec!(110), dec!(105)]);
        assert_eq!(trades[0].time_ms, c.open_time);
        assert_eq!(trades[3].time_ms, c.open_time + 3_599_999);
        assert!(trades.windows(2).all(|w| w[0].time_ms < w[1].time_ms));
        // Down to the low and from the high to the close the seller was the aggressor.
        let sells: Vec<bool> = trades.iter().map(|t| t.buyer_is_maker).collect();
        assert_eq!(sells, vec![false, true, false, true]);
        // A quarter of the volume each, at the step.
        assert!(trades.iter().all(|t| t.qty == Qty(dec!(250.03086))));
    }

    #[test]
    fn a_down_candle_visits_its_high_first() {
        let c = candle(dec!(100), dec!(104), dec!(90), dec!(92));
        let trades = candle_trades(&c, Interval::H1, dec!(0.01), dec!(0.00001));
        let prices: Vec<Decimal> = trades.iter().map(|t| t.price.get()).collect();
        assert_eq!(prices, vec![dec!(100), dec!(104), dec!(90), dec!(92)]);
    }

    #[test]
    fn the_book_straddles_the_close_at_the_tick_best_first_and_is_deterministic() {
        let c = candle(dec!(100), dec!(110), dec!(90), dec!(100.004));
        let (bids, asks) = candle_book(&c, dec!(0.01), dec!(0.00001), 10);
        assert_eq!(bids.len(), 10);
        assert_eq!(asks.len(), 10);
        assert_eq!(bids[0].0, Price(dec!(99.99)));
        assert_eq!(asks[0].0, Price(dec!(100.01)));
        assert!(bids.windows(2).all(|w| w[0].0 > w[1].0));
        assert!(asks.windows(2).all(|w| w[0].0 < w[1].0));
        for (price, qty) in bids.iter().chain(&asks) {
            assert_eq!(price.get(), round_to(price.get(), dec!(0.01)));
            assert_eq!(qty.get(), floor_to(qty.get(), dec!(0.00001)));
            assert!(qty.get() > Decimal::ZERO);
        }
        assert_eq!(candle_book(&c, dec!(0.01), dec!(0.00001), 10), (bids, asks));
    }
}
