//! The local-book sync manager: Binance's "buffer diffs, fetch a snapshot, drop stale, check
//! continuity, resync on a gap" procedure as a synchronous state machine around `OrderBook`.
//! The stream task feeds it frames and fetches a snapshot whenever it asks for one, through a
//! `DepthSnapshotSource` so tests plug in the fake and production the REST client.

use std::collections::VecDeque;
use std::future::Future;

use crate::domain::market::{BookSyncError, DiffOutcome, OrderBook};
use crate::domain::symbol::Symbol;
use crate::services::market_stream::wire::DepthDiff;

/// Where REST depth snapshots come from (`GET /api/v3/depth?symbol=..&limit=..`).
pub trait DepthSnapshotSource: Send + Sync {
    fn depth_snapshot(
        &self,
        symbol: &Symbol,
        limit: u32,
    ) -> impl Future<Output = Result<DepthDiff, SnapshotError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("depth snapshot for {symbol} failed: {reason}")]
pub struct SnapshotError {
    pub symbol: String,
    pub reason: String,
}

/// What the caller must do after feeding a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStep {
    /// The diff moved the live book forward.
    Applied,
    /// The diff was older than the book and ignored.
    Stale,
    /// The diff was buffered; a snapshot is needed to go live.
    NeedSnapshot,
    /// A hole in the update ids: the book was discarded; fetch a new snapshot.
    Gap(BookSyncError),
}

/// What happened when a snapshot was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStep {
    /// The book is live: the snapshot plus every buffered diff after it.
    Live {
        last_update_id: u64,
        replayed: usize,
    },
    /// The snapshot is older than the first buffered diff; fetch again.
    TooOld {
        snapshot_id: u64,
        first_buffered: u64,
    },
    /// A buffered diff did not chain onto the snapshot; fetch again.
    Gap(BookSyncError),
    /// The snapshot holds a price the book cannot represent; another fetch will not help.
    Invalid(BookSyncError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Buffering,
    Live,
}

/// One symbol's book and the diffs buffered while a snapshot is in flight.
#[derive(Debug, Clone)]
pub struct BookSync {
    book: OrderBook,
    buffer: VecDeque<DepthDiff>,
    max_buffered: usize,
    phase: Phase,
    resyncs: u64,
}

impl BookSync {
    /// `max_buffered` bounds memory if snapshots keep failing; the oldest diffs are dropped,
    /// which at worst makes the next snapshot attempt report `TooOld` and retry.
    pub fn new(max_levels_per_side: usize, max_buffered: usize) -> Self {
        BookSync {
            book: OrderBook::new(max_levels_per_side),
            buffer: VecDeque::new(),
            max_buffered: max_buffered.max(1),
            phase: Phase::Buffering,
            resyncs: 0,
        }
    }

    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    pub fn is_live(&self) -> bool {
        self.phase == Phase::Live
    }

    /// How many times the book has been discarded because of a gap or a reset.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The connection dropped: diffs from the new connection need a fresh snapshot.
    pub fn reset(&mut self) {
        if self.phase == Phase::Live {
            self.resyncs += 1;
        }
        self.phase = Phase::Buffering;
        self.buffer.clear();
        self.book.invalidate();
    }

    pub fn on_diff(&mut self, diff: &DepthDiff) -> SyncStep {
        match self.phase {
            Phase::Buffering => {
                if self.buffer.len() == self.max_buffered {
                    self.buffer.pop_front();
                }
                self.buffer.push_back(diff.clone());
                SyncStep::NeedSnapshot
            }
            Phase::Live => match self.book.apply_diff(
                diff.first_update_id,
                diff.final_update_id,
                diff.bids.iter().copied(),
                diff.asks.iter().copied(),
            ) {
                Ok(DiffOutcome::Applied) => SyncStep::Applied,
                Ok(DiffOutcome::Stale) => SyncStep::Stale,
                Err(err) => {
                    self.reset();
                    // The event that revealed the gap is the first of the new buffer.
                    self.buffer.push_back(diff.clone());
                    SyncStep::Gap(err)
                }
            },
        }
    }

    /// Offer a REST snapshot (its `final_update_id` is `lastUpdateId`).
    pub fn on_snapshot(&mut self, snapshot: &DepthDiff) -> SnapshotStep {
        let snapshot_id = snapshot.final_update_id;
        if let Some(first) = self.buffer.front()
            && snapshot_id < first.first_update_id
        {
            return SnapshotStep::TooOld {
                snapshot_id,
                first_buffered: first.first_update_id,
            };
        }
        if let Err(err) = self.book.apply_snapshot(
            snapshot_id,
            snapshot.bids.iter().copied(),
            snapshot.asks.iter().copied(),
        ) {
            self.buffer.clear();
            return SnapshotStep::Invalid(err);
        }
        let mut replayed = 0;
        while let Some(diff) = self.buffer.pop_front() {
            match self.book.apply_diff(
                diff.first_update_id,
                diff.final_update_id,
                diff.bids.iter().copied(),
                diff.asks.iter().copied(),
            ) {
                Ok(DiffOutcome::Applied) => replayed += 1,
                Ok(DiffOutcome::Stale) => {}
                Err(err) => {
                    self.buffer.clear();
                    self.book.invalidate();
                    return SnapshotStep::Gap(err);
                }
            }
        }
        self.phase = Phase::Live;
        SnapshotStep::Live {
            last_update_id: self.book.last_update_id(),
            replayed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::{Price, Qty};
    use rust_decimal::Decimal;

    fn level(p: i64, q: i64) -> (Price, Qty) {
        (Price::new(Decimal::from(p)), Qty::new(Decimal::from(q)))
    }

    fn diff(first: u64, last: u64, bids: Vec<(Price, Qty)>) -> DepthDiff {
        DepthDiff {
            event_time: 0,
            first_update_id: first,
            final_update_id: last,
            bids,
            asks: vec![],
        }
    }

    fn snapshot(id: u64) -> DepthDiff {
        DepthDiff {
            event_time: 0,
            first_update_id: id,
            final_update_id: id,
            bids: vec![level(100, 1), level(99, 2)],
            asks: vec![level(101, 1)],
        }
    }

    #[test]
    fn buffered_diffs_are_replayed_after_the_snapshot_dropping_stale_ones() {
        let mut sync = BookSync::new(100, 1000);
        assert_eq!(
            sync.on_diff(&diff(8, 10, vec![level(100, 9)])),
            SyncStep::NeedSnapshot
        );
        assert_eq!(
            sync.on_diff(&diff(11, 12, vec![level(98, 5)])),
            SyncStep::NeedSnapshot
        );
        assert_eq!(
            sync.on_diff(&diff(13, 13, vec![level(99, 0)])),
            SyncStep::NeedSnapshot
        );
        // Snapshot 11: the first diff (u=10) is stale; 11..=12 straddles 12; 13 chains.
        let step = sync.on_snapshot(&snapshot(11));
        assert_eq!(
            step,
            SnapshotStep::Live {
                last_update_id: 13,
                replayed: 2
            }
        );
        let book = sync.book();
        // The stale diff's 100×9 was not applied; 99 was removed; 98×5 was added.
        assert_eq!(
            book.bid_qty(Price::new(Decimal::from(100))),
            Some(Qty::new(Decimal::ONE))
        );
        assert_eq!(book.bid_qty(Price::new(Decimal::from(99))), None);
        assert_eq!(
            book.bid_qty(Price::new(Decimal::from(98))),
            Some(Qty::new(Decimal::from(5)))
        );
        assert_eq!(sync.on_diff(&diff(14, 15, vec![])), SyncStep::Applied);
        assert_eq!(sync.on_diff(&diff(10, 12, vec![])), SyncStep::Stale);
    }

    #[test]
    fn a_snapshot_older_than_the_first_buffered_diff_is_refused() {
        let mut sync = BookSync::new(100, 1000);
        sync.on_diff(&diff(50, 52, vec![]));
        assert_eq!(
            sync.on_snapshot(&snapshot(40)),
            SnapshotStep::TooOld {
                snapshot_id: 40,
                first_buffered: 50
            }
        );
        assert!(!sync.is_live());
        assert!(matches!(
            sync.on_snapshot(&snapshot(51)),
            SnapshotStep::Live { .. }
        ));
    }

    #[test]
    fn a_gap_while_live_discards_the_book_and_buffers_the_revealing_diff() {
        let mut sync = BookSync::new(100, 1000);
        sync.on_snapshot(&snapshot(10));
        assert_eq!(sync.on_diff(&diff(11, 12, vec![])), SyncStep::Applied);
        let step = sync.on_diff(&diff(14, 15, vec![level(97, 3)]));
        assert!(matches!(
            step,
            SyncStep::Gap(BookSyncError::Gap { expected: 13, .. })
        ));
        assert!(!sync.is_live());
        assert_eq!(sync.resyncs(), 1);
        assert_eq!(sync.buffered(), 1);
        // A snapshot at 14 makes the buffered 14..=15 the straddling first event.
        assert_eq!(
            sync.on_snapshot(&snapshot(14)),
            SnapshotStep::Live {
                last_update_id: 15,
                replayed: 1
            }
        );
        assert_eq!(
            sync.book().bid_qty(Price::new(Decimal::from(97))),
            Some(Qty::new(Decimal::from(3)))
        );
    }

    #[test]
    fn a_buffered_diff_that_does_not_chain_onto_the_snapshot_is_a_gap() {
        let mut sync = BookSync::new(100, 1000);
        sync.on_diff(&diff(11, 12, vec![]));
        sync.on_diff(&diff(15, 16, vec![])); // 13..=14 missing
        assert!(matches!(
            sync.on_snapshot(&snapshot(11)),
            SnapshotStep::Gap(_)
        ));
        assert!(!sync.is_live());
        assert_eq!(sync.buffered(), 0);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut sync = BookSync::new(100, 3);
        for i in 0..10 {
            sync.on_diff(&diff(i * 2 + 1, i * 2 + 2, vec![]));
        }
        assert_eq!(sync.buffered(), 3);
    }
}
