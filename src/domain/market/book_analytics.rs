//! `OrderBookService`: pure analytics over a local `OrderBook` — spread, mid, microprice,
//! imbalance, depth near the mid, liquidity walls as support/resistance, and the average fill
//! price and slippage of a market order walked through the book. All exact `Decimal` maths.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::market::orderbook::OrderBook;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::trading::order::Side;

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);
const TWO: Decimal = Decimal::TWO;

/// Best ask minus best bid, absolute and in basis points of the mid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub absolute: Price,
    pub bps: Decimal,
}

/// Resting quantity and notional within a band around the mid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DepthBand {
    pub bid_qty: Qty,
    pub ask_qty: Qty,
    pub bid_notional: Quote,
    pub ask_notional: Quote,
}

/// A level whose size stands out from its neighbours: `size_to_median` times the median size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Wall {
    pub price: Price,
    pub qty: Qty,
    pub size_to_median: Decimal,
}

/// Bid walls below the market (support) and ask walls above it (resistance), nearest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Walls {
    pub support: Vec<Wall>,
    pub resistance: Vec<Wall>,
}

/// What a market order of `filled` would cost if it swept the book as it stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FillEstimate {
    pub side: Side,
    pub filled: Qty,
    /// Quantity-weighted average price over the levels consumed.
    pub avg_price: Price,
    /// Price of the last (worst) level touched.
    pub worst_price: Price,
    /// Total quote paid (buy) or received (sell).
    pub notional: Quote,
    /// Adverse distance of `avg_price` from the best price on the consumed side, in bps (>= 0).
    pub slippage_bps: Decimal,
    /// Adverse distance of `avg_price` from the mid, in bps: half the spread plus the slippage.
    pub cost_vs_mid_bps: Decimal,
    pub levels_consumed: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("quantity to fill must be positive, got {0}")]
    NonPositiveQuantity(Qty),
    #[error(
        "not enough depth in the local book: {requested} requested, only {available} resting on the {side} side"
    )]
    InsufficientDepth {
        side: Side,
        requested: Qty,
        available: Qty,
    },
    #[error("the order book has no bid or no ask; wait for the book to sync")]
    EmptyBook,
}

/// Stateless analytics; every function reads the book as it is now.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderBookService;

impl OrderBookService {
    /// `(best_bid + best_ask) / 2`; `None` unless both sides have a level.
    pub fn mid(book: &OrderBook) -> Option<Price> {
        let (bid, _) = book.best_bid()?;
        let (ask, _) = book.best_ask()?;
        Some(Price::new((bid.get() + ask.get()) / TWO))
    }

    pub fn spread(book: &OrderBook) -> Option<Spread> {
        let (bid, _) = book.best_bid()?;
        let (ask, _) = book.best_ask()?;
        let mid = (bid.get() + ask.get()) / TWO;
        let absolute = ask.get() - bid.get();
        let bps = if mid.is_zero() {
            Decimal::ZERO
        } else {
            absolute / mid * BPS
        };
        Some(Spread {
            absolute: Price::new(absolute),
            bps,
        })
    }

    /// Size-weighted mid: `(ask × bid_qty + bid × ask_qty) / (bid_qty + ask_qty)`. It leans
    /// towards the side with less resting size, where the next trade is likelier to print.
    pub fn microprice(book: &OrderBook) -> Option<Price> {
        let (bid, bid_qty) = book.best_bid()?;
        let (ask, ask_qty) = book.best_ask()?;
        let total = bid_qty.get() + ask_qty.get();
        if total.is_zero() {
            return None;
        }
        Some(Price::new(
            (ask.get() * bid_qty.get() + bid.get() * ask_qty.get()) / total,
        ))
    }

    /// `(bid_size - ask_size) / (bid_size + ask_size)` over the best `levels` of each side, in
    /// [-1, 1]: positive when buyers rest more size.
    pub fn imbalance(book: &OrderBook, levels: usize) -> Option<Decimal> {
        let bid: Decimal = book.bids().take(levels).map(|(_, q)| q.get()).sum();
        let ask: Decimal = book.asks().take(levels).map(|(_, q)| q.get()).sum();
        let total = bid + ask;
        if total.is_zero() {
            return None;
        }
        Some((bid - ask) / total)
    }

    /// Size resting within `bps` basis points of the mid on each side (bounds inclusive).
    pub fn depth_within_bps(book: &OrderBook, bps: Decimal) -> Option<DepthBand> {
        let mid = Self::mid(book)?.get();
        let lower = mid * (Decimal::ONE - bps / BPS);
        let upper = mid * (Decimal::ONE + bps / BPS);
        let mut band = DepthBand {
            bid_qty: Qty::ZERO,
            ask_qty: Qty::ZERO,
            bid_notional: Quote::ZERO,
            ask_notional: Quote::ZERO,
        };
        for (price, qty) in book.bids().take_while(|(p, _)| p.get() >= lower) {
            band.bid_qty += qty;
            band.bid_notional += price * qty;
        }
        for (price, qty) in book.asks().take_while(|(p, _)| p.get() <= upper) {
            band.ask_qty += qty;
            band.ask_notional += price * qty;
        }
        Some(band)
    }

    /// Walls among the best `levels` of each side: levels whose size is at least `multiple` × the
    /// median size of those levels. Bid walls are support, ask walls resistance, nearest first.
    pub fn liquidity_walls(book: &OrderBook, levels: usize, multiple: Decimal) -> Walls {
        Walls {
            support: walls_of(book.bids().take(levels).collect(), multiple),
            resistance: walls_of(book.asks().take(levels).collect(), multiple),
        }
    }

    /// Walk the opposite side of the book (asks for a buy, bids for a sell) until `qty` is filled.
    pub fn estimate_fill(
        book: &OrderBook,
        side: Side,
        qty: Qty,
    ) -> Result<FillEstimate, FillError> {
        if !qty.is_positive() {
            return Err(FillError::NonPositiveQuantity(qty));
        }
        let mid = Self::mid(book).ok_or(FillError::EmptyBook)?.get();
        let levels: Box<dyn Iterator<Item = (Price, Qty)> + '_> = match side {
            Side::Buy => Box::new(book.asks()),
            Side::Sell => Box::new(book.bids()),
        };
        let mut remaining = qty.get();
        let mut notional = Decimal::ZERO;
        let mut best = None;
        let mut worst = Price::ZERO;
        let mut levels_consumed = 0;
        let mut available = Decimal::ZERO;
        for (price, level_qty) in levels {
            if remaining.is_zero() {
                break;
            }
            best.get_or_insert(price);
            let take = remaining.min(level_qty.get());
            notional += price.get() * take;
            remaining -= take;
            available += level_qty.get();
            worst = price;
            levels_consumed += 1;
        }
        if !remaining.is_zero() {
            return Err(FillError::InsufficientDepth {
                side,
                requested: qty,
                available: Qty::new(available),
            });
        }
        let best = best.ok_or(FillError::EmptyBook)?.get();
        let avg = notional / qty.get();
        let adverse = |reference: Decimal| match side {
            Side::Buy => (avg - reference) / reference * BPS,
            Side::Sell => (reference - avg) / reference * BPS,
        };
        Ok(FillEstimate {
            side,
            filled: qty,
            avg_price: Price::new(avg),
            worst_price: worst,
            notional: Quote::new(notional),
            slippage_bps: adverse(best),
            cost_vs_mid_bps: adverse(mid),
            levels_consumed,
        })
    }
}

fn walls_of(levels: Vec<(Price, Qty)>, multiple: Decimal) -> Vec<Wall> {
    let mut sizes: Vec<Decimal> = levels.iter().map(|(_, q)| q.get()).collect();
    if sizes.is_empty() {
        return Vec::new();
    }
    sizes.sort_unstable();
    let n = sizes.len();
    let median = if n % 2 == 1 {
        sizes[n / 2]
    } else {
        (sizes[n / 2 - 1] + sizes[n / 2]) / TWO
    };
    if median.is_zero() {
        return Vec::new();
    }
    let threshold = median * multiple;
    levels
        .into_iter()
        .filter(|(_, q)| q.get() >= threshold)
        .map(|(price, qty)| Wall {
            price,
            qty,
            size_to_median: qty.get() / median,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn lv(price: Decimal, qty: Decimal) -> (Price, Qty) {
        (Price::new(price), Qty::new(qty))
    }

    /// bids 100×2, 99×3, 98×10, 97×1, 96×4 ; asks 102×1, 103×2, 104×12, 105×3, 106×2
    fn book() -> OrderBook {
        let mut book = OrderBook::new(100);
        book.apply_snapshot(
            1,
            [
                lv(dec!(100), dec!(2)),
                lv(dec!(99), dec!(3)),
                lv(dec!(98), dec!(10)),
                lv(dec!(97), dec!(1)),
                lv(dec!(96), dec!(4)),
            ],
            [
                lv(dec!(102), dec!(1)),
                lv(dec!(103), dec!(2)),
                lv(dec!(104), dec!(12)),
                lv(dec!(105), dec!(3)),
                lv(dec!(106), dec!(2)),
            ],
        )
        .unwrap();
        book
    }

    #[test]
    fn mid_and_spread_come_from_the_touch() {
        let book = book();
        assert_eq!(OrderBookService::mid(&book), Some(Price::new(dec!(101))));
        let spread = OrderBookService::spread(&book).unwrap();
        assert_eq!(spread.absolute, Price::new(dec!(2)));
        // 2 / 101 × 10000 = 198.0198…
        assert_eq!(spread.bps.round_dp(4), dec!(198.0198));
    }

    #[test]
    fn analytics_on_an_empty_side_are_none() {
        let mut book = OrderBook::new(10);
        book.apply_snapshot(1, [lv(dec!(100), dec!(1))], [])
            .unwrap();
        assert_eq!(OrderBookService::mid(&book), None);
        assert_eq!(OrderBookService::spread(&book), None);
        assert_eq!(OrderBookService::microprice(&book), None);
        assert_eq!(
            OrderBookService::estimate_fill(&book, Side::Sell, Qty::new(dec!(1))),
            Err(FillError::EmptyBook)
        );
    }

    #[test]
    fn microprice_leans_towards_the_thinner_side() {
        let book = book();
        // (102×2 + 100×1) / 3 = 304/3 = 101.333…: the ask is thinner, so price leans up.
        let micro = OrderBookService::microprice(&book).unwrap();
        assert_eq!(micro.get().round_dp(6), dec!(101.333333));
    }

    #[test]
    fn imbalance_over_top_levels() {
        let book = book();
        // top 2: bids 2+3=5, asks 1+2=3 → (5-3)/8 = 0.25
        assert_eq!(OrderBookService::imbalance(&book, 2), Some(dec!(0.25)));
        // top 5: bids 20, asks 20 → 0
        assert_eq!(OrderBookService::imbalance(&book, 5), Some(dec!(0)));
    }

    #[test]
    fn depth_within_bps_counts_levels_inside_the_band() {
        let book = book();
        // 200 bps of mid 101 = 2.02 → bids >= 98.98 (100, 99), asks <= 103.02 (102, 103).
        let band = OrderBookService::depth_within_bps(&book, dec!(200)).unwrap();
        assert_eq!(band.bid_qty, Qty::new(dec!(5)));
        assert_eq!(band.ask_qty, Qty::new(dec!(3)));
        // 100×2 + 99×3 = 497 ; 102×1 + 103×2 = 308
        assert_eq!(band.bid_notional, Quote::new(dec!(497)));
        assert_eq!(band.ask_notional, Quote::new(dec!(308)));
    }

    #[test]
    fn walls_are_levels_at_least_k_times_the_median() {
        let book = book();
        // bid sizes 2,3,10,1,4 → median 3; 3× → ≥9: 98×10 (10/3).
        // ask sizes 1,2,12,3,2 → median 2; 3× → ≥6: 104×12 (6).
        let walls = OrderBookService::liquidity_walls(&book, 5, dec!(3));
        assert_eq!(walls.support.len(), 1);
        assert_eq!(walls.support[0].price, Price::new(dec!(98)));
        assert_eq!(walls.support[0].size_to_median.round_dp(4), dec!(3.3333));
        assert_eq!(walls.resistance.len(), 1);
        assert_eq!(walls.resistance[0].price, Price::new(dec!(104)));
        assert_eq!(walls.resistance[0].size_to_median, dec!(6));
        // Even count: top 4 asks 1,2,12,3 → median (2+3)/2 = 2.5; 2× → ≥5: only 104.
        let walls = OrderBookService::liquidity_walls(&book, 4, dec!(2));
        assert_eq!(walls.resistance.len(), 1);
        assert_eq!(walls.resistance[0].size_to_median, dec!(4.8));
    }

    #[test]
    fn buying_walks_the_asks_and_reports_slippage_vs_best_and_mid() {
        let book = book();
        // 5 units: 102×1 + 103×2 + 104×2 = 102 + 206 + 208 = 516 → avg 103.2
        let fill = OrderBookService::estimate_fill(&book, Side::Buy, Qty::new(dec!(5))).unwrap();
        assert_eq!(fill.filled, Qty::new(dec!(5)));
        assert_eq!(fill.notional, Quote::new(dec!(516)));
        assert_eq!(fill.avg_price, Price::new(dec!(103.2)));
        assert_eq!(fill.worst_price, Price::new(dec!(104)));
        assert_eq!(fill.levels_consumed, 3);
        // (103.2 - 102) / 102 × 10000 = 117.647…
        assert_eq!(fill.slippage_bps.round_dp(3), dec!(117.647));
        // (103.2 - 101) / 101 × 10000 = 217.8217…
        assert_eq!(fill.cost_vs_mid_bps.round_dp(4), dec!(217.8218));
    }

    #[test]
    fn selling_walks_the_bids() {
        let book = book();
        // 4 units: 100×2 + 99×2 = 398 → avg 99.5
        let fill = OrderBookService::estimate_fill(&book, Side::Sell, Qty::new(dec!(4))).unwrap();
        assert_eq!(fill.avg_price, Price::new(dec!(99.5)));
        assert_eq!(fill.worst_price, Price::new(dec!(99)));
        // (100 - 99.5) / 100 × 10000 = 50
        assert_eq!(fill.slippage_bps, dec!(50));
        // (101 - 99.5) / 101 × 10000 = 148.5148…
        assert_eq!(fill.cost_vs_mid_bps.round_dp(4), dec!(148.5149));
    }

    #[test]
    fn a_fill_inside_the_best_level_has_zero_slippage() {
        let book = book();
        let fill = OrderBookService::estimate_fill(&book, Side::Buy, Qty::new(dec!(0.5))).unwrap();
        assert_eq!(fill.avg_price, Price::new(dec!(102)));
        assert_eq!(fill.slippage_bps, dec!(0));
        assert_eq!(fill.levels_consumed, 1);
    }

    #[test]
    fn more_than_the_book_holds_is_an_error_naming_the_available_depth() {
        let book = book();
        let err =
            OrderBookService::estimate_fill(&book, Side::Buy, Qty::new(dec!(21))).unwrap_err();
        assert_eq!(
            err,
            FillError::InsufficientDepth {
                side: Side::Buy,
                requested: Qty::new(dec!(21)),
                available: Qty::new(dec!(20)),
            }
        );
        assert!(matches!(
            OrderBookService::estimate_fill(&book, Side::Buy, Qty::ZERO),
            Err(FillError::NonPositiveQuantity(_))
        ));
    }
}
