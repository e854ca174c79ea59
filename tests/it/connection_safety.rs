//! Issue #19, symptom 2 (a safety defect): a strategy trades only on its own connection. One
//! added without a connection is on the paper exchange, even when `trading.connection` names a
//! Binance account: neither `execute --strategy` nor the daemon may send it an order.

use std::time::Duration;

use rust_decimal_macros::dec;
use trademind::domain::market::Interval;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, rebound_candles};

use crate::daemon::{signal, trademind_command, wait_exit, wait_for_rows};
use crate::trading::{Rig, buy};
use crate::trading_faults::CliRig;

#[tokio::test]
async fn execute_for_a_strategy_without_a_connection_trades_on_paper_not_on_the_configured_binance()
{
    use trademind::testkit::fake_xai::Script;
    let rig = Rig::new().await;
    // trading.connection is the Binance testnet connection `race`, pointed at the fake.
    let cli = CliRig::new(&rig, "");
    let add = cli
        .command(&["strategy", "add", "loose", "--symbol", "BTCUSDT"])
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");
    // Levels in percent: the paper exchange prices from the bundled candles, not 50 000.
    let mut decision = buy(0.8);
    decision["stop_loss"] = serde_json::json!({"kind": "percent", "value": 2});
    decision["take_profit"] = serde_json::json!({"kind": "percent", "value": 4});
    rig.xai.push([Script::Decision(decision)]);
    let out = tokio::task::spawn_blocking(move || {
        let out = cli
            .command(&[
                "--json",
                "execute",
                "BTCUSDT",
                "--strategy",
                "loose",
                "--engine",
                "llm",
            ])
            .output()
            .unwrap();
        (out, cli)
    })
    .await
    .unwrap();
    let (out, cli) = out;
    let shown = format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown}");
    assert_eq!(
        rig.binance.requests("POST /api/v3/order"),
        0,
        "an order reached the Binance connection the strategy was not given:\n{shown}"
    );
    assert!(rig.binance.orders().is_empty(), "{shown}");
    // The decision was carried out on the paper account: its orders are booked under `paper`.
    let db = rusqlite::Connection::open(cli.data().join(trademind::cli::DB_FILE)).unwrap();
    let accounts: Vec<String> = db
        .prepare("SELECT DISTINCT connection FROM orders")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(accounts, vec!["paper".to_string()], "{shown}");

    // Naming another connection for the strategy is refused before anything is sent.
    let other = tokio::task::spawn_blocking(move || {
        cli.command(&[
            "execute",
            "BTCUSDT",
            "--strategy",
            "loose",
            "--engine",
            "llm",
            "--connection",
            "race",
        ])
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(other.status.code(), Some(2), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("trades on connection \"paper\""),
        "{other:?}"
    );
    assert_eq!(rig.binance.requests("POST /api/v3/order"), 0);
}

/// The daemon on `trading.connection = "fake"` (Binance, keys set) with one active strategy
/// added without a connection: its trading slot runs on the paper exchange and the fake
/// receives no order. (With `--connection fake` the same strategy buys on the fake at once:
/// see `daemon_crash`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_a_strategy_without_a_connection_on_paper_not_on_the_configured_binance() {
    let fake = FakeBinance::start(FakeConfig::default()).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let series = rebound_candles(dec!(50000), Interval::M1, now);
    fake.set_price("BTCUSDT", series.last().unwrap().close.get());
    fake.set_klines("BTCUSDT", series);

    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    let db = data.join(trademind::cli::DB_FILE);
    // The one-minute trading slot falls 4 s from now; the rules engine buys this rebound.
    let offset = (chrono::Utc::now().timestamp() as u64 + 4) % 60;
    std::fs::write(
        &config,
        format!(
            "[trading]\nconnection = \"fake\"\n\n\
             [exchange.binance]\nbase_url = \"{}\"\n\n\
             [scheduler]\nautonomous_trading_minutes = 1\ncandle_close_offset_seconds = {offset}\n\
             monitor_orders_seconds = 600\nupdate_prices_seconds = 600\n\n\
             [rules]\noversold = 99.0\noverbought = 99.5\n",
            fake.base_url()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = trademind_command(&data)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    cli(&["connection", "add", "fake", "--testnet"]);
    cli(&[
        "strategy",
        "add",
        "loose",
        "--symbol",
        "BTCUSDT",
        "--interval",
        "1m",
    ]);
    cli(&["strategy", "enable", "loose"]);

    let mut daemon = trademind_command(&data)
        .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
        .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
        .arg("--config")
        .arg(&config)
        .arg("--daemon")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ran = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            wait_for_rows(
                &db,
                "SELECT COUNT(*) FROM job_runs WHERE job = 'autonomous_trading:loose'",
                Duration::from_secs(90),
            )
        })
        .await
        .unwrap()
    };
    // Give an order sent by the slot time to reach the fake.
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&daemon, "TERM");
    let stderr = tokio::task::spawn_blocking(move || {
        wait_exit(&mut daemon, Duration::from_secs(20));
        let mut stderr = String::new();
        std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        stderr
    })
    .await
    .unwrap();
    assert!(ran, "the strategy's trading slot never ran:\n{stderr}");
    assert_eq!(
        fake.requests("POST /api/v3/order"),
        0,
        "the daemon sent the strategy's order to a connection it was not given:\n{stderr}"
    );
    assert!(fake.orders().is_empty());
    // Put on the paper exchange, whose market the daemon does not feed: its slot finds no
    // candles there (and so sends nothing anywhere).
    let plain = strip_ansi(&stderr);
    assert!(
        plain.contains("strategy trades on its own connection strategy=loose connection=paper"),
        "the strategy was not put on the paper exchange:\n{plain}"
    );
}

/// The log without its colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
