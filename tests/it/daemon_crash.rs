//! Crash safety of the real `trademind --daemon` against the fake Binance: killed with SIGKILL
//! while its entry order is in flight (the fake accepted it and holds the reply), then
//! restarted: no second order, an intact database, and the order's true state reconciled.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use trademind::domain::market::Interval;
use trademind::domain::market::candle::Candle;

use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, rebound_candles};

use crate::daemon::{signal, trademind_command, wait_exit, wait_for_rows};

/// 70 closed one-minute candles up to the current minute: a slow decline, then ten rising
/// closes, on which the rules engine with `oversold = 99` buys.
fn candles(now_ms: i64) -> Vec<Candle> {
    rebound_candles(dec!(50000), Interval::M1, now_ms)
}

/// A config whose one-minute trading slot falls `in_secs` seconds from now.
fn write_config(path: &Path, base_url: &str, in_secs: u64) {
    let now = chrono::Utc::now().timestamp() as u64;
    let offset = (now + in_secs) % 60;
    std::fs::write(
        path,
        format!(
            "[trading]\nconnection = \"fake\"\n\n\
             [exchange.binance]\nbase_url = \"{base_url}\"\n\n\
             [scheduler]\nautonomous_trading_minutes = 1\ncandle_close_offset_seconds = {offset}\n\
             monitor_orders_seconds = 600\nupdate_prices_seconds = 600\n\n\
             [rules]\noversold = 99.0\noverbought = 99.5\n"
        ),
    )
    .unwrap();
}

fn daemon(data: &Path, config: &Path) -> Child {
    trademind_command(data)
        .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
        .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
        .arg("--config")
        .arg(config)
        .arg("--daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn cli(data: &Path, config: &Path, args: &[&str]) {
    let out = trademind_command(data)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

fn integrity(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn order_row(db: &Path, cid: &str) -> (String, String) {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT status, filled_quantity FROM orders WHERE client_order_id = ?1",
            [cid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_an_order_in_flight_then_restart_sends_no_duplicate_and_reconciles() {
    let fake = FakeBinance::start(FakeConfig::default()).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let series = candles(now);
    fake.set_price("BTCUSDT", series.last().unwrap().close.get());
    fake.set_klines("BTCUSDT", series);
    // Accept the entry order, then hold the reply far longer than the daemon lives.
    fake.faults(|f| {
        f.orders_slow_after_accept = 1;
        f.accept_delay = Duration::from_secs(600);
    });

    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    let db = data.join(trademind::cli::DB_FILE);
    write_config(&config, &fake.base_url(), 4);
    cli(&data, &config, &["connection", "add", "fake", "--testnet"]);
    cli(
        &data,
        &config,
        &[
            "strategy",
            "add",
            "crash",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
            "--connection",
            "fake",
        ],
    );
    cli(&data, &config, &["strategy", "enable", "crash"]);

    let first = {
        let (data, config) = (data.clone(), config.clone());
        tokio::task::spawn_blocking(move || daemon(&data, &config))
            .await
            .unwrap()
    };
    // The order reaches the fake and its reply is held: kill -9 now.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while fake.requests("POST /api/v3/order") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never sent its entry order"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut first = first;
    signal(&first, "KILL");
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut first, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(status.code(), None, "killed by a signal, not exited");

    let accepted = fake.orders();
    assert_eq!(accepted.len(), 1, "the fake holds the one entry order");
    let cid = accepted[0].client_order_id.clone();
    assert_eq!(integrity(&db), "ok", "the database survives SIGKILL");
    // Written before the request left: the row exists, its outcome unknown to us.
    let (status_before, _) = order_row(&db, &cid);
    assert_eq!(status_before, "PENDING_NEW");

    // Restart with the next trading slot far away: only reconciliation runs.
    write_config(&config, &fake.base_url(), 45);
    let mut second = {
        let (data, config) = (data.clone(), config.clone());
        tokio::task::spawn_blocking(move || daemon(&data, &config))
            .await
            .unwrap()
    };
    let settled = {
        let db = db.clone();
        let query = format!(
            "SELECT COUNT(*) FROM orders WHERE client_order_id = '{cid}' AND status = 'FILLED'"
        );
        tokio::task::spawn_blocking(move || wait_for_rows(&db, &query, Duration::from_secs(30)))
            .await
            .unwrap()
    };
    signal(&second, "TERM");
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let status = wait_exit(&mut second, Duration::from_secs(20));
        let mut stderr = String::new();
        std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    assert!(settled, "the order was not reconciled to FILLED:\n{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");

    // Exactly one order with that client id ever reached the exchange.
    let same: Vec<_> = fake
        .orders()
        .into_iter()
        .filter(|o| o.client_order_id == cid)
        .collect();
    assert_eq!(same.len(), 1, "duplicate order sent");
    assert_eq!(fake.requests("POST /api/v3/order"), 1, "no second entry");
    let truth = &same[0];
    let (status_after, filled) = order_row(&db, &cid);
    assert_eq!(status_after, truth.status.to_string());
    assert_eq!(
        filled.parse::<Decimal>().unwrap(),
        truth.filled_quantity.get()
    );
    // The fill is booked: an open position of the quantity bought less the fee paid in BTC.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let qty: String = conn
        .query_row(
            "SELECT quantity FROM positions WHERE symbol = 'BTCUSDT' AND status = 'open'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let fee = truth.filled_quantity.get() * dec!(0.001);
    assert_eq!(
        qty.parse::<Decimal>().unwrap(),
        truth.filled_quantity.get() - fee
    );
    assert_eq!(integrity(&db), "ok");
}
