//! The `fake-binance` binary as a local market: a seeded random walk (or a recorded CSV) served
//! as klines, going on one candle per interval with the price following it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

async fn get(url: &str) -> serde_json::Value {
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

async fn klines(base: &str) -> Vec<serde_json::Value> {
    get(&format!(
        "{base}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1000"
    ))
    .await
    .as_array()
    .unwrap()
    .clone()
}

fn dec(v: &serde_json::Value) -> rust_decimal::Decimal {
    v.as_str().unwrap().parse().unwrap()
}

async fn price(base: &str) -> rust_decimal::Decimal {
    dec(&get(&format!("{base}/api/v3/ticker/price?symbol=BTCUSDT")).await["price"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_binance_walk_is_seeded_and_its_price_moves_with_each_new_candle() {
    let (_a, a) = start(&["--klines", "walk", "--seed", "7", "--interval", "1m"]);
    let (_b, b) = start(&["--klines", "walk", "--seed", "7", "--interval", "1m"]);
    let (first_a, first_b) = (klines(&a).await, klines(&b).await);
    assert_eq!(first_a.len(), 300);
    // The same seed, the same prices (the two may straddle a minute: compare the closes).
    let closes = |k: &[serde_json::Value]| -> Vec<String> {
        k.iter()
            .map(|c| c[4].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(closes(&first_a)[..290], closes(&first_b)[..290]);
    let distinct: std::collections::BTreeSet<_> = closes(&first_a).into_iter().collect();
    assert!(distinct.len() > 100, "a walk, not a flat line");
    let last_close = dec(&first_a.last().unwrap()[4]);
    assert_eq!(
        price(&a).await,
        last_close,
        "the ticker stands at the last close"
    );
    // Within a minute and a bit the next candle closes, and the price goes with it.
    let deadline = Instant::now() + Duration::from_secs(75);
    let grown = loop {
        let now = klines(&a).await;
        if now.len() > first_a.len() {
            break now;
        }
        assert!(Instant::now() < deadline, "no new candle within 75 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let newest = grown.last().unwrap();
    assert_eq!(
        newest[0].as_i64().unwrap() - first_a.last().unwrap()[0].as_i64().unwrap(),
        60_000
    );
    assert_eq!(
        newest[1],
        first_a.last().unwrap()[4],
        "it opens at the last close"
    );
    assert_eq!(price(&a).await, dec(&newest[4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_binance_replays_a_recorded_csv_ending_now() {
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("btcusdt_1h_2025-01_binance.csv");
    let (_f, url) = start(&[
        "--candles",
        csv.to_str().unwrap(),
        "--interval",
        "1h",
        "--history",
        "100",
    ]);
    let k = get(&format!(
        "{url}/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=1000"
    ))
    .await;
    let k = k.as_array().unwrap();
    assert_eq!(k.len(), 100);
    let now = chrono::Utc::now().timestamp_millis();
    let last_open = k.last().unwrap()[0].as_i64().unwrap();
    assert!(now - last_open >= 3_600_000 && now - last_open < 2 * 3_600_000 + 5_000);
    assert_eq!(price(&url).await, dec(&k.last().unwrap()[4]));
}
