//! A local limit order book per symbol, kept in step with Binance's diff-depth stream exactly as
//! "How to manage a local order book correctly" prescribes: a REST snapshot, then diffs whose
//! update ids must chain without a hole. A hole is reported as a `Gap` so the caller resyncs.
//!
//! Prices are keyed exactly as integer counts of 10^-8 (`PriceTicks`, Binance's finest price
//! step): comparing two `u64`s is what makes a level update cheap enough for millions of updates
//! a second, and two spellings of one price (`99`, `99.000`) are the same key by construction.
//! Quantities stay exact `Decimal`s. Each side is a `BTreeMap`, so the best level is the first
//! (asks) or last (bids) key and an update is O(log n). Each side is capped
//! (`max_levels_per_side`): levels beyond the cap, the far end of the book, are dropped so memory
//! stays flat however long the stream runs.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::money::{Price, Qty};

/// Levels kept per side unless told otherwise: the depth of Binance's largest REST snapshot.
pub const DEFAULT_MAX_LEVELS_PER_SIDE: usize = 5000;

/// Decimal places of one price tick: Binance quotes no price finer than 0.00000001.
pub const PRICE_TICK_SCALE: u32 = 8;

const TICKS_PER_UNIT: u64 = 100_000_000;

/// 10^0 ..= 10^8: the factor from a price with `PRICE_TICK_SCALE - i` decimals to ticks.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// An exact, non-negative price as a whole number of 10^-8 steps: the book's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PriceTicks(u64);

impl PriceTicks {
    pub const fn from_ticks(ticks: u64) -> Self {
        PriceTicks(ticks)
    }

    pub const fn ticks(self) -> u64 {
        self.0
    }

    /// `None` if the price is negative, has a non-zero digit beyond the 8th decimal, or exceeds
    /// `u64::MAX` ticks (about 184 billion): none of those is a Binance price.
    pub fn from_price(price: Price) -> Option<Self> {
        Self::from_decimal(price.get())
    }

    pub fn from_decimal(value: Decimal) -> Option<Self> {
        if value.is_sign_negative() && !value.is_zero() {
            return None;
        }
        let mantissa = value.mantissa().unsigned_abs();
        let scale = value.scale();
        // The common case (Binance sends at most 8 decimals) in u64 arithmetic.
        if let (Ok(small), Some(&factor)) = (
            u64::try_from(mantissa),
            POW10.get((PRICE_TICK_SCALE.wrapping_sub(scale)) as usize),
        ) {
            return small.checked_mul(factor).map(PriceTicks);
        }
        let ticks = if scale <= PRICE_TICK_SCALE {
            mantissa.checked_mul(10u128.pow(PRICE_TICK_SCALE - scale))?
        } else {
            let divisor = 10u128.checked_pow(scale - PRICE_TICK_SCALE)?;
            if !mantissa.is_multiple_of(divisor) {
                return None;
            }
            mantissa / divisor
        };
        u64::try_from(ticks).ok().map(PriceTicks)
    }

    /// The price, without trailing zeros (`30000.01`, not `30000.01000000`).
    pub fn to_price(self) -> Price {
        let whole = self.0 / TICKS_PER_UNIT;
        let frac = self.0 % TICKS_PER_UNIT;
        if frac == 0 {
            return Price::new(Decimal::from(whole));
        }
        let mut mantissa = self.0;
        let mut scale = PRICE_TICK_SCALE;
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            scale -= 1;
        }
        Price::new(Decimal::from_i128_with_scale(i128::from(mantissa), scale))
    }
}

/// What `apply_diff` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffOutcome {
    /// The event moved the book forward to its final update id.
    Applied,
    /// The event was entirely older than the book (`u <= last_update_id`) and was ignored.
    Stale,
}

/// Why an event could not be applied: the book must be resynced from a fresh snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookSyncError {
    #[error("order book has no snapshot yet; fetch a depth snapshot before applying diffs")]
    NoSnapshot,
    #[error(
        "depth gap: expected an event covering update id {expected}, got {first_update_id}..={final_update_id}; the book must be resynced"
    )]
    Gap {
        expected: u64,
        first_update_id: u64,
        final_update_id: u64,
    },
    #[error(
        "price {price} is negative, finer than 0.00000001 or too large for the book; the book must be resynced"
    )]
    UnrepresentablePrice { price: Price },
}

/// One side of the book: price -> quantity, no zero quantities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ladder {
    levels: BTreeMap<PriceTicks, Qty>,
}

impl Ladder {
    fn set(&mut self, price: Price, qty: Qty) -> Result<(), BookSyncError> {
        let key =
            PriceTicks::from_price(price).ok_or(BookSyncError::UnrepresentablePrice { price })?;
        if qty.is_zero() {
            self.levels.remove(&key);
        } else {
            self.levels.insert(key, qty);
        }
        Ok(())
    }

    fn get(&self, price: Price) -> Option<Qty> {
        self.levels.get(&PriceTicks::from_price(price)?).copied()
    }
}

/// Sync state of the book relative to the diff stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncState {
    /// No snapshot, or a gap invalidated the book.
    Unsynced,
    /// Snapshot applied; the next applicable event must straddle `last_update_id + 1`.
    AwaitingFirstDiff,
    /// Diffs are chaining: the next event must start at `last_update_id + 1`.
    Live,
}

/// The local order book. Bids and asks are sorted by price; the book remembers the last update
/// id it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBook {
    bids: Ladder,
    asks: Ladder,
    last_update_id: u64,
    state: SyncState,
    max_levels_per_side: usize,
}

impl Default for OrderBook {
    fn default() -> Self {
        OrderBook::new(DEFAULT_MAX_LEVELS_PER_SIDE)
    }
}

impl OrderBook {
    /// An empty, unsynced book that keeps at most `max_levels_per_side` levels per side (min 1).
    pub fn new(max_levels_per_side: usize) -> Self {
        OrderBook {
            bids: Ladder::default(),
            asks: Ladder::default(),
            last_update_id: 0,
            state: SyncState::Unsynced,
            max_levels_per_side: max_levels_per_side.max(1),
        }
    }

    /// Replace the book with a REST snapshot whose id is `last_update_id`. Zero quantities are
    /// ignored; the next diff must straddle `last_update_id + 1`. A price the book cannot hold
    /// exactly leaves it unsynced.
    pub fn apply_snapshot<B, A>(
        &mut self,
        last_update_id: u64,
        bids: B,
        asks: A,
    ) -> Result<(), BookSyncError>
    where
        B: IntoIterator<Item = (Price, Qty)>,
        A: IntoIterator<Item = (Price, Qty)>,
    {
        self.bids.levels.clear();
        self.asks.levels.clear();
        self.state = SyncState::Unsynced;
        self.apply_levels(bids, asks)?;
        self.last_update_id = last_update_id;
        self.state = SyncState::AwaitingFirstDiff;
        Ok(())
    }

    fn apply_levels<B, A>(&mut self, bids: B, asks: A) -> Result<(), BookSyncError>
    where
        B: IntoIterator<Item = (Price, Qty)>,
        A: IntoIterator<Item = (Price, Qty)>,
    {
        for (price, qty) in bids {
            self.bids.set(price, qty)?;
        }
        for (price, qty) in asks {
            self.asks.set(price, qty)?;
        }
        self.trim();
        Ok(())
    }

    /// Apply one diff event covering update ids `first_update_id..=final_update_id` (`U`, `u`).
    ///
    /// Events with `u <= last_update_id` are `Stale`. The first event after a snapshot must
    /// satisfy `U <= last_update_id + 1 <= u`; every later one must start at exactly
    /// `last_update_id + 1`. Anything else is a `Gap`, after which the book is unsynced until the
    /// next snapshot. A quantity of zero removes the level.
    pub fn apply_diff<B, A>(
        &mut self,
        first_update_id: u64,
        final_update_id: u64,
        bids: B,
        asks: A,
    ) -> Result<DiffOutcome, BookSyncError>
    where
        B: IntoIterator<Item = (Price, Qty)>,
        A: IntoIterator<Item = (Price, Qty)>,
    {
        let expected = self.last_update_id.saturating_add(1);
        let in_sequence = match self.state {
            SyncState::Unsynced => return Err(BookSyncError::NoSnapshot),
            _ if final_update_id <= self.last_update_id => return Ok(DiffOutcome::Stale),
            SyncState::AwaitingFirstDiff => first_update_id <= expected,
            SyncState::Live => first_update_id == expected,
        };
        if !in_sequence || first_update_id > final_update_id {
            self.state = SyncState::Unsynced;
            return Err(BookSyncError::Gap {
                expected,
                first_update_id,
                final_update_id,
            });
        }
        if let Err(err) = self.apply_levels(bids, asks) {
            // Half-applied: only a new snapshot can make the book true again.
            self.state = SyncState::Unsynced;
            return Err(err);
        }
        self.last_update_id = final_update_id;
        self.state = SyncState::Live;
        Ok(DiffOutcome::Applied)
    }

    /// Mark the book unsynced (e.g. the connection dropped): diffs are refused until a snapshot.
    pub fn invalidate(&mut self) {
        self.state = SyncState::Unsynced;
    }

    /// True once a snapshot is in place and no gap has been seen since.
    pub fn is_synced(&self) -> bool {
        self.state != SyncState::Unsynced
    }

    pub fn last_update_id(&self) -> u64 {
        self.last_update_id
    }

    pub fn max_levels_per_side(&self) -> usize {
        self.max_levels_per_side
    }

    pub fn bid_level_count(&self) -> usize {
        self.bids.levels.len()
    }

    pub fn ask_level_count(&self) -> usize {
        self.asks.levels.len()
    }

    /// Highest bid.
    pub fn best_bid(&self) -> Option<(Price, Qty)> {
        self.bids
            .levels
            .last_key_value()
            .map(|(p, q)| (p.to_price(), *q))
    }

    /// Lowest ask.
    pub fn best_ask(&self) -> Option<(Price, Qty)> {
        self.asks
            .levels
            .first_key_value()
            .map(|(p, q)| (p.to_price(), *q))
    }

    /// Bids from the best (highest) price down.
    pub fn bids(&self) -> impl DoubleEndedIterator<Item = (Price, Qty)> + '_ {
        self.bids
            .levels
            .iter()
            .rev()
            .map(|(p, q)| (p.to_price(), *q))
    }

    /// Asks from the best (lowest) price up.
    pub fn asks(&self) -> impl DoubleEndedIterator<Item = (Price, Qty)> + '_ {
        self.asks.levels.iter().map(|(p, q)| (p.to_price(), *q))
    }

    /// Quantity resting at exactly `price` on the bid side.
    pub fn bid_qty(&self, price: Price) -> Option<Qty> {
        self.bids.get(price)
    }

    /// Quantity resting at exactly `price` on the ask side.
    pub fn ask_qty(&self, price: Price) -> Option<Qty> {
        self.asks.get(price)
    }

    /// Drop the far end of each side beyond the cap: the lowest bids and the highest asks.
    fn trim(&mut self) {
        while self.bids.levels.len() > self.max_levels_per_side {
            self.bids.levels.pop_first();
        }
        while self.asks.levels.len() > self.max_levels_per_side {
            self.asks.levels.pop_last();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn lv(price: rust_decimal::Decimal, qty: rust_decimal::Decimal) -> (Price, Qty) {
        (Price::new(price), Qty::new(qty))
    }

    fn snapshot_book() -> OrderBook {
        let mut book = OrderBook::new(100);
        book.apply_snapshot(
            100,
            [lv(dec!(99), dec!(1)), lv(dec!(98), dec!(2))],
            [lv(dec!(101), dec!(3)), lv(dec!(102), dec!(4))],
        )
        .unwrap();
        book
    }

    #[test]
    fn snapshot_sets_sorted_sides_and_skips_zero_quantities() {
        let mut book = OrderBook::new(10);
        book.apply_snapshot(
            7,
            [
                lv(dec!(98), dec!(2)),
                lv(dec!(99), dec!(1)),
                lv(dec!(97), dec!(0)),
            ],
            [lv(dec!(102), dec!(4)), lv(dec!(101), dec!(3))],
        )
        .unwrap();
        assert_eq!(book.last_update_id(), 7);
        assert_eq!(book.best_bid(), Some(lv(dec!(99), dec!(1))));
        assert_eq!(book.best_ask(), Some(lv(dec!(101), dec!(3))));
        assert_eq!(book.bid_level_count(), 2);
        let asks: Vec<_> = book.asks().collect();
        assert_eq!(asks, vec![lv(dec!(101), dec!(3)), lv(dec!(102), dec!(4))]);
    }

    #[test]
    fn diffs_before_any_snapshot_are_refused() {
        let mut book = OrderBook::new(10);
        assert_eq!(
            book.apply_diff(1, 2, [], []),
            Err(BookSyncError::NoSnapshot)
        );
    }

    #[test]
    fn events_entirely_older_than_the_snapshot_are_stale_and_ignored() {
        let mut book = snapshot_book();
        let outcome = book.apply_diff(90, 100, [lv(dec!(99), dec!(50))], []);
        assert_eq!(outcome, Ok(DiffOutcome::Stale));
        assert_eq!(book.bid_qty(Price::new(dec!(99))), Some(Qty::new(dec!(1))));
        assert_eq!(book.last_update_id(), 100);
    }

    #[test]
    fn first_event_straddling_snapshot_id_is_applied_and_zero_removes_a_level() {
        let mut book = snapshot_book();
        // U=95 <= 101 <= u=105: straddles the snapshot.
        let outcome = book.apply_diff(
            95,
            105,
            [lv(dec!(99), dec!(0)), lv(dec!(99.5), dec!(7))],
            [lv(dec!(101), dec!(1.5))],
        );
        assert_eq!(outcome, Ok(DiffOutcome::Applied));
        assert_eq!(book.last_update_id(), 105);
        assert_eq!(book.bid_qty(Price::new(dec!(99))), None);
        assert_eq!(book.best_bid(), Some(lv(dec!(99.5), dec!(7))));
        assert_eq!(book.best_ask(), Some(lv(dec!(101), dec!(1.5))));
    }

    #[test]
    fn first_event_starting_after_snapshot_id_plus_one_is_a_gap() {
        let mut book = snapshot_book();
        let outcome = book.apply_diff(102, 110, [], []);
        assert_eq!(
            outcome,
            Err(BookSyncError::Gap {
                expected: 101,
                first_update_id: 102,
                final_update_id: 110
            })
        );
        assert!(!book.is_synced());
        // Further diffs are refused until a new snapshot.
        assert_eq!(
            book.apply_diff(111, 112, [], []),
            Err(BookSyncError::NoSnapshot)
        );
    }

    #[test]
    fn later_events_must_chain_exactly_from_the_previous_final_id() {
        let mut book = snapshot_book();
        assert_eq!(book.apply_diff(101, 103, [], []), Ok(DiffOutcome::Applied));
        assert_eq!(book.apply_diff(104, 104, [], []), Ok(DiffOutcome::Applied));
        // An overlapping event (U=104 again, u=106) is out of order once live: a gap.
        assert!(matches!(
            book.apply_diff(104, 106, [], []),
            Err(BookSyncError::Gap { expected: 105, .. })
        ));
    }

    #[test]
    fn a_skipped_event_is_a_gap_and_a_new_snapshot_recovers() {
        let mut book = snapshot_book();
        assert_eq!(book.apply_diff(101, 103, [], []), Ok(DiffOutcome::Applied));
        assert!(book.apply_diff(105, 106, [], []).is_err());
        book.apply_snapshot(200, [lv(dec!(50), dec!(1))], [lv(dec!(51), dec!(1))])
            .unwrap();
        assert!(book.is_synced());
        assert_eq!(book.apply_diff(199, 201, [], []), Ok(DiffOutcome::Applied));
        assert_eq!(book.best_bid(), Some(lv(dec!(50), dec!(1))));
    }

    #[test]
    fn each_side_is_capped_by_dropping_the_far_end() {
        let mut book = OrderBook::new(2);
        book.apply_snapshot(
            1,
            [
                lv(dec!(97), dec!(1)),
                lv(dec!(98), dec!(1)),
                lv(dec!(99), dec!(1)),
            ],
            [
                lv(dec!(101), dec!(1)),
                lv(dec!(102), dec!(1)),
                lv(dec!(103), dec!(1)),
            ],
        )
        .unwrap();
        assert_eq!(book.bid_level_count(), 2);
        assert_eq!(book.ask_level_count(), 2);
        assert_eq!(book.bid_qty(Price::new(dec!(97))), None);
        assert_eq!(book.ask_qty(Price::new(dec!(103))), None);
        // A better bid pushes the worst remaining one out.
        book.apply_diff(2, 2, [lv(dec!(99.5), dec!(1))], [])
            .unwrap();
        let bids: Vec<_> = book.bids().map(|(p, _)| p.get()).collect();
        assert_eq!(bids, vec![dec!(99.5), dec!(99)]);
    }

    #[test]
    fn price_ticks_are_exact_hundred_millionths_and_read_back_without_trailing_zeros() {
        let ticks = PriceTicks::from_price(Price::new(dec!(30000.0100))).unwrap();
        assert_eq!(ticks.ticks(), 3_000_001_000_000);
        assert_eq!(ticks.to_price().get().to_string(), "30000.01");
        assert_eq!(
            PriceTicks::from_price(Price::new(dec!(0.00000001))),
            Some(PriceTicks::from_ticks(1))
        );
        // Trailing zeros beyond the 8th decimal are still exact.
        assert_eq!(
            PriceTicks::from_price(Price::new(dec!(1.0000000000))),
            Some(PriceTicks::from_ticks(100_000_000))
        );
        assert_eq!(
            PriceTicks::from_ticks(500_000_000)
                .to_price()
                .get()
                .to_string(),
            "5"
        );
        for bad in [dec!(0.000000001), dec!(-1), dec!(184467440738)] {
            assert_eq!(PriceTicks::from_price(Price::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn a_price_the_book_cannot_hold_unsyncs_it_instead_of_rounding() {
        let mut book = snapshot_book();
        let bad = Price::new(dec!(99.123456789));
        assert_eq!(
            book.apply_diff(101, 101, [(bad, Qty::new(dec!(1)))], []),
            Err(BookSyncError::UnrepresentablePrice { price: bad })
        );
        assert!(!book.is_synced());
        let mut fresh = OrderBook::new(10);
        assert!(
            fresh
                .apply_snapshot(1, [], [(bad, Qty::new(dec!(1)))])
                .is_err()
        );
        assert!(!fresh.is_synced());
    }

    #[test]
    fn prices_with_different_scales_are_the_same_level() {
        let mut book = snapshot_book();
        book.apply_diff(101, 101, [lv(dec!(99.000), dec!(5))], [])
            .unwrap();
        assert_eq!(book.bid_level_count(), 2);
        assert_eq!(book.bid_qty(Price::new(dec!(99))), Some(Qty::new(dec!(5))));
    }
}
