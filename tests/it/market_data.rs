//! Market data flows: importing the bundled CSV files into the store (idempotently) and
//! computing indicators from what was stored; downloading klines from a fake Binance with
//! pagination, resume, the open candle left out, and 429 back-off.

use rust_decimal::Decimal;
use std::path::Path;
use trademind::domain::Symbol;
use trademind::domain::market::indicators::{IndicatorParams, calculate_indicators};
use trademind::domain::market::{Candle, CandleColumns, Interval};
use trademind::domain::money::{Price, Qty};
use trademind::services::market_data::MarketDataConfig;
use trademind::services::market_data::fetch::{
    FetchError, FetchRequest, KlineClient, fetch_into_store,
};
use trademind::services::market_data::import::{CsvFormat, ImportOptions, import_file};
use trademind::store::Store;
use trademind::store::candles::{count_candles, load_candles};
use trademind::testkit::fake_klines::{FakeKlines, SeenRequest};

const H: i64 = 3_600_000;

fn asset(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
}

fn btc() -> Symbol {
    Symbol::new("BTCUSDT").unwrap()
}

#[test]
fn importing_the_bundled_binance_file_twice_stores_it_once_and_feeds_indicators() {
    let store = Store::open_in_memory().unwrap();
    let path = asset("btcusdt_1h_2025-01_binance.csv");
    let mut ticks = 0;
    let first = import_file(
        store.conn(),
        &path,
        &btc(),
        Interval::H1,
        ImportOptions::default(),
        &mut |_, _| ticks += 1,
    )
    .unwrap();
    assert!(ticks >= 2);
    assert_eq!(first.format, CsvFormat::Binance);
    assert_eq!(
        (first.rows_read, first.inserted, first.already_present),
        (744, 744, 0)
    );
    assert_eq!(first.first_open_time, Some(1_735_689_600_000)); // 2025-01-01 00:00 UTC
    assert_eq!(first.last_open_time, Some(1_735_689_600_000 + 743 * H));
    assert!(first.gaps.is_empty() && first.skipped.is_empty());

    let again = import_file(
        store.conn(),
        &path,
        &btc(),
        Interval::H1,
        ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!((again.inserted, again.already_present), (0, 744));
    assert_eq!(
        count_candles(store.conn(), &btc(), Interval::H1).unwrap(),
        744
    );

    // The stored decimals feed the indicators to TA-Lib's values (last row of the golden file).
    let candles = load_candles(store.conn(), &btc(), Interval::H1).unwrap();
    let ind = calculate_indicators(
        &CandleColumns::from_candles(&candles),
        &IndicatorParams::default(),
    );
    let golden = include_str!("../fixtures/golden_talib.csv");
    let last: Vec<f64> = golden
        .lines()
        .last()
        .unwrap()
        .split(',')
        .skip(7)
        .map(|v| v.parse().unwrap())
        .collect();
    let ours = [
        ind.sma[743],
        ind.ema[743],
        ind.rsi[743],
        ind.macd[743],
        ind.atr[743],
        ind.adx[743],
        ind.obv[743],
    ];
    let theirs = [
        last[0], last[1], last[2], last[3], last[9], last[10], last[13],
    ];
    for (o, t) in ours.iter().zip(theirs) {
        assert!(((o - t) / t).abs() < 1e-9, "{o} vs {t}");
    }
}

#[test]
fn the_bundled_coinbase_file_imports_oldest_first_without_gaps() {
    let store = Store::open_in_memory().unwrap();
    let summary = import_file(
        store.conn(),
        &asset("coinbase_btcusd_1h_2017-2019.csv"),
        &Symbol::new("BTCUSD").unwrap(),
        Interval::H1,
        ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(summary.format, CsvFormat::CryptoDataDownload);
    assert_eq!(summary.inserted, 20_111);
    assert_eq!(summary.first_open_time, Some(1_498_906_800_000)); // 2017-07-01 11:00 UTC
    assert_eq!(summary.last_open_time, Some(1_571_302_800_000)); // 2019-10-17 09:00 UTC
    assert!(summary.gaps.is_empty());
}

#[test]
fn a_bad_row_stops_the_import_and_stores_nothing_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(
        &file,
        "open_time,open,high,low,close,volume\n1735689600000,1,2,0.5,1,1\n1735693200000,1,2,0.5,1,-3\n1735696800000,1,2,0.5,1,1\n",
    )
    .unwrap();
    let store = Store::open_in_memory().unwrap();
    let err = import_file(
        store.conn(),
        &file,
        &btc(),
        Interval::H1,
        ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("line 3: volume -3 is negative"),
        "{err}"
    );
    assert_eq!(
        count_candles(store.conn(), &btc(), Interval::H1).unwrap(),
        0
    );

    let summary = import_file(
        store.conn(),
        &file,
        &btc(),
        Interval::H1,
        ImportOptions { skip_bad: true },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(summary.inserted, 2);
    assert_eq!(summary.skipped.len(), 1);
    assert_eq!(
        summary.gaps.len(),
        1,
        "the skipped row leaves a one-candle gap"
    );
}

fn series(n: i64) -> Vec<Candle> {
    (0..n)
        .map(|i| {
            let p = Price::new(Decimal::new(3_000_000 + i, 2));
            Candle {
                open_time: i * H,
                open: p,
                high: p,
                low: p,
                close: p,
                volume: Qty::new(Decimal::new(15 + i, 1)),
            }
        })
        .collect()
}

/// The klines requests the fake received (not the server-time ones).
fn klines_requests(fake: &FakeKlines) -> Vec<SeenRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == "/api/v3/klines")
        .collect()
}

fn client(fake: &FakeKlines) -> KlineClient {
    KlineClient::new(&MarketDataConfig {
        rest_base_url: fake.base_url(),
        ..MarketDataConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn fetch_pages_by_a_thousand_leaves_the_open_candle_out_and_resumes() {
    let all = series(3000);
    // "now" is inside candle 2499: it is still open.
    let fake = FakeKlines::start("BTCUSDT", Interval::H1, all.clone(), 2499 * H + 60_000)
        .await
        .unwrap();
    let store = Store::open_in_memory().unwrap();
    let client = client(&fake);
    let request = FetchRequest {
        symbol: btc(),
        interval: Interval::H1,
        from: 0,
        to: None,
    };
    let summary = fetch_into_store(&client, &store, &request, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(summary.requests, 3);
    assert_eq!(summary.inserted, 2499);
    assert!(summary.skipped_open_candle);
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/v3/time",
            "/api/v3/klines",
            "/api/v3/klines",
            "/api/v3/klines"
        ],
        "the server time once, then the pages"
    );
    assert_eq!(summary.server_time, 2499 * H + 60_000);
    let starts: Vec<String> = klines_requests(&fake)
        .iter()
        .map(|r| r.param("startTime").unwrap().to_string())
        .collect();
    assert_eq!(
        starts,
        ["0", &(1000 * H).to_string(), &(2000 * H).to_string()]
    );
    assert!(
        klines_requests(&fake)
            .iter()
            .all(|r| r.param("limit") == Some("1000"))
    );
    assert_eq!(fake.used_weight(), 1 + 3 * 2, "time 1, klines 2 each");
    let stored = load_candles(store.conn(), &btc(), Interval::H1).unwrap();
    assert_eq!(stored[..], all[..2499], "stored exactly as served");

    // Later: candle 2499 closed and 200 more; the next fetch starts where the store ends.
    let later = 2700 * H + 5;
    fake.set_now(later);
    let resumed = fetch_into_store(&client, &store, &request, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(resumed.started_at, 2499 * H);
    assert_eq!(resumed.requests, 1);
    assert_eq!(resumed.inserted, 201);
    assert_eq!(resumed.already_present, 0);
    assert_eq!(
        klines_requests(&fake)[3].param("startTime"),
        Some(&*(2499 * H).to_string())
    );
    assert_eq!(
        count_candles(store.conn(), &btc(), Interval::H1).unwrap(),
        2700
    );
}

#[tokio::test]
async fn fetch_stops_before_to_and_sends_end_time() {
    let fake = FakeKlines::start("BTCUSDT", Interval::H1, series(100), 100 * H)
        .await
        .unwrap();
    let store = Store::open_in_memory().unwrap();
    let summary = fetch_into_store(
        &client(&fake),
        &store,
        &FetchRequest {
            symbol: btc(),
            interval: Interval::H1,
            from: 10 * H,
            to: Some(20 * H),
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.inserted, 10);
    assert_eq!(summary.first_open_time, Some(10 * H));
    assert_eq!(summary.last_open_time, Some(19 * H));
    assert!(!summary.skipped_open_candle);
    assert_eq!(
        klines_requests(&fake)[0].param("endTime"),
        Some(&*(20 * H - 1).to_string())
    );
}

#[tokio::test]
async fn fetch_waits_out_a_429_retry_after_and_then_succeeds() {
    let fake = FakeKlines::start("BTCUSDT", Interval::H1, series(5), 5 * H)
        .await
        .unwrap();
    fake.throttle_next(1, 1);
    let store = Store::open_in_memory().unwrap();
    let started = std::time::Instant::now();
    let summary = fetch_into_store(
        &client(&fake),
        &store,
        &FetchRequest {
            symbol: btc(),
            interval: Interval::H1,
            from: 0,
            to: None,
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(summary.inserted, 5);
    assert_eq!(
        klines_requests(&fake).len(),
        2,
        "the throttled request was repeated once"
    );
}

#[tokio::test]
async fn an_unknown_symbol_is_reported_with_binances_code() {
    let fake = FakeKlines::start("BTCUSDT", Interval::H1, series(5), 5 * H)
        .await
        .unwrap();
    let store = Store::open_in_memory().unwrap();
    let err = fetch_into_store(
        &client(&fake),
        &store,
        &FetchRequest {
            symbol: Symbol::new("NOPEUSDT").unwrap(),
            interval: Interval::H1,
            from: 0,
            to: None,
        },
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Api {
                status: 400,
                code: -1121,
                ..
            }
        ),
        "{err}"
    );
}

fn trademind(data_dir: &Path) -> assert_cmd::Command {
    crate::hermetic::trademind_at(data_dir)
}

fn json_of(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn cli_imports_idempotently_and_prints_the_latest_indicators() {
    let dir = tempfile::tempdir().unwrap();
    let file = asset("btcusdt_1h_2025-01_binance.csv");
    let import = |cmd: &mut assert_cmd::Command| {
        cmd.arg("--json")
            .args(["data", "import"])
            .arg(&file)
            .args(["--symbol", "BTCUSDT", "--interval", "1h"])
            .assert()
            .success()
    };
    let first = json_of(&import(&mut trademind(dir.path())));
    assert_eq!(first["inserted"], 744);
    let again = json_of(&import(&mut trademind(dir.path())));
    assert_eq!(
        (
            again["inserted"].as_u64(),
            again["already_present"].as_u64()
        ),
        (Some(0), Some(744))
    );

    let out = trademind(dir.path())
        .args(["--json", "indicators", "BTCUSDT", "1h", "--last", "2"])
        .assert()
        .success();
    let rows = json_of(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["open_time"], 1_735_689_600_000i64 + 743 * H);
    // TA-Lib's RSI(14) on the last candle (golden file).
    let rsi = rows[1]["rsi"].as_f64().unwrap();
    assert!((rsi - 36.81972864164359).abs() < 1e-9, "{rsi}");

    let text = trademind(dir.path())
        .args(["indicators", "BTCUSDT", "1h"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("2025-01-31 23:00") && text.contains("rsi14"),
        "{text}"
    );
}

#[test]
fn cli_import_of_a_bad_row_fails_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(
        &file,
        "1735689600000,1,2,0.5,1,1\n1735693200000,1,2,0.5,1,1\n1735693200000,1,2,0.5,1,1\n",
    )
    .unwrap();
    let out = trademind(dir.path())
        .args(["data", "import"])
        .arg(&file)
        .args(["--symbol", "BTCUSDT", "--interval", "1h"])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("line 3: duplicate open time 1735693200000"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_fetch_judges_the_open_candle_by_binances_clock_not_the_local_one() {
    // Binance's clock is five hours behind ours, half-way through its current candle. By our
    // clock that candle closed hours ago; by Binance's it is still open and must not be stored.
    let local_now = chrono::Utc::now().timestamp_millis();
    let server_now = local_now - 5 * H;
    let current = server_now - server_now.rem_euclid(H);
    let server_now = current + H / 2;
    // 30 candles up to and including the one still open at the server's now.
    let candles: Vec<Candle> = series(30)
        .into_iter()
        .map(|c| Candle {
            open_time: current - 29 * H + c.open_time,
            ..c
        })
        .collect();
    let fake = FakeKlines::start("BTCUSDT", Interval::H1, candles, server_now)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let from = chrono::DateTime::from_timestamp_millis(current - 29 * H)
        .unwrap()
        .to_rfc3339();
    let (path, url) = (dir.path().to_path_buf(), fake.base_url());
    let out = tokio::task::spawn_blocking(move || {
        trademind(&path)
            .env("TRADEMIND_MARKET_DATA__REST_BASE_URL", url)
            .args(["--json", "data", "fetch", "BTCUSDT", "1h", "--from", &from])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    })
    .await
    .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(summary["server_time"], server_now, "{summary}");
    assert_eq!(summary["inserted"], 29, "{summary}");
    assert_eq!(summary["skipped_open_candle"], true);
    assert_eq!(summary["stored_total"], 29);
    assert_eq!(
        summary["last_open_time"],
        current - H,
        "the open candle is not stored"
    );
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/api/v3/time")
            .count(),
        1,
        "the server time is asked once per fetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_fetch_downloads_from_the_connections_one_address() {
    // One setting points the connection at the exchange: `data fetch --connection` must use
    // it (it used to ignore the connection and ask production's `market_data.rest_base_url`).
    let server_now = chrono::Utc::now().timestamp_millis();
    let current = server_now - server_now.rem_euclid(H);
    let candles: Vec<Candle> = series(5)
        .into_iter()
        .map(|c| Candle {
            open_time: current - 5 * H + c.open_time,
            ..c
        })
        .collect();
    let fake = FakeKlines::start("BTCUSDT", Interval::H1, candles, server_now)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let from = chrono::DateTime::from_timestamp_millis(current - 5 * H)
        .unwrap()
        .to_rfc3339();
    let (path, url) = (dir.path().to_path_buf(), fake.base_url());
    let out = tokio::task::spawn_blocking(move || {
        trademind(&path)
            .args(["connection", "add", "local", "--testnet"])
            .assert()
            .success();
        trademind(&path)
            .env("TRADEMIND_EXCHANGE__BINANCE__BASE_URL", url)
            .args(["--json", "data", "fetch", "BTCUSDT", "1h", "--from", &from])
            .args(["--connection", "local"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    })
    .await
    .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(summary["inserted"], 5, "{summary}");
    assert!(
        fake.requests().iter().any(|r| r.path == "/api/v3/klines"),
        "the klines came from the connection's address"
    );
}
