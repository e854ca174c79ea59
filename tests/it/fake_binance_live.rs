//! Issue #23: `fake-binance` as a local exchange for the live path. Its market streams and
//! WebSocket API are on the one address `exchange.binance.base_url` derives everything from;
//! the streams follow its own candles (replayed at `--speed`) and book, the user-data stream
//! reports its own fills; `execute` and `watch` reach it with that ONE setting.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::daemon::trademind_command;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the binary with `args`; its base URL from the first line it prints.
fn start(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("fake-binance"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (Running(child), url)
}

/// Run `cmd`; its stdout lines arrive on the receiver (the process is killed on drop).
fn lines_of(mut cmd: Command) -> (Running, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Running(child), rx)
}

/// Move the fake's price by `step` every 300 ms from `from`, handing each JSON line of `rx` to
/// `done` until it says so; 30 s at most.
async fn nudge_until(
    base: &str,
    from: i64,
    step: i64,
    rx: &std::sync::mpsc::Receiver<String>,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut price = from;
    loop {
        assert!(Instant::now() < deadline, "nothing awaited arrived in 30 s");
        price += step;
        client
            .post(format!("{base}/fake/price?symbol=BTCUSDT&price={price}"))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(line) = rx.try_recv() {
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if done(&v) {
                return;
            }
        }
    }
}

fn ws_of(base: &str) -> String {
    base.replacen("http://", "ws://", 1)
}

async fn get(url: &str) -> serde_json::Value {
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_binance_streams_follow_its_candles_replayed_at_speed_and_its_book() {
    // One-minute candles at 60x: a candle a second, an hour of catching up with now.
    let (_fake, base) = start(&[
        "--klines",
        "walk",
        "--interval",
        "1m",
        "--speed",
        "60",
        "--replay-hours",
        "1",
    ]);
    // A path Binance does not serve is refused before the upgrade.
    assert!(
        tokio_tungstenite::connect_async(format!("{}/ws/btcusdt@trade", ws_of(&base)))
            .await
            .is_err()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/stream?streams=btcusdt@kline_1m/btcusdt@aggTrade/btcusdt@depth@100ms",
        ws_of(&base)
    ))
    .await
    .expect("the combined market streams on the REST address");
    let snapshot = get(&format!("{base}/api/v3/depth?symbol=BTCUSDT&limit=5000")).await;
    let snapshot_id = snapshot["lastUpdateId"].as_u64().unwrap();
    let mut klines: Vec<serde_json::Value> = Vec::new();
    let mut last_trade: Option<String> = None;
    let mut chained = false;
    let mut last_u: Option<u64> = None;
    let (mut first_kline_at, mut last_kline_at) = (None, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(20);
    while klines.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "4 candles did not close within 20 s at 60x"
        );
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .unwrap()
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        let data = &v["data"];
        match v["stream"].as_str().unwrap() {
            "btcusdt@aggTrade" => last_trade = Some(data["p"].as_str().unwrap().to_owned()),
            "btcusdt@depth@100ms" => {
                let (first, last) = (data["U"].as_u64().unwrap(), data["u"].as_u64().unwrap());
                if let Some(prev) = last_u {
                    assert_eq!(first, prev + 1, "depth diffs chain without a gap");
                }
                chained |= first <= snapshot_id + 1 && snapshot_id < last;
                last_u = Some(last);
            }
            "btcusdt@kline_1m" => {
                assert_eq!(data["k"]["x"], true, "closed candles");
                // The candle's close is the price traded just before it.
                assert_eq!(
                    last_trade.as_deref(),
                    data["k"]["c"].as_str(),
                    "the trades follow the candles"
                );
                klines.push(data["k"].clone());
                first_kline_at.get_or_insert_with(Instant::now);
                last_kline_at = Instant::now();
            }
            other => panic!("a stream that was not asked for: {other}"),
        }
    }
    assert!(chained, "no depth diff chained onto the REST snapshot");
    // At 60x a one-minute candle a second: not all at once, not a minute apart.
    let took = last_kline_at.duration_since(first_kline_at.unwrap());
    assert!(
        took >= Duration::from_millis(2_500) && took < Duration::from_secs(10),
        "4 candles took {took:?}"
    );
    let now = chrono::Utc::now().timestamp_millis();
    for pair in klines.windows(2) {
        assert_eq!(
            pair[1]["t"].as_i64().unwrap() - pair[0]["t"].as_i64().unwrap(),
            60_000
        );
    }
    for k in &klines {
        assert!(
            k["T"].as_i64().unwrap() < now,
            "a candle closed in the future: {k}"
        );
    }
    // Replayed in seconds, not minutes, and far behind now: the catch-up.
    assert!(
        now - klines[0]["T"].as_i64().unwrap() > 30 * 60_000,
        "{klines:?}"
    );
    // The REST klines end with the last candle streamed (or one more).
    let rest = get(&format!(
        "{base}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5"
    ))
    .await;
    let opens: Vec<i64> = rest
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k[0].as_i64().unwrap())
        .collect();
    assert!(
        opens.contains(&klines.last().unwrap()["t"].as_i64().unwrap()),
        "{opens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_base_url_setting_points_execute_watch_and_user_data_at_fake_binance() {
    // A rebound the rules engine with `oversold = 99` buys.
    let (_fake, base) = start(&["--klines", "rebound", "--interval", "1h"]);
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    std::fs::write(
        &config,
        "[trading]\nconnection = \"fake\"\n\n[rules]\noversold = 99.0\noverbought = 99.5\n",
    )
    .unwrap();
    // ONE setting points the connection at the fake: REST, streams and WebSocket API.
    let command = |args: &[&str]| {
        let mut cmd = trademind_command(&data);
        cmd.env("TRADEMIND_EXCHANGE__BINANCE__BASE_URL", &base)
            .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
            .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
            .arg("--config")
            .arg(&config)
            .args(args);
        cmd
    };
    let add = command(&["connection", "add", "fake", "--testnet"])
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");

    // The user-data stream, subscribed as the app does, before the order.
    let (mut user, _) = tokio_tungstenite::connect_async(format!("{}/ws-api/v3", ws_of(&base)))
        .await
        .expect("the WebSocket API on the REST address");
    let bad = trademind::services::market_stream::user_data::subscribe_signature_request(
        "1",
        "fake-api-key",
        "not-the-secret",
        chrono::Utc::now().timestamp_millis(),
        None,
    );
    user.send(Message::text(bad)).await.unwrap();
    let reply = next_json(&mut user).await;
    assert_eq!(
        reply["error"]["code"], -1022,
        "a bad signature is refused: {reply}"
    );
    let good = trademind::services::market_stream::user_data::subscribe_signature_request(
        "2",
        "fake-api-key",
        "fake-api-secret",
        chrono::Utc::now().timestamp_millis(),
        None,
    );
    user.send(Message::text(good)).await.unwrap();
    let reply = next_json(&mut user).await;
    assert_eq!(reply["status"], 200, "{reply}");

    let executed = tokio::task::spawn_blocking({
        let mut cmd = command(&["--json", "execute", "BTCUSDT", "--connection", "fake"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let shown = format!(
        "{}\n{}",
        String::from_utf8_lossy(&executed.stdout),
        String::from_utf8_lossy(&executed.stderr)
    );
    assert!(executed.status.success(), "{shown}");
    let db = rusqlite::Connection::open(data.join(trademind::cli::DB_FILE)).unwrap();
    let booked: Vec<String> = db
        .prepare(
            "SELECT client_order_id FROM orders WHERE connection = 'fake' AND side = 'BUY' \
             AND status = 'FILLED'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        booked.len(),
        1,
        "one filled buy booked on the fake connection:\n{shown}"
    );
    // The fill arrives on the user-data stream, for the order the app booked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no executionReport fill for {booked:?}"
        );
        let event = next_json(&mut user).await;
        let e = &event["event"];
        if e["e"] == "executionReport" && e["x"] == "TRADE" {
            assert_eq!(e["c"].as_str(), Some(booked[0].as_str()), "{event}");
            assert_eq!(e["X"], "FILLED");
            assert_eq!(e["S"], "BUY");
            break;
        }
    }

    // `watch` on the same connection: the price moves, events arrive.
    let (watch, rx) = lines_of(command(&["--json", "watch", "BTCUSDT", "--interval", "1h"]));
    let mut kinds = std::collections::BTreeSet::new();
    nudge_until(&base, 50_100, 10, &rx, |v| {
        if let Some(kind) = v["type"].as_str() {
            kinds.insert(kind.to_owned());
        }
        kinds.contains("trade") && kinds.contains("book_updated")
    })
    .await;
    drop(watch);
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// The exchange's balances of the fake connection, total (free + locked) by asset.
fn exchange_totals(
    command: &dyn Fn(&[&str]) -> std::process::Command,
) -> std::collections::BTreeMap<String, rust_decimal::Decimal> {
    let out = command(&["--json", "exchange", "balance", "--connection", "fake"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let dec = |v: &serde_json::Value| {
        v.as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    rows.iter()
        .map(|r| {
            (
                r["asset"].as_str().unwrap().to_owned(),
                dec(&r["free"]) + dec(&r["locked"]),
            )
        })
        .collect()
}

/// #23's end-to-end run: `fake-binance` replays a seeded random walk of hourly candles two hours
/// a second; the real `trademind --daemon`, pointed at it by ONE setting, trades the rules
/// engine through the market stream, the user-data stream and REST for simulated days. Then the
/// market is held, the daemon stopped, and the ledger is checked against the exchange by hand:
/// every base and quote unit the exchange account gained or lost is a fill the ledger booked,
/// to the last decimal; every position was protected; at least one round trip closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_trades_simulated_days_on_fake_binance_and_its_ledger_is_the_exchange_s_change()
{
    use rust_decimal::Decimal;
    let (_fake, base) = start(&[
        "--klines",
        "walk",
        "--seed",
        "7",
        "--interval",
        "1h",
        "--speed",
        "7200",
        "--replay-hours",
        "2000",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    let db = data.join(trademind::cli::DB_FILE);
    // The one-minute trading slot falls 4 s from now; orders are settled every second.
    let offset = (chrono::Utc::now().timestamp() + 4).rem_euclid(60);
    std::fs::write(
        &config,
        format!(
            "[trading]\nconnection = \"fake\"\n\n\
             [scheduler]\nautonomous_trading_minutes = 1\ncandle_close_offset_seconds = {offset}\n\
             monitor_orders_seconds = 1\n\n\
             [rules]\noversold = 99.0\noverbought = 99.5\n"
        ),
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut cmd = trademind_command(&data);
        cmd.env("TRADEMIND_EXCHANGE__BINANCE__BASE_URL", &base)
            .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
            .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
            .arg("--config")
            .arg(&config)
            .args(args);
        cmd
    };
    for args in [
        &["connection", "add", "fake", "--testnet"][..],
        &[
            "strategy",
            "add",
            "walker",
            "--engine",
            "rules",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1h",
            "--connection",
            "fake",
        ],
        &["strategy", "enable", "walker"],
    ] {
        let out = command(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let before = exchange_totals(&command);

    let log = std::fs::File::create(data.join("daemon.log")).unwrap();
    let mut daemon = command(&["--daemon"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Trade until a round trip has closed (an entry, its protection, the market reaching the
    // stop or the target); two trading slots at most.
    let closed = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            crate::daemon::wait_for_rows(
                &db,
                "SELECT id FROM positions WHERE connection = 'fake' AND status = 'closed'",
                Duration::from_secs(150),
            )
        })
        .await
        .unwrap()
    };
    // Hold the market: no candle closes, no price moves, so nothing more can fill; the
    // daemon settles what filled, then stops.
    let held = reqwest::Client::new()
        .post(format!("{base}/fake/market?paused=true"))
        .send()
        .await
        .unwrap();
    assert!(held.status().is_success());
    tokio::time::sleep(Duration::from_secs(3)).await;
    crate::daemon::signal(&daemon, "TERM");
    let status = crate::daemon::wait_exit(&mut daemon, Duration::from_secs(30));
    let log = std::fs::read_to_string(data.join("daemon.log")).unwrap();
    assert!(closed, "no round trip closed in 150 s:\n{log}");
    assert!(status.success(), "{status:?}\n{log}");

    // By hand, from the ledger's fills: what the account must have gained and lost.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let fills: Vec<(String, Decimal, Decimal, Decimal, String)> = conn
        .prepare(
            "SELECT t.side, t.price, t.quantity, t.fee, t.fee_asset FROM trades t \
             JOIN orders o ON o.id = t.order_id WHERE o.connection = 'fake'",
        )
        .unwrap()
        .query_map([], |r| {
            let d = |i: usize| -> rusqlite::Result<Decimal> {
                Ok(r.get::<_, String>(i)?.parse().unwrap())
            };
            Ok((r.get(0)?, d(1)?, d(2)?, d(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let (mut btc, mut usdt) = (Decimal::ZERO, Decimal::ZERO);
    for (side, price, qty, fee, fee_asset) in &fills {
        let sign = if side == "BUY" {
            Decimal::ONE
        } else {
            -Decimal::ONE
        };
        btc += sign * qty;
        usdt -= sign * price * qty;
        match fee_asset.as_str() {
            "BTC" => btc -= fee,
            "USDT" => usdt -= fee,
            other => panic!("fee in {other}"),
        }
    }
    assert!(
        fills.iter().filter(|f| f.0 == "SELL").count() >= 1,
        "an exit was booked: {fills:?}"
    );
    let after = exchange_totals(&command);
    assert_eq!(
        after["BTC"] - before["BTC"],
        btc,
        "the BTC the exchange account gained is what the ledger's fills say\n{fills:?}\n{log}"
    );
    assert_eq!(
        after["USDT"] - before["USDT"],
        usdt,
        "the USDT the exchange account gained is what the ledger's fills say\n{fills:?}\n{log}"
    );
    // Every position was protected by the exchange, and the closed ones by a leg that filled.
    let unprotected: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM positions p WHERE p.connection = 'fake' AND NOT EXISTS \
             (SELECT 1 FROM orders o WHERE o.position_id = p.id AND o.purpose = 'stop_loss')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unprotected, 0, "{log}");
    // The streams carried it: the market stream connected, the user-data stream subscribed
    // and stayed up (the fake pings as Binance does), and the daemon logged the round trip.
    for line in [
        "market stream",
        "user-data stream state=\"subscribed\"",
        "entry fill booked",
        "protection placed",
        "position closed",
    ] {
        assert!(
            log.contains(line),
            "no {line:?} in the daemon's log:\n{log}"
        );
    }
    assert!(
        !log.contains("no frame for"),
        "a stream was taken for dead:\n{log}"
    );
}

/// A connection carries its own address: two connections on two local exchanges (their own
/// key pairs, their own prices) while `exchange.binance.base_url` points nowhere. Signed REST,
/// `data fetch` and `watch` each reach the connection's own exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_reaches_its_own_address_ahead_of_the_global_setting() {
    let (_a, url_a) = start(&["--price", "50000", "--api-key", "key-a"]);
    let (_b, url_b) = start(&["--price", "60000", "--api-key", "key-b"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let command = |args: &[&str]| {
        let mut cmd = trademind_command(&data);
        // Nothing listens there: a connection that ignored its own address would fail.
        cmd.env(
            "TRADEMIND_EXCHANGE__BINANCE__BASE_URL",
            "http://127.0.0.1:1",
        )
        .env("TRADEMIND_BINANCE_A_API_KEY", "key-a")
        .env("TRADEMIND_BINANCE_A_API_SECRET", "fake-api-secret")
        .env("TRADEMIND_BINANCE_B_API_KEY", "key-b")
        .env("TRADEMIND_BINANCE_B_API_SECRET", "fake-api-secret")
        .args(args);
        cmd
    };
    let run = |args: &[&str]| {
        let out = command(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["connection", "add", "a", "--testnet", "--base-url", &url_a]);
    run(&[
        "connection",
        "add",
        "b",
        "--testnet",
        "--base-url",
        &format!("{url_b}/"),
    ]);
    let listed = run(&["connection", "list"]);
    assert!(listed.contains(&format!("at {url_a}")), "{listed}");
    assert!(listed.contains(&format!("at {url_b}")), "{listed}");
    let bad = command(&["connection", "add", "c", "--base-url", "http://example.com"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");

    // Signed: each key pair is known only to its own exchange.
    for name in ["a", "b"] {
        run(&["exchange", "balance", "--connection", name]);
    }
    // Market data: b's candles are b's (flat at 60 000).
    let from = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    run(&[
        "data",
        "fetch",
        "BTCUSDT",
        "1h",
        "--from",
        &from,
        "--connection",
        "b",
    ]);
    let db = rusqlite::Connection::open(data.join(trademind::cli::DB_FILE)).unwrap();
    let closes: Vec<String> = db
        .prepare("SELECT DISTINCT close FROM candles WHERE symbol = 'BTCUSDT'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(closes, ["60000"], "the candles of b's exchange");

    // Streams: `watch` on a shows a's price.
    let (_watch, rx) = lines_of(command(&[
        "--json",
        "watch",
        "BTCUSDT",
        "--connection",
        "a",
    ]));
    nudge_until(&url_a, 50_000, 1, &rx, |v| {
        if v["type"] != "trade" {
            return false;
        }
        let traded: rust_decimal::Decimal = v["price"]
            .as_str()
            .unwrap_or_else(|| panic!("a price in {v}"))
            .parse()
            .unwrap();
        assert!(
            traded >= rust_decimal::Decimal::from(50_000)
                && traded < rust_decimal::Decimal::from(51_000),
            "a trade at a's price, not b's: {v}"
        );
        true
    })
    .await;
}
