//! The side file gives what SQLite gives, every bit, and is never used once it is not the
//! series' current one.

use super::format::{HEADER_LEN, SideFile};
use super::*;
use crate::domain::market::Candle;
use crate::domain::money::{Price, Qty};
use crate::store::candles::{columns_in_range, insert_candles};
use proptest::prelude::*;
use rust_decimal::Decimal;

pub(super) const M: i64 = 60_000;

pub(super) fn btc() -> Symbol {
    Symbol::new("BTCUSDT").unwrap()
}

pub(super) fn candle(open_time: TimestampMs, price: Decimal, volume: Decimal) -> Candle {
    Candle {
        open_time,
        open: Price::new(price),
        high: Price::new(price * Decimal::from(2)),
        low: Price::new(price),
        close: Price::new(price),
        volume: Qty::new(volume),
    }
}

pub(super) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    (dir, store)
}

pub(super) fn path_of(store: &Store) -> PathBuf {
    let conn = store.conn();
    let now = current(conn, &btc(), Interval::M1).unwrap().unwrap();
    side_path(
        store.path().unwrap().parent().unwrap(),
        now.series.id,
        &btc(),
        Interval::M1,
    )
}

/// The side file as it stands, when it is the series' current one (a file a load would extend
/// is stale here).
pub(super) fn fresh_file(store: &Store) -> Result<SideFile, Unusable> {
    let now = current(store.conn(), &btc(), Interval::M1)
        .unwrap()
        .unwrap();
    match load(&path_of(store), &btc(), Interval::M1, &now)? {
        Found::Fresh(file) => Ok(file),
        Found::Behind(_) => Err(Unusable::Stale("behind".into())),
    }
}

pub(super) fn sqlite(store: &Store, from: Option<i64>, to: Option<i64>) -> CandleColumns {
    columns_in_range(store.conn(), &btc(), Interval::M1, from, to).unwrap()
}

pub(super) fn side(store: &Store, from: Option<i64>, to: Option<i64>) -> CandleColumns {
    history_columns(store, &btc(), Interval::M1, from, to).unwrap()
}

/// Every bit: `PartialEq` on f64 would take -0.0 for 0.0 (and never NaN for NaN).
pub(super) fn assert_identical(a: &CandleColumns, b: &CandleColumns, what: &str) {
    assert_eq!(a, b, "{what}");
    let bits = |c: &CandleColumns| {
        [&c.open, &c.high, &c.low, &c.close, &c.volume]
            .iter()
            .flat_map(|v| v.iter().map(|x| x.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(a), bits(b), "{what}");
}

/// A price `m / 10^s`, now and then one no integer layout holds (stored as text), negative, or
/// zero.
pub(super) fn number(m: u64, s: u32, odd: u8) -> Decimal {
    match odd {
        0 => Decimal::from_i128_with_scale(i128::from(m) * 1_000_000_000_007, s.min(20)),
        1 => -Decimal::from_i128_with_scale(i128::from(m), s),
        2 => Decimal::ZERO,
        _ => Decimal::from_i128_with_scale(i128::from(m), s),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the series (mixed scales, prices near the exact view's limit, gaps, numbers kept
    /// as text, negative numbers, nothing at all) and whatever the range, the columns from the
    /// side file are those SQLite gives, with the same exact view; and a fresh file is what
    /// serves them.
    #[test]
    fn side_file_columns_are_those_sqlite_gives(
        rows in prop::collection::vec(
            (0u64..(1u64 << 53), 0u32..8, 0u8..200, 0u64..(1u64 << 53), 0u32..8, prop::bool::weighted(0.1)),
            0..120,
        ),
        batches in 1usize..4,
        // The series' most decimals (a small one lets prices near the exact view's limit stay
        // integers), and whether it has odd numbers at all.
        max_scale in 0u32..8,
        odd_rows in prop::bool::weighted(0.3),
        // How wide its numbers are: small (the exact view holds), up to 2^36, up to 2^53 (near
        // or past the view's limit).
        width in prop::sample::select(vec![100_000u64, 1 << 36, 1 << 53]),
        ranges in prop::collection::vec((prop::option::of(-5i64..130), prop::option::of(-5i64..130)), 1..6),
    ) {
        let (_dir, store) = store();
        let mut t = 1_700_000_000_000i64 / M;
        let candles: Vec<Candle> = rows
            .iter()
            .map(|&(m, s, odd, vm, vs, gap)| {
                t += if gap { 3 } else { 1 };
                let (odd, odd_volume) = if odd_rows { (odd, (odd + 1) % 200) } else { (u8::MAX, u8::MAX) };
                let (s, vs) = (s % (max_scale + 1), vs % (max_scale + 1));
                candle(t * M, number(m % width, s, odd), number(vm % width, vs, odd_volume))
            })
            .collect();
        let per = candles.len().div_ceil(batches).max(1);
        for chunk in candles.chunks(per) {
            insert_candles(store.conn(), &btc(), Interval::M1, chunk).unwrap();
        }
        let base = 1_700_000_000_000i64 / M;
        for (i, &(from, to)) in ranges.iter().enumerate() {
            let (from, to) = (from.map(|f| (base + f) * M), to.map(|t| (base + t) * M));
            let want = sqlite(&store, from, to);
            let got = side(&store, from, to);
            assert_identical(&got, &want, &format!("range {i}: {from:?}..{to:?}"));
            if candles.is_empty() {
                continue;
            }
            // The file is written, fresh, and gives the range itself unless a row in it holds
            // a number the integer layout does not (those ranges are read from SQLite).
            let file = fresh_file(&store).unwrap();
            let text_rows = file.price_need.iter().chain(&file.volume_need).any(|&n| n == format::TEXT_ROW);
            match file.into_range(from, to) {
                Some(c) => assert_identical(&c, &want, "straight from the file"),
                None => prop_assert!(text_rows),
            }
        }
    }
}

#[test]
fn a_file_on_a_series_without_odd_numbers_serves_every_range() {
    let (_dir, store) = store();
    let candles: Vec<Candle> = (0..50)
        .map(|i| {
            candle(
                i * M,
                Decimal::new(100_000 + i, (i % 4) as u32),
                Decimal::new(i, 3),
            )
        })
        .collect();
    insert_candles(store.conn(), &btc(), Interval::M1, &candles).unwrap();
    assert!(matches!(fresh_file(&store), Err(Unusable::Missing)));
    assert_identical(
        &side(&store, None, None),
        &sqlite(&store, None, None),
        "first load",
    );
    for (from, to) in [
        (None, None),
        (Some(10 * M), Some(20 * M)),
        (Some(49 * M), None),
    ] {
        let c = fresh_file(&store).unwrap().into_range(from, to).unwrap();
        assert_identical(&c, &sqlite(&store, from, to), &format!("{from:?}..{to:?}"));
    }
}

#[test]
fn a_stale_file_is_not_used_after_a_new_candle() {
    let (_dir, store) = store();
    // A gap at 5: a candle written there later leaves the first and last open times as they are.
    let candles: Vec<Candle> = (0..10)
        .filter(|&i| i != 5)
        .map(|i| candle(i * M, Decimal::new(100 + i, 1), Decimal::ONE))
        .collect();
    insert_candles(store.conn(), &btc(), Interval::M1, &candles).unwrap();
    assert_eq!(side(&store, None, None).len(), 9);
    assert!(fresh_file(&store).is_ok());
    insert_candles(
        store.conn(),
        &btc(),
        Interval::M1,
        &[candle(5 * M, Decimal::new(7, 0), Decimal::ONE)],
    )
    .unwrap();
    assert!(matches!(fresh_file(&store), Err(Unusable::Stale(_))));
    let got = side(&store, None, None);
    assert_eq!(got.len(), 10);
    assert_eq!(got.close[5], 7.0);
    assert_identical(&got, &sqlite(&store, None, None), "after the new candle");
    assert!(fresh_file(&store).is_ok(), "rebuilt");
    // Inserting candles that are already stored changes nothing: the file stays fresh.
    insert_candles(store.conn(), &btc(), Interval::M1, &candles[..3]).unwrap();
    assert!(fresh_file(&store).is_ok());
}

#[test]
fn a_database_put_back_to_an_earlier_copy_and_written_again_does_not_match_a_newer_file() {
    let (dir, store) = store();
    // A gap at 5, so the writes below leave the first and last open times as they are.
    let candles: Vec<Candle> = (0..10)
        .filter(|&i| i != 5)
        .map(|i| candle(i * M, Decimal::new(100 + i, 1), Decimal::ONE))
        .collect();
    insert_candles(store.conn(), &btc(), Interval::M1, &candles).unwrap();
    let copy = dir.path().join("copy.db");
    store
        .conn()
        .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let at_5 = |price: i64| [candle(5 * M, Decimal::new(price, 0), Decimal::ONE)];
    insert_candles(store.conn(), &btc(), Interval::M1, &at_5(7)).unwrap();
    assert_eq!(side(&store, None, None).close[5], 7.0);
    assert!(fresh_file(&store).is_ok());
    // The user puts the earlier copy back (the side file stays) and writes the same candle
    // with another price: as many writes since the copy as the file was written after.
    let db = store.path().unwrap().to_path_buf();
    drop(store);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(&copy, &db).unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    insert_candles(store.conn(), &btc(), Interval::M1, &at_5(9)).unwrap();
    let got = side(&store, None, None);
    assert_eq!(
        got.close[5], 9.0,
        "the side file of the other history was used"
    );
    assert_identical(
        &got,
        &sqlite(&store, None, None),
        "after the copy was put back",
    );
}

#[test]
fn a_corrupt_or_truncated_file_falls_back_to_sqlite_and_is_rebuilt() {
    let (_dir, store) = store();
    let candles: Vec<Candle> = (0..40)
        .map(|i| candle(i * M, Decimal::new(250 + i, 2), Decimal::new(3 * i, 1)))
        .collect();
    insert_candles(store.conn(), &btc(), Interval::M1, &candles).unwrap();
    let want = sqlite(&store, None, None);
    side(&store, None, None);
    let path = path_of(&store);
    let good = std::fs::read(&path).unwrap();
    let close_of_row_3 = HEADER_LEN + 8 * 40 + 3 * 8 * 40 + 3 * 8;
    let mut flipped = good.clone();
    flipped[close_of_row_3] ^= 0x10;
    let mut flipped_header = good.clone();
    flipped_header[30] ^= 1;
    let cases: [(&str, Vec<u8>); 5] = [
        ("a bit flipped in a close", flipped),
        ("a bit flipped in the header", flipped_header),
        ("truncated", good[..good.len() - 9].to_vec()),
        ("cut inside the header", good[..40].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        assert!(fresh_file(&store).is_err(), "{what}: refused");
        assert_identical(&side(&store, None, None), &want, what);
        assert_eq!(std::fs::read(&path).unwrap(), good, "{what}: rebuilt");
    }
    // A directory where the file should be: still no error, SQLite answers.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert_identical(&side(&store, None, None), &want, "cannot be written");
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left behind: {names:?}");
}

#[test]
fn sql_writes_through_the_view_or_on_the_bars_bump_the_revision() {
    let (_dir, store) = store();
    let conn = store.conn();
    let revision = || -> i64 {
        conn.query_row(
            "SELECT revision FROM candle_series WHERE symbol = 'BTCUSDT' AND interval = '1m'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    insert_candles(
        conn,
        &btc(),
        Interval::M1,
        &[candle(0, Decimal::ONE, Decimal::ONE)],
    )
    .unwrap();
    let r0 = revision();
    assert_ne!(r0, 0);
    side(&store, None, None);
    conn.execute(
        "INSERT INTO candles VALUES ('BTCUSDT', '1m', 60000, '2', '3', '1', '2.5', '10')",
        [],
    )
    .unwrap();
    let r1 = revision();
    assert_ne!(r1, r0, "the view's insert");
    assert!(matches!(fresh_file(&store), Err(Unusable::Stale(_))));
    assert_eq!(side(&store, None, None).close, [1.0, 2.5]);
    conn.execute(
        "UPDATE candle_bars SET close = 4 WHERE open_time = 60000",
        [],
    )
    .unwrap();
    let r2 = revision();
    assert_ne!(r2, r1, "an update of a bar");
    assert_eq!(side(&store, None, None).close, [1.0, 4.0]);
    conn.execute("DELETE FROM candle_bars WHERE open_time = 0", [])
        .unwrap();
    assert_ne!(revision(), r2, "a delete");
    assert_eq!(side(&store, None, None).close, [4.0]);
}

#[test]
fn a_range_has_its_own_exact_view_not_the_series() {
    let (_dir, store) = store();
    let mut candles: Vec<Candle> = (0..20)
        .map(|i| candle(i * M, Decimal::new(1_000 + i, (i % 2) as u32), Decimal::ONE))
        .collect();
    // Whole numbers only before row 10: a range there needs no decimals.
    for c in &mut candles[..10] {
        c.open = Price::new(Decimal::from(7));
        c.low = c.open;
        c.close = c.open;
        c.high = c.open;
    }
    // Too wide for the exact view (2.5e15 tenths is past 2^51), yet an integer in the store:
    // written once the series is at one decimal (a rescale would stop short of it).
    let mut wide = candles.remove(15);
    wide.high = Price::new(Decimal::from(250_000_000_000_000i64));
    insert_candles(store.conn(), &btc(), Interval::M1, &candles).unwrap();
    insert_candles(store.conn(), &btc(), Interval::M1, &[wide]).unwrap();
    side(&store, None, None);
    for (from, to) in [
        (None, None),
        (None, Some(10 * M)),
        (Some(3 * M), Some(15 * M)),
    ] {
        let want = sqlite(&store, from, to);
        let got = fresh_file(&store).unwrap().into_range(from, to).unwrap();
        assert_identical(&got, &want, &format!("{from:?}..{to:?}"));
    }
    assert!(!sqlite(&store, None, None).holds_exact_candles());
    assert!(sqlite(&store, Some(3 * M), Some(15 * M)).holds_exact_candles());
    assert_eq!(
        sqlite(&store, None, Some(10 * M)).exact_close(0),
        Some(Price::new(Decimal::from(7)))
    );
}

#[test]
fn the_status_says_whether_each_series_side_file_is_the_one_a_backtest_would_read() {
    let (_dir, store) = store();
    let state = |store: &Store| {
        let all = series_caches(store).unwrap().unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    };
    let candles: Vec<Candle> = (0..10)
        .map(|i| candle(i * M, Decimal::new(100 + i, 1), Decimal::ONE))
        .collect();
    insert_candles(store.conn(), &btc(), Interval::M1, &candles).unwrap();
    let before = state(&store);
    assert_eq!(
        (
            before.symbol.as_str(),
            before.interval.as_str(),
            before.candles
        ),
        ("BTCUSDT", "1m", 10)
    );
    assert_eq!(
        (before.first_open_time, before.last_open_time),
        (Some(0), Some(9 * M))
    );
    assert_eq!(before.side_file, path_of(&store).display().to_string());
    assert_eq!(before.side_state, SideState::Missing);
    // The status writes nothing: the file is still missing.
    assert!(!path_of(&store).exists());

    side(&store, None, None);
    let bytes = std::fs::metadata(path_of(&store)).unwrap().len();
    assert_eq!(state(&store).side_state, SideState::Fresh { bytes });

    insert_candles(
        store.conn(),
        &btc(),
        Interval::M1,
        &[candle(10 * M, Decimal::ONE, Decimal::ONE)],
    )
    .unwrap();
    let after = state(&store);
    assert_eq!(after.candles, 11);
    assert_eq!(after.side_state, SideState::Behind { new_candles: 1 });
    assert_eq!(
        after.side_state.to_string(),
        "behind by 1 candle; backtests read them from the database after the file's rows, and \
         rewrite the file once they are many"
    );
    // A candle in the middle: the file is no longer a prefix.
    store
        .conn()
        .execute("DELETE FROM candle_bars WHERE open_time = 4 * 60000", [])
        .unwrap();
    assert!(
        matches!(&state(&store).side_state, SideState::Stale { reason } if reason.contains("revision")),
        "{:?}",
        state(&store).side_state
    );

    side(&store, None, None);
    let mut bytes = std::fs::read(path_of(&store)).unwrap();
    bytes[HEADER_LEN + 3] ^= 0x40;
    std::fs::write(path_of(&store), &bytes).unwrap();
    let corrupt = state(&store);
    assert!(
        matches!(&corrupt.side_state, SideState::Unusable { reason } if reason.contains("corrupt")),
        "{:?}",
        corrupt.side_state
    );
    assert!(
        corrupt
            .side_state
            .to_string()
            .ends_with("the next backtest rewrites it"),
        "{}",
        corrupt.side_state
    );
}
