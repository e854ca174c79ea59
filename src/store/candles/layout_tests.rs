//! The integer layout: how numbers are stored (integers at the series' scale, rescaled or kept
//! as text when they do not fit), and migration 0028 moving an old text table exactly.

use super::*;
use crate::store::{MIGRATIONS, Store};
use rust_decimal_macros::dec;
use std::str::FromStr;

fn btc() -> Symbol {
    Symbol::new("BTCUSDT").unwrap()
}

fn flat(open_time: TimestampMs, price: Decimal, volume: Decimal) -> Candle {
    Candle {
        open_time,
        open: Price::new(price),
        high: Price::new(price),
        low: Price::new(price),
        close: Price::new(price),
        volume: Qty::new(volume),
    }
}

/// How each number of a stored bar is held: `("integer", 12345)` or `("text", "1.5")`.
fn stored(conn: &Connection, open_time: TimestampMs) -> Vec<(String, String)> {
    conn.query_row(
        "SELECT typeof(open), CAST(open AS TEXT), typeof(high), CAST(high AS TEXT),
                typeof(low), CAST(low AS TEXT), typeof(close), CAST(close AS TEXT),
                typeof(volume), CAST(volume AS TEXT)
         FROM candle_bars WHERE open_time = ?1",
        [open_time],
        |r| {
            (0..5)
                .map(|k| Ok((r.get(2 * k)?, r.get(2 * k + 1)?)))
                .collect()
        },
    )
    .unwrap()
}

fn scales(conn: &Connection) -> (i64, i64) {
    conn.query_row(
        "SELECT price_scale, volume_scale FROM candle_series WHERE symbol = 'BTCUSDT'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn int(v: &str) -> (String, String) {
    ("integer".into(), v.into())
}

fn text(v: &str) -> (String, String) {
    ("text".into(), v.into())
}

#[test]
fn numbers_are_integers_at_the_series_scale_and_a_finer_batch_rescales_the_series() {
    let store = Store::open_in_memory().unwrap();
    let conn = store.conn();
    let first = [flat(0, dec!(30000.12), dec!(1.5))];
    insert_candles(conn, &btc(), Interval::M1, &first).unwrap();
    assert_eq!(scales(conn), (2, 1));
    assert_eq!(stored(conn, 0)[0], int("3000012"));
    assert_eq!(stored(conn, 0)[4], int("15"));
    // Trailing zeros do not raise the scale; more decimals do, and the stored rows follow.
    let second = [
        flat(60_000, dec!(30000.10000000), dec!(2.000)),
        flat(120_000, dec!(30000.12345678), dec!(0.001)),
    ];
    insert_candles(conn, &btc(), Interval::M1, &second).unwrap();
    assert_eq!(scales(conn), (8, 3));
    assert_eq!(stored(conn, 0)[0], int("3000012000000"));
    assert_eq!(stored(conn, 0)[4], int("1500"));
    assert_eq!(stored(conn, 60_000)[0], int("3000010000000"));
    assert_eq!(stored(conn, 120_000)[4], int("1"));
    let back = load_candles(conn, &btc(), Interval::M1).unwrap();
    let want: Vec<Candle> = first.iter().chain(&second).cloned().collect();
    assert_eq!(back, want);
    // Read back normalised, as the text layout gave them.
    assert_eq!(back[1].close.get().to_string(), "30000.1");
    assert_eq!(back[1].volume.get().to_string(), "2");
}

#[test]
fn a_number_that_does_not_fit_64_bits_at_any_scale_is_kept_as_exact_text() {
    let store = Store::open_in_memory().unwrap();
    let conn = store.conn();
    let candles = [
        flat(0, dec!(100.5), dec!(7)),
        Candle {
            high: Price::new(dec!(12345678901234567890.5)),
            volume: Qty::new(dec!(0.000000000000000000001)),
            ..flat(60_000, dec!(100.25), dec!(7))
        },
        flat(120_000, dec!(-3.75), dec!(0)),
    ];
    insert_candles(conn, &btc(), Interval::M1, &candles).unwrap();
    assert_eq!(scales(conn), (2, 0), "nothing fitting was pushed out");
    let row = stored(conn, 60_000);
    assert_eq!(row[0], int("10025"));
    assert_eq!(row[1], text("12345678901234567890.5"));
    assert_eq!(row[4], text("0.000000000000000000001"));
    assert_eq!(stored(conn, 120_000)[0], int("-375"));
    assert_eq!(load_candles(conn, &btc(), Interval::M1).unwrap(), candles);
    // The old text shape shows the same decimals.
    let shown: Vec<(String, String, String)> = conn
        .prepare("SELECT open, high, volume FROM candles ORDER BY open_time")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        shown,
        [
            s("100.5", "100.5", "7"),
            s(
                "100.25",
                "12345678901234567890.5",
                "0.000000000000000000001"
            ),
            s("-3.75", "-3.75", "0")
        ]
    );
}

#[test]
fn a_rescale_that_would_overflow_stops_at_the_largest_scale_that_fits() {
    let store = Store::open_in_memory().unwrap();
    let conn = store.conn();
    // 9.2e12 at scale 0 stays under the rescale limit (10^15) ×100 but not ×1000.
    let big = flat(0, dec!(9200000000000), dec!(1));
    insert_candles(conn, &btc(), Interval::H1, std::slice::from_ref(&big)).unwrap();
    let fine = flat(3_600_000, dec!(1.125), dec!(1));
    let fine2 = flat(7_200_000, dec!(1.25), dec!(1));
    insert_candles(conn, &btc(), Interval::H1, &[fine.clone(), fine2.clone()]).unwrap();
    assert_eq!(scales(conn), (2, 0));
    assert_eq!(stored(conn, 0)[0], int("920000000000000"));
    assert_eq!(stored(conn, 3_600_000)[0], text("1.125"));
    assert_eq!(stored(conn, 7_200_000)[0], int("125"));
    assert_eq!(
        load_candles(conn, &btc(), Interval::H1).unwrap(),
        [big.clone(), fine.clone(), fine2.clone()]
    );
    let cols = columns_in_range(conn, &btc(), Interval::H1, None, None).unwrap();
    let want = CandleColumns::from_candles(&[big, fine, fine2]);
    assert_eq!(cols, want);
}

#[test]
fn store_columns_equal_the_columns_of_the_stored_candles_at_every_scale() {
    let store = Store::open_in_memory().unwrap();
    let conn = store.conn();
    let candles: Vec<Candle> = (0..200i64)
        .map(|i| {
            let p = Decimal::new(3_000_000 + i * 37, 2 + (i % 3) as u32);
            flat(i * 60_000, p, Decimal::new(i * 1_234_567 % 10_000_019, 6))
        })
        .collect();
    insert_candles(conn, &btc(), Interval::M1, &candles).unwrap();
    let want = CandleColumns::from_candles(&candles);
    let got = columns_in_range(conn, &btc(), Interval::M1, None, None).unwrap();
    assert_eq!(got, want);
    assert!(got.holds_exact_candles());
}

/// Rows written into the old text table, as a build before 0028 wrote them (and by hand).
const OLD_ROWS: &[(&str, &str, i64, [&str; 5])] = &[
    (
        "BTCUSDT",
        "1h",
        0,
        ["42000.1", "42100", "41999.99", "42050.5", "12.345678"],
    ),
    (
        "BTCUSDT",
        "1h",
        3_600_000,
        ["42050.5", "42060", "42000", "42001", "0.00000001"],
    ),
    (
        "BTCUSDT",
        "1h",
        7_200_000,
        [
            "42001",
            "123456789012345678901234.5",
            "42000",
            "42001",
            "1.00",
        ],
    ),
    ("BTCUSDT", "1m", 0, ["1", "1", "1", "1", "0"]),
    (
        "ETHUSDT",
        "1h",
        0,
        ["3000.123456789", "3001", "2999", "3000", "5"],
    ),
    (
        "ETHUSDT",
        "1h",
        3_600_000,
        ["x", "3001", "2999", "3000", "5"],
    ),
];

#[test]
fn migration_moves_old_text_candles_exactly() {
    let mut conn = Connection::open_in_memory().unwrap();
    MIGRATIONS.to_version(&mut conn, 21).unwrap();
    for (symbol, interval, t, v) in OLD_ROWS {
        conn.execute(
            "INSERT INTO candles VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![symbol, interval, t, v[0], v[1], v[2], v[3], v[4]],
        )
        .unwrap();
    }
    MIGRATIONS.to_latest(&mut conn).unwrap();
    let old_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'candles_text_0027'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_table, 0);
    let btc = btc();
    let h1 = load_candles(&conn, &btc, Interval::H1).unwrap();
    let m1 = load_candles(&conn, &btc, Interval::M1).unwrap();
    let read = |v: &[&str; 5]| v.map(|t| Decimal::from_str(t).unwrap());
    for (candles, interval) in [(&h1, "1h"), (&m1, "1m")] {
        let want: Vec<_> = OLD_ROWS
            .iter()
            .filter(|r| r.0 == "BTCUSDT" && r.1 == interval)
            .collect();
        assert_eq!(candles.len(), want.len());
        for (c, (_, _, t, v)) in candles.iter().zip(want) {
            let v = read(v);
            assert_eq!(c.open_time, *t);
            let got = [c.open, c.high, c.low, c.close].map(|p| p.get());
            assert_eq!(got, [v[0], v[1], v[2], v[3]]);
            assert_eq!(c.volume.get(), v[4]);
        }
    }
    // Integers where they fit (the 24-digit high stays text), scales from the data.
    assert_eq!(stored(&conn, 7_200_000)[1].0, "text");
    let btc_scales: (i64, i64) = conn
        .query_row(
            "SELECT price_scale, volume_scale FROM candle_series WHERE symbol = 'BTCUSDT' AND interval = '1h'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(btc_scales, (2, 8));
    // The view gives the old texts back (normalised, as the old writer stored them).
    let texts: Vec<String> = conn
        .prepare("SELECT volume FROM candles WHERE symbol = 'BTCUSDT' ORDER BY interval, open_time")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts, ["12.345678", "0.00000001", "1", "0"]);
    // The corrupt row is still there, and still reported by its column.
    let eth = Symbol::new("ETHUSDT").unwrap();
    let err = load_candles(&conn, &eth, Interval::H1).unwrap_err();
    assert!(err.to_string().contains("candles.open"), "{err}");
    assert_eq!(count_candles(&conn, &eth, Interval::H1).unwrap(), 2);
}
