//! A side file whose rows are still a prefix of the series is extended with the newer rows only,
//! and ends up as the file a whole rebuild writes; any other write makes the next load rebuild.

use super::format::{HEADER_LEN, SideFile};
use super::tests::{
    M, assert_identical, btc, candle, fresh_file, number, path_of, side, sqlite, store,
};
use super::*;
use crate::domain::market::Candle;
use crate::store::candles::insert_candles;
use proptest::prelude::*;
use rust_decimal::Decimal;

/// Candles opening at `minutes` (one minute apart from 0), each closing at a tenth of its
/// minute plus 10.
fn ramp(minutes: impl Iterator<Item = i64>) -> Vec<Candle> {
    minutes
        .map(|i| candle(i * M, Decimal::new(100 + i, 1), Decimal::ONE))
        .collect()
}

/// A series of `count` ramp candles stored, and its side file written by a load.
fn stored_ramp(store: &Store, count: i64) {
    insert_candles(store.conn(), &btc(), Interval::M1, &ramp(0..count)).unwrap();
    side(store, None, None);
}

fn prefix_revision(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT prefix_revision FROM candle_series WHERE symbol = 'BTCUSDT' AND interval = '1m'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// What a load would do with the file now.
fn found(store: &Store) -> Result<Found, Unusable> {
    let now = current(store.conn(), &btc(), Interval::M1)
        .unwrap()
        .unwrap();
    load(&path_of(store), &btc(), Interval::M1, &now)
}

fn is_behind(store: &Store) -> bool {
    matches!(found(store), Ok(Found::Behind(_)))
}

/// The file's bytes, then those of the file a load writes from nothing: they must be the same.
fn assert_same_as_rebuilt(store: &Store, what: &str) {
    let path = path_of(store);
    let extended = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    side(store, None, None);
    let rebuilt = std::fs::read(&path).unwrap();
    assert!(
        extended == rebuilt,
        "{what}: the extended file differs from a rebuilt one"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the series and the later batch (numbers kept as text, other scales, old rows sent
    /// again with it), the columns after the append are those SQLite gives for every range, and
    /// the file is byte for byte the one a whole rebuild writes.
    #[test]
    fn an_extended_side_file_gives_what_sqlite_gives_and_is_the_file_a_rebuild_writes(
        rows in prop::collection::vec((0u64..(1u64 << 40), 0u32..6, 0u8..60, prop::bool::weighted(0.1)), 1..60),
        later in prop::collection::vec((0u64..(1u64 << 40), 0u32..9, 0u8..60, prop::bool::weighted(0.1)), 1..30),
        odd_rows in prop::bool::weighted(0.3),
        fits in prop::bool::weighted(0.7),
        // How wide the numbers are: narrow ones leave room to rescale.
        width in prop::sample::select(vec![1_000u64, 1 << 20, 1 << 40]),
        resend in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        ranges in prop::collection::vec((prop::option::of(-5i64..100), prop::option::of(-5i64..100)), 1..5),
    ) {
        let (_dir, store) = store();
        // Later rows mostly at the decimals the series has (a batch needing more rescales the
        // stored integers: not a pure append).
        let old_scale = rows.iter().map(|r| r.1).max().unwrap_or(0);
        let later: Vec<_> = later
            .iter()
            .map(|&(m, s, odd, gap)| (m, if fits { s.min(old_scale) } else { s }, odd, gap))
            .collect();
        let base = 1_700_000_000_000i64 / M;
        let mut t = base;
        let mut make = |&(m, s, odd, gap): &(u64, u32, u8, bool)| -> Candle {
            t += if gap { 3 } else { 1 };
            let odd = if odd_rows { odd } else { u8::MAX };
            let m = m % width;
            candle(t * M, number(m, s, odd), number(m / 3 + 1, s, odd.wrapping_add(1)))
        };
        let old: Vec<Candle> = rows.iter().map(&mut make).collect();
        let mut new: Vec<Candle> = later.iter().map(&mut make).collect();
        insert_candles(store.conn(), &btc(), Interval::M1, &old).unwrap();
        side(&store, None, None);
        prop_assert!(fresh_file(&store).is_ok());
        // Old rows sent again with the new ones (an overlapping download) are ignored by the store.
        new.extend(resend.iter().map(|i| old[i.index(old.len())].clone()));
        let prefix = prefix_revision(store.conn());
        insert_candles(store.conn(), &btc(), Interval::M1, &new).unwrap();
        // A pure append (nothing rescaled): the file is extended, not rebuilt.
        let appended = prefix_revision(store.conn()) == prefix;
        prop_assert_eq!(is_behind(&store), appended);
        let before = std::fs::read(path_of(&store)).unwrap();
        // As backtests load: a short tail is read after the file's rows, the file left as it is.
        let tail_written = |store: &Store| fresh_file(store).is_ok();
        for (i, &(from, to)) in ranges.iter().enumerate() {
            let (from, to) = (from.map(|f| (base + f) * M), to.map(|t| (base + t) * M));
            assert_identical(&side(&store, from, to), &sqlite(&store, from, to), &format!("range {i}: {from:?}..{to:?}"));
            if appended && !tail_written(&store) {
                prop_assert!(std::fs::read(path_of(&store)).unwrap() == before, "a short tail rewrote the file");
            }
        }
        // Written back: the file is the one a whole rebuild writes.
        for (i, &(from, to)) in ranges.iter().enumerate() {
            let (from, to) = (from.map(|f| (base + f) * M), to.map(|t| (base + t) * M));
            let got = history_columns_writing(&store, &btc(), Interval::M1, from, to, TailWrite::Always).unwrap();
            assert_identical(&got, &sqlite(&store, from, to), &format!("written, range {i}: {from:?}..{to:?}"));
        }
        prop_assert!(fresh_file(&store).is_ok());
        assert_same_as_rebuilt(&store, "after the append");
    }
}

#[test]
fn a_pure_append_reads_only_the_rows_after_the_files_last() {
    let (_dir, store) = store();
    let conn = store.conn();
    stored_ramp(&store, 10);
    let prefix = prefix_revision(conn);
    // A stored bar changed behind the revisions' back (its trigger dropped on this test
    // database): a load that read the old rows again would see it.
    conn.execute_batch(
        "DROP TRIGGER candle_bars_update_revision;
         UPDATE candle_bars SET close = 9990 WHERE open_time = 3 * 60000;",
    )
    .unwrap();
    insert_candles(
        conn,
        &btc(),
        Interval::M1,
        &[
            candle(10 * M, Decimal::new(77, 1), Decimal::ONE),
            candle(11 * M, Decimal::new(78, 1), Decimal::ONE),
            // Already stored: sent again, ignored, still a pure append.
            ramp(9..10)[0].clone(),
        ],
    )
    .unwrap();
    assert_eq!(
        prefix_revision(conn),
        prefix,
        "a pure append keeps the prefix revision"
    );
    assert!(is_behind(&store));
    let got = side(&store, None, None);
    assert_eq!(got.len(), 12);
    assert_eq!(
        got.close[3], 10.3,
        "the old rows came from the file, not SQLite"
    );
    assert_eq!(
        sqlite(&store, None, None).close[3],
        999.0,
        "stored at one decimal"
    );
    assert_eq!(&got.close[10..], [7.7, 7.8]);
    assert!(
        fresh_file(&store).is_ok(),
        "the extended file is the current one"
    );
}

#[test]
fn writes_other_than_a_pure_append_change_the_prefix_revision_and_the_next_load_rebuilds() {
    let (_dir, store) = store();
    let conn = store.conn();
    // Gaps at 3 and 5 to fill later.
    let candles = ramp((0..10).filter(|&i| i != 3 && i != 5));
    insert_candles(conn, &btc(), Interval::M1, &candles).unwrap();
    let mut end = 10;
    let mut next = || {
        end += 1;
        (end - 1) * M
    };
    let view_insert = |t: i64, close: &str| {
        conn.execute(
            "INSERT INTO candles VALUES ('BTCUSDT', '1m', ?1, '10', '20', '1', ?2, '1')",
            params![t, close],
        )
        .unwrap();
    };

    // Each write below also appends a candle at the end, so only the prefix revision tells the
    // file from a prefix of the series.
    type Write<'a> = Box<dyn Fn(i64) + 'a>;
    let writes: [(&str, Write); 4] = [
        (
            "a gap filled through insert_candles",
            Box::new(|t| {
                insert_candles(
                    conn,
                    &btc(),
                    Interval::M1,
                    &[
                        candle(5 * M, Decimal::new(55, 0), Decimal::ONE),
                        candle(t, Decimal::ONE, Decimal::ONE),
                    ],
                )
                .unwrap();
            }),
        ),
        (
            "a gap filled through the candles view",
            Box::new(|t| {
                view_insert(3 * M, "33");
                view_insert(t, "1");
            }),
        ),
        (
            "an update of a bar",
            Box::new(|t| {
                conn.execute(
                    "UPDATE candle_bars SET close = 44000 WHERE open_time = 4 * 60000",
                    [],
                )
                .unwrap();
                view_insert(t, "1");
            }),
        ),
        (
            "a delete of a bar",
            Box::new(|t| {
                conn.execute("DELETE FROM candle_bars WHERE open_time = 6 * 60000", [])
                    .unwrap();
                insert_candles(
                    conn,
                    &btc(),
                    Interval::M1,
                    &[candle(t, Decimal::ONE, Decimal::ONE)],
                )
                .unwrap();
            }),
        ),
    ];
    for (what, write) in writes {
        side(&store, None, None);
        assert!(fresh_file(&store).is_ok(), "{what}: written");
        let prefix = prefix_revision(conn);
        write(next());
        assert_ne!(prefix_revision(conn), prefix, "{what}");
        assert!(!is_behind(&store), "{what}: not a prefix any more");
        assert_identical(&side(&store, None, None), &sqlite(&store, None, None), what);
    }
    let closes = sqlite(&store, None, None).close;
    assert_eq!((closes[3], closes[4], closes[5]), (33.0, 4400.0, 55.0));

    // A pure append through the view keeps the prefix: the file is extended.
    side(&store, None, None);
    let prefix = prefix_revision(conn);
    view_insert(next(), "2");
    assert_eq!(prefix_revision(conn), prefix, "an append through the view");
    assert!(is_behind(&store));
    assert_identical(
        &side(&store, None, None),
        &sqlite(&store, None, None),
        "view append",
    );
}

#[test]
fn a_version_1_file_is_rebuilt_after_the_migration_never_served_or_extended() {
    // The database as the previous build left it (migration 0029), with its version 1 side file.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(crate::store::DB_FILE);
    let mut old = Connection::open(&db).unwrap();
    crate::store::MIGRATIONS.to_version(&mut old, 23).unwrap();
    let bar = |conn: &Connection, i: i64, close: i64| {
        conn.execute(
            "INSERT INTO candles VALUES ('BTCUSDT', '1m', ?1, ?2, ?2, ?2, ?2, 5)",
            params![i * M, close],
        )
        .unwrap();
    };
    for i in 0..10 {
        bar(&old, i, 100 + i);
    }
    let revision: i64 = old
        .query_row("SELECT revision FROM candle_series", [], |r| r.get(0))
        .unwrap();
    // The same rows in a current store give the payload; the header is made the old build's:
    // version 1, the old revision, no prefix revision (zero bytes).
    let (_other, current_store) = store();
    for i in 0..10 {
        bar(current_store.conn(), i, 100 + i);
    }
    let (_, mut v1) = read_series(current_store.conn(), &btc(), Interval::M1, None)
        .unwrap()
        .unwrap();
    v1.revision = revision;
    v1.prefix_revision = 0;
    let mut bytes = Vec::new();
    v1.write(&mut bytes).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..124]);
    bytes[124..128].copy_from_slice(&crc.to_le_bytes());
    let path = side_path(dir.path(), v1.series_id, &btc(), Interval::M1);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    // Before the upgrade, a bar in the middle changes and one is appended.
    old.execute(
        "UPDATE candle_bars SET close = 4 WHERE open_time = 2 * 60000",
        [],
    )
    .unwrap();
    bar(&old, 10, 110);
    drop(old);

    let store = Store::open_in(dir.path()).unwrap();
    assert_ne!(prefix_revision(store.conn()), 0);
    assert!(
        matches!(found(&store), Err(Unusable::Stale(ref r)) if r.contains("format version 1")),
        "{:?}",
        found(&store).map(|_| ())
    );
    let got = side(&store, None, None);
    assert_eq!(got.close[2], 4.0, "the old file was served");
    assert_identical(&got, &sqlite(&store, None, None), "after the migration");
    let written = std::fs::read(&path).unwrap();
    assert_eq!(written[8..12], 2u32.to_le_bytes());
    assert!(written.len() > HEADER_LEN);
    let file = SideFile::read(&mut written.as_slice(), written.len() as u64).unwrap();
    assert_eq!(file.prefix_revision, prefix_revision(store.conn()));
    assert_same_as_rebuilt(&store, "after the migration");
}

#[test]
fn a_short_tail_is_read_after_the_file_and_a_long_one_written_into_it() {
    let (_dir, store) = store();
    let conn = store.conn();
    stored_ramp(&store, 80);
    let written = std::fs::read(path_of(&store)).unwrap();
    let append = |range: std::ops::Range<i64>| {
        let more: Vec<Candle> = range
            .map(|i| candle(i * M, Decimal::new(7 + i, 1), Decimal::ONE))
            .collect();
        insert_candles(conn, &btc(), Interval::M1, &more).unwrap();
    };
    // Nine rows after 80: fewer than an eighth. Every load serves them, none rewrites the file.
    append(80..89);
    for _ in 0..2 {
        assert_identical(
            &side(&store, None, None),
            &sqlite(&store, None, None),
            "short tail",
        );
        assert!(
            std::fs::read(path_of(&store)).unwrap() == written,
            "rewritten for 9 rows"
        );
        assert!(is_behind(&store));
    }
    // Ten: an eighth. The load writes them into the file, which is then the series' own.
    append(89..90);
    assert_identical(
        &side(&store, None, None),
        &sqlite(&store, None, None),
        "long tail",
    );
    assert!(fresh_file(&store).is_ok(), "written once the tail is long");
    assert_same_as_rebuilt(&store, "after the long tail");
    assert!(!TailWrite::WhenLong.writes(TAIL_ROWS_READ_AGAIN - 1, usize::MAX));
    assert!(TailWrite::WhenLong.writes(TAIL_ROWS_READ_AGAIN, usize::MAX));
}
