//! `data import` into the store: what a failing import leaves, and the stored candles read back
//! (as candles and as columns) against the file read directly.

use super::csv_columns::read_columns_file;
use super::import::{ImportError, ImportOptions, import_file, parse_candles};
use crate::domain::Symbol;
use crate::domain::market::{CandleColumns, Interval};
use crate::store::Store;
use crate::store::candles::{columns_in_range, count_candles, last_open_time, load_candles};
use std::path::{Path, PathBuf};

const T0: i64 = 1_735_689_600_000; // 2025-01-01

fn btc() -> Symbol {
    Symbol::new("BTCUSDT").unwrap()
}

/// `n` hourly rows with prices of two decimals and volumes of six.
fn rows(n: i64) -> String {
    (0..n)
        .map(|i| {
            let c = 3_000_000 + (i * 7919) % 100_000;
            format!(
                "{},{}.{:02},{}.{:02},{}.{:02},{}.{:02},{}.{:06}\n",
                T0 + i * 3_600_000,
                c / 100,
                c % 100,
                (c + 50) / 100,
                (c + 50) % 100,
                (c - 50) / 100,
                (c - 50) % 100,
                c / 100,
                c % 100,
                i % 97,
                (i * 104_729) % 1_000_000
            )
        })
        .collect()
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("in.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn import(store: &Store, path: &Path) -> Result<super::import::ImportSummary, ImportError> {
    import_file(
        store.conn(),
        path,
        &btc(),
        Interval::H1,
        ImportOptions::default(),
        &mut |_, _| {},
    )
}

#[test]
fn a_store_failure_part_way_keeps_nothing_of_the_transaction_it_broke() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &rows(12_000));
    let store = Store::open_in_memory().unwrap();
    // The write of row 7,000 fails (as a full disk would), after the rows before it in the
    // same transaction were written by earlier statements.
    let failing = T0 + 7_000 * 3_600_000;
    store
        .conn()
        .execute_batch(&format!(
            "CREATE TEMP TRIGGER full_disk BEFORE INSERT ON main.candle_bars
             WHEN NEW.open_time = {failing} BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        ))
        .unwrap();
    let err = import(&store, &path).unwrap_err();
    let ImportError::Partial {
        inserted, source, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(source.to_string().contains("disk full"), "{err}");
    let stored = count_candles(store.conn(), &btc(), Interval::H1).unwrap();
    assert_eq!(stored, *inserted, "{err}");
    assert!(
        stored < 7_000,
        "{stored}: the broken transaction was kept in part"
    );
    let last = last_open_time(store.conn(), &btc(), Interval::H1).unwrap();
    assert_eq!(last, Some(T0 + (stored as i64 - 1) * 3_600_000));
    // Nothing of the failing transaction: the stored rows are exactly a prefix.
    let back = load_candles(store.conn(), &btc(), Interval::H1).unwrap();
    assert_eq!(back.len(), stored);
}

#[test]
fn a_failure_in_the_first_transaction_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &rows(3_000));
    let store = Store::open_in_memory().unwrap();
    store
        .conn()
        .execute_batch(&format!(
            "CREATE TEMP TRIGGER full_disk BEFORE INSERT ON main.candle_bars
             WHEN NEW.open_time = {} BEGIN SELECT RAISE(ABORT, 'disk full'); END",
            T0 + 2_999 * 3_600_000
        ))
        .unwrap();
    let err = import(&store, &path).unwrap_err();
    assert!(matches!(err, ImportError::Store(_)), "{err}");
    assert_eq!(
        count_candles(store.conn(), &btc(), Interval::H1).unwrap(),
        0
    );
    let series: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM candle_series", [], |r| r.get(0))
        .unwrap();
    assert_eq!(series, 0, "not even the series row");
}

/// A file read by every path of the reader: plain rows, a 12-column dump row, trailing zeros,
/// numbers written other ways (spaces, an exponent) and a gap.
fn mixed_file() -> String {
    let mut text = String::from("open_time,open,high,low,close,volume\n");
    text.push_str(&rows(300));
    let t = |i: i64| T0 + i * 3_600_000;
    text.push_str(&format!(
        "{},30000.10,30100.000,29999.99,30050,1.500000,{},12.5,10,1,1,0\n",
        t(300),
        t(301) - 1
    ));
    text.push_str(&format!("{}, 30050 ,30060,30000,30001, 2\n", t(301)));
    text.push_str(&format!("{},30001.0 ,30060,30000,30001,0.000001\n", t(302)));
    text.push_str(&format!(
        "{},0.00000123,0.00000125,0.00000120,0.00000124,123456789012.12345678\n",
        t(310)
    ));
    text
}

#[test]
fn stored_candles_read_back_are_the_files_candles_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let text = mixed_file();
    let path = write(dir.path(), &text);
    let store = Store::open_in_memory().unwrap();
    let summary = import(&store, &path).unwrap();
    assert_eq!(summary.inserted, 304);
    assert_eq!(summary.gaps.len(), 1);
    let parsed = parse_candles(&text, Interval::H1, false).unwrap();
    let back = load_candles(store.conn(), &btc(), Interval::H1).unwrap();
    assert_eq!(back, parsed.candles);
    // Digit for digit, as the text layout gave them.
    for (b, p) in back.iter().zip(&parsed.candles) {
        assert_eq!(b.low.get().to_string(), p.low.get().to_string());
        assert_eq!(b.volume.get().to_string(), p.volume.get().to_string());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let from_file = read_columns_file(&path, Interval::H1, now).unwrap();
    let from_store = columns_in_range(store.conn(), &btc(), Interval::H1, None, None).unwrap();
    assert_eq!(from_store, from_file);
    // The same again for a plain file (the quick reader alone), and a range of it.
    let plain = rows(2_000);
    let path = write(dir.path(), &plain);
    let store = Store::open_in_memory().unwrap();
    import(&store, &path).unwrap();
    let from_file = read_columns_file(&path, Interval::H1, now).unwrap();
    let from_store = columns_in_range(store.conn(), &btc(), Interval::H1, None, None).unwrap();
    assert_eq!(from_store, from_file);
    let window = columns_in_range(
        store.conn(),
        &btc(),
        Interval::H1,
        Some(T0 + 3_600_000),
        None,
    )
    .unwrap();
    assert!(from_store.holds_exact_candles());
    let candles = parse_candles(&plain, Interval::H1, false).unwrap().candles;
    assert_eq!(window, CandleColumns::from_candles(&candles[1..]));
}
