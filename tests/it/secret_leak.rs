//! Secrets stay secret over whole flows: distinctive canary keys for Binance, xAI, Tavily and
//! Resend are supplied through the environment secret store, real commands run against the fake
//! servers (successes, 401s, malformed answers, a timeout, `--json`), and then no canary, nor its
//! hex or base64 form, may appear in anything printed, the log files, the SQLite files (raw
//! bytes of the db, -wal and -shm) or `config show`. The fakes check the keys they receive, so
//! each flow proves the secret was actually used. `keys test` is tested here too, on the same rig.
//!
//! Adding a flow is one line in `FLOWS`. `trademind execute` is one: a BUY signed with the
//! Binance secret, its OCO, and the trade alert mailed through Resend; the signed order path is
//! also exercised in process below, with every trace event captured.

use assert_cmd::Command;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

use trademind::testkit::fake_binance::{FakeBinance, FakeConfig};
use trademind::testkit::fake_resend::FakeResend;
use trademind::testkit::fake_tavily::{FakeNews, FakeTavily};
use trademind::testkit::fake_xai::{FakeXai, Script};

const MODEL: &str = "grok-leak-test";
/// The Binance connection the flows use (its keys: `TRADEMIND_BINANCE_LEAK_API_KEY`/`_SECRET`).
const CONNECTION: &str = "leak";

/// One credential set. The fakes accept `GOOD` only; `WRONG` is just as secret.
struct Keys {
    binance_key: &'static str,
    binance_secret: &'static str,
    xai: &'static str,
    tavily: &'static str,
    resend: &'static str,
}

const GOOD: Keys = Keys {
    binance_key: "cnryBinKey7f3Kq9ZtWvX2m",
    binance_secret: "cnryBinSecret4Hd8Lp1RsYe6",
    xai: "xai-cnryXaiKey9Tb3Nw5Qj",
    tavily: "tvly-cnryTavKey2Gx7Mc4Vz",
    resend: "re_cnryResKey8Pf6Ua1Dk",
};

const WRONG: Keys = Keys {
    binance_key: "cnryWrongBinKey3Jh5Rt",
    binance_secret: "cnryWrongBinSecret6Ws2Yq",
    xai: "xai-cnryWrongXai1Lm8Bn",
    tavily: "tvly-cnryWrongTav5Zc9Hg",
    resend: "re_cnryWrongRes7Qa4Ke",
};

impl Keys {
    fn all(&self) -> [&'static str; 5] {
        [
            self.binance_key,
            self.binance_secret,
            self.xai,
            self.tavily,
            self.resend,
        ]
    }

    fn env(&self) -> [(&'static str, &'static str); 5] {
        [
            ("TRADEMIND_BINANCE_LEAK_API_KEY", self.binance_key),
            ("TRADEMIND_BINANCE_LEAK_API_SECRET", self.binance_secret),
            ("TRADEMIND_GROK_API_KEY", self.xai),
            ("TRADEMIND_TAVILY_API_KEY", self.tavily),
            ("TRADEMIND_RESEND_API_KEY", self.resend),
        ]
    }
}

/// The four fake services.
struct Fakes {
    binance: FakeBinance,
    xai: FakeXai,
    tavily: FakeTavily,
    resend: FakeResend,
}

impl Fakes {
    async fn start() -> Fakes {
        let binance = FakeBinance::start(FakeConfig {
            api_key: GOOD.binance_key.into(),
            api_secret: GOOD.binance_secret.into(),
            ..FakeConfig::default()
        })
        .await
        .unwrap();
        let tavily = FakeTavily::start(GOOD.tavily).await.unwrap();
        tavily.set_results(vec![FakeNews {
            title: "Bitcoin ETF inflows".into(),
            url: "https://news.example/etf".into(),
            content: "Spot ETFs took in more money.".into(),
            published_date: None,
        }]);
        Fakes {
            binance,
            xai: FakeXai::start(GOOD.xai, &[MODEL]).await.unwrap(),
            tavily,
            resend: FakeResend::start(GOOD.resend).await.unwrap(),
        }
    }

    /// Every service pointed at its fake; keys from the environment only.
    fn config(&self) -> String {
        format!(
            r#"[secrets]
backend = "environment"

[trading]
connection = "{CONNECTION}"

[exchange.binance]
base_url = "{binance}"
request_timeout_ms = 2000
max_read_retries = 0

[llm]
base_url = "{xai}"
model = "{MODEL}"
timeout_secs = 1
max_retries = 0
retry_base_ms = 10

[llm.tavily]
base_url = "{tavily}"

[notifications]
enabled = true
base_url = "{resend}"
from = "TradeMind <alerts@example.com>"
to = ["me@example.com"]
timeout_seconds = 2
"#,
            binance = self.binance.base_url(),
            xai = self.xai.base_url(),
            tavily = self.tavily.base_url(),
            resend = self.resend.url(),
        )
    }
}

/// What the fakes are told before a flow runs.
#[derive(Clone, Copy)]
enum Prep {
    Nothing,
    ValidDecision,
    MalformedDecision,
    SlowDecision,
    MalformedBinance,
    MalformedResend,
    /// A BUY the risk layer accepts at the fake's 50,000 price: `execute` signs an order and an
    /// OCO with the Binance secret.
    BuyDecision,
}

impl Prep {
    fn apply(self, fakes: &Fakes) {
        let decision = json!({
            "action": "HOLD", "symbol": "BTCUSDT", "confidence": 0.4, "position_size_pct": 0,
            "stop_loss": null, "take_profit": null, "time_horizon": "swing",
            "reasoning": "no edge", "risk_factors": [], "sources": []
        });
        match self {
            Prep::Nothing => {}
            Prep::ValidDecision => fakes.xai.push([Script::Decision(decision)]),
            Prep::MalformedDecision => fakes.xai.push([Script::Content("{\"action\": BUY".into())]),
            // llm.timeout_secs is 1: the reply comes too late.
            Prep::SlowDecision => fakes.xai.push([Script::Delayed(
                Duration::from_millis(1_500),
                Box::new(Script::Decision(decision)),
            )]),
            Prep::MalformedBinance => fakes.binance.faults(|f| f.malformed_next = 1),
            Prep::BuyDecision => {
                use rust_decimal_macros::dec;
                use trademind::domain::market::Interval;
                // 100 hourly candles at 50,000 up to the one open now.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                let hour = Interval::H1.millis();
                let candles = trademind::testkit::fake_binance::flat_candles(
                    dec!(50000),
                    100,
                    Interval::H1,
                    now / hour * hour,
                );
                fakes.binance.set_klines("BTCUSDT", candles);
                fakes.binance.set_price("BTCUSDT", dec!(50000));
                fakes.xai.push([Script::Decision(json!({
                    "action": "BUY", "symbol": "BTCUSDT", "confidence": 0.8,
                    "position_size_pct": 10,
                    "stop_loss": {"kind": "price", "value": 49000},
                    "take_profit": {"kind": "price", "value": 52000},
                    "time_horizon": "swing", "reasoning": "breakout", "risk_factors": [],
                    "sources": []
                }))]);
            }
            Prep::MalformedResend => fakes
                .resend
                .script(trademind::testkit::http::Response::json(
                    200,
                    &json!({"unexpected": true}),
                )),
        }
    }
}

/// One command of the leak test.
struct Flow {
    args: &'static [&'static str],
    keys: &'static Keys,
    prep: Prep,
    /// The exit code the flow must end with.
    code: i32,
}

const fn flow(args: &'static [&'static str], keys: &'static Keys, prep: Prep, code: i32) -> Flow {
    Flow {
        args,
        keys,
        prep,
        code,
    }
}

/// Every flow, in order (they share one data dir, as a user's runs would).
const FLOWS: &[Flow] = &[
    flow(
        &["decide", "BTCUSDT", "--engine", "llm"],
        &GOOD,
        Prep::ValidDecision,
        0,
    ),
    flow(
        &["--json", "decide", "BTCUSDT", "--engine", "llm"],
        &GOOD,
        Prep::ValidDecision,
        0,
    ),
    flow(
        &["decide", "BTCUSDT", "--engine", "llm"],
        &GOOD,
        Prep::MalformedDecision,
        0,
    ),
    flow(
        &["decide", "BTCUSDT", "--engine", "llm"],
        &GOOD,
        Prep::SlowDecision,
        0,
    ),
    flow(
        &["--json", "decide", "BTCUSDT", "--engine", "llm"],
        &WRONG,
        Prep::Nothing,
        0,
    ),
    flow(&["exchange", "balance"], &GOOD, Prep::Nothing, 0),
    flow(&["--json", "exchange", "balance"], &GOOD, Prep::Nothing, 0),
    flow(&["exchange", "balance"], &WRONG, Prep::Nothing, 1),
    flow(
        &["--json", "exchange", "balance"],
        &GOOD,
        Prep::MalformedBinance,
        1,
    ),
    flow(&["notify", "test"], &GOOD, Prep::Nothing, 0),
    flow(&["--json", "notify", "test"], &WRONG, Prep::Nothing, 1),
    flow(&["notify", "test"], &GOOD, Prep::MalformedResend, 1),
    flow(&["keys", "test"], &GOOD, Prep::Nothing, 0),
    flow(&["--json", "keys", "test"], &WRONG, Prep::Nothing, 1),
    flow(&["keys", "list"], &GOOD, Prep::Nothing, 0),
    flow(
        &["decisions", "--last", "10", "--costs"],
        &GOOD,
        Prep::Nothing,
        0,
    ),
    flow(
        &["execute", "BTCUSDT", "--engine", "llm"],
        &GOOD,
        Prep::BuyDecision,
        0,
    ),
    flow(
        &["--json", "execute", "BTCUSDT", "--engine", "llm"],
        &WRONG,
        Prep::Nothing,
        1,
    ),
    flow(&["config", "show"], &GOOD, Prep::Nothing, 0),
    flow(&["--json", "config", "show"], &GOOD, Prep::Nothing, 0),
];

fn trademind(data: &Path, config: &Path, keys: &Keys) -> Command {
    let mut cmd = Command::cargo_bin("trademind").expect("binary built");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    cmd.envs(keys.env());
    // Trace level: not even the most verbose log may carry a value.
    cmd.args(["--log-level", "trace", "--data-dir", data.to_str().unwrap()]);
    cmd.args(["--config", config.to_str().unwrap()]);
    cmd
}

/// Every byte under the data dir: the database, its -wal and -shm, the logs.
fn data_dir_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(data_dir_files(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out
}

fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The forms a secret could leak in: as is, hex (both cases), base64 (standard and URL-safe).
/// Base64 of a value embedded in a longer string shifts with its offset, so the encodings of
/// the value at the three offsets are searched without their ragged edges.
fn leak_forms(secret: &str) -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let hex = hex::encode(secret);
    let mut forms = vec![secret.to_string(), hex.to_uppercase(), hex];
    for alphabet in [STD, URL] {
        for shift in 0..3 {
            let mut bytes = vec![0u8; shift];
            bytes.extend(secret.as_bytes());
            let encoded = base64(&bytes, alphabet, false);
            // Drop the characters that depend on the neighbouring bytes.
            let start = if shift == 0 {
                0
            } else {
                (shift * 4).div_ceil(3) + 1
            };
            let end = encoded.len().saturating_sub(2);
            if end > start + 8 {
                forms.push(encoded[start..end].to_string());
            }
        }
    }
    forms
}

/// Every form is ASCII, so a lossy UTF-8 view of the bytes finds it exactly where the bytes
/// hold it; `str::contains` (the optimised std search) keeps scanning a database file fast.
fn find(haystack: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(haystack).contains(needle)
}

/// Panics naming the canary, its form and where it was found.
fn assert_no_canary(place: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for keys in [&GOOD, &WRONG] {
        for secret in keys.all() {
            for form in leak_forms(secret) {
                assert!(
                    !text.contains(form.as_str()),
                    "{place} contains the secret {secret:?} (as {form:?})"
                );
            }
        }
    }
}

#[test]
fn leak_forms_cover_plain_hex_and_base64_at_any_offset() {
    let forms = leak_forms("canary-secret-123");
    assert!(forms.contains(&"canary-secret-123".to_string()));
    assert!(forms.contains(&"63616e6172792d7365637265742d313233".to_string()));
    // base64("canary-secret-123") = Y2FuYXJ5LXNlY3JldC0xMjM=
    assert!(
        forms
            .iter()
            .any(|f| "Y2FuYXJ5LXNlY3JldC0xMjM".contains(f.as_str()) && f.len() > 12)
    );
    // The same value after one other byte: base64("xcanary-secret-123") = eGNhbmFyeS1zZWNyZXQtMTIz
    let embedded = "eGNhbmFyeS1zZWNyZXQtMTIz";
    assert!(
        forms
            .iter()
            .any(|f| embedded.contains(f.as_str()) && f.len() > 12)
    );
    let caught = std::panic::catch_unwind(|| assert_no_canary("probe", GOOD.xai.as_bytes()));
    assert!(caught.is_err(), "a plain canary must be found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_output_logs_database_or_config_over_full_flows() {
    let fakes = Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, fakes.config()).unwrap();
    let data = dir.path().join("data");
    let fakes = std::sync::Arc::new(fakes);
    let rig = fakes.clone();
    tokio::task::spawn_blocking(move || {
        trademind(&data, &config, &GOOD)
            .args(["connection", "add", CONNECTION, "--testnet"])
            .assert()
            .success();
        // `decide` decides on stored candles only (it never imports the bundled ones itself).
        let bundled = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/btcusdt_1h_2025-01_binance.csv"
        );
        trademind(&data, &config, &GOOD)
            .args([
                "data",
                "import",
                bundled,
                "--symbol",
                "BTCUSDT",
                "--interval",
                "1h",
            ])
            .assert()
            .success();
        for flow in FLOWS {
            flow.prep.apply(&rig);
            let out = trademind(&data, &config, flow.keys)
                .args(flow.args)
                .output()
                .unwrap();
            let shown = format!(
                "{:?} (exit {:?})\nstdout: {}\nstderr: {}",
                flow.args,
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(flow.code), "{shown}");
            if flow.args.contains(&"--json") {
                // A failing command prints its result, then `{"error": ...}`: a JSON stream.
                let values = serde_json::Deserializer::from_slice(&out.stdout)
                    .into_iter::<Value>()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {shown}"));
                assert!(!values.is_empty(), "{shown}");
            }
            assert_no_canary(&format!("stdout of {:?}", flow.args), &out.stdout);
            assert_no_canary(&format!("stderr of {:?}", flow.args), &out.stderr);
            // The -wal and -shm after every flow, as a later run may checkpoint them away; the
            // database and the logs keep what they were given, so they are searched at the end.
            for (path, bytes) in data_dir_files(&data) {
                if path.to_string_lossy().ends_with("-wal")
                    || path.to_string_lossy().ends_with("-shm")
                {
                    assert_no_canary(&format!("{} after {:?}", path.display(), flow.args), &bytes);
                }
            }
        }
        let files = data_dir_files(&data);
        for (path, bytes) in &files {
            assert_no_canary(&path.display().to_string(), bytes);
        }
        let names: Vec<String> = files
            .iter()
            .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert!(names.iter().any(|n| n == "trademind.db"), "{names:?}");
        assert!(names.iter().any(|n| n.contains("log")), "{names:?}");
        // The log recorded the flows (by entry name), so it was searched with content in it.
        let logs: Vec<u8> = files
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("log"))
            .flat_map(|(_, b)| b.clone())
            .collect();
        assert!(
            find(&logs, "grok:default"),
            "the log file holds no key check"
        );
    })
    .await
    .unwrap();

    // The secrets were used: every fake accepted requests made with the good keys.
    assert!(fakes.xai.inference_calls() >= 3);
    assert!(!fakes.tavily.requests().is_empty());
    assert!(fakes.binance.requests("GET /api/v3/account") >= 3);
    assert_eq!(
        fakes.binance.requests("POST /api/v3/order"),
        1,
        "execute bought"
    );
    assert_eq!(
        fakes.binance.requests("POST /api/v3/orderList/oco"),
        1,
        "and protected it"
    );
    assert_eq!(
        fakes.resend.sent().len(),
        2,
        "the test e-mail and execute's trade alert went out"
    );
}

/// `keys test` against the fakes: each key ok with the right value, rejected with a wrong one,
/// unreachable when nothing listens; exit code 1 if any key fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_test_reports_ok_rejected_and_unreachable_per_service() {
    let fakes = Fakes::start().await;
    fakes.resend.set_sending_only(true);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, fakes.config()).unwrap();
    // Nothing listens on a port that was just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let unreachable_config = dir.path().join("unreachable.toml");
    let text = fakes.config();
    let text = [
        fakes.binance.base_url(),
        fakes.xai.base_url(),
        fakes.tavily.base_url(),
        fakes.resend.url(),
    ]
    .iter()
    .fold(text, |t, url| {
        t.replace(&format!("\"{url}\""), &format!("\"{dead}\""))
    });
    std::fs::write(&unreachable_config, text).unwrap();
    let data = dir.path().join("data");
    let statuses = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["entry"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    };
    let (good, wrong, unreachable, human) = tokio::task::spawn_blocking(move || {
        trademind(&data, &config, &GOOD)
            .args(["connection", "add", CONNECTION, "--testnet"])
            .assert()
            .success();
        let run = |cfg: &Path, keys: &Keys, code: i32| -> Value {
            let out = trademind(&data, cfg, keys)
                .args(["--json", "keys", "test"])
                .assert()
                .code(code)
                .get_output()
                .stdout
                .clone();
            // One document: the result, or when a key failed `{"error": ..., "details": result}`.
            let documents: Vec<Value> = serde_json::Deserializer::from_slice(&out)
                .into_iter::<Value>()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(documents.len(), 1, "{}", String::from_utf8_lossy(&out));
            let document = documents.into_iter().next().unwrap();
            if code == 0 {
                document
            } else {
                assert!(
                    document["error"]
                        .as_str()
                        .unwrap()
                        .contains("keys cannot be used")
                );
                document["details"].clone()
            }
        };
        let human = trademind(&data, &config, &WRONG)
            .args(["keys", "test"])
            .assert()
            .code(1)
            .get_output()
            .clone();
        (
            run(&config, &GOOD, 0),
            run(&config, &WRONG, 1),
            run(&unreachable_config, &GOOD, 1),
            human,
        )
    })
    .await
    .unwrap();
    let entries = |status: &str| -> Vec<(String, String)> {
        [
            "binance:leak",
            "grok:default",
            "resend:default",
            "tavily:default",
        ]
        .iter()
        .map(|e| (e.to_string(), status.to_string()))
        .collect()
    };
    let mut got = statuses(&good);
    got.sort();
    assert_eq!(got, entries("ok"), "{good}");
    let mut got = statuses(&wrong);
    got.sort();
    assert_eq!(got, entries("rejected"), "{wrong}");
    let mut got = statuses(&unreachable);
    got.sort();
    assert_eq!(got, entries("unreachable"), "{unreachable}");

    let detail = |v: &Value, entry: &str| -> String {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["entry"] == entry)
            .map(|r| format!("{} {}", r["endpoint"], r["detail"]))
            .unwrap()
    };
    assert!(
        detail(&good, "binance:leak").contains("/api/v3/account"),
        "{good}"
    );
    assert!(detail(&good, "grok:default").contains(&format!("model {MODEL} is available")));
    assert!(detail(&good, "resend:default").contains("sending access only"));
    assert!(detail(&wrong, "binance:leak").contains("-2015"), "{wrong}");
    assert!(
        detail(&wrong, "grok:default").contains("HTTP 401"),
        "{wrong}"
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("rejected     grok:default (environment)"),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&human.stderr);
    assert!(stderr.contains("4 of 4 keys cannot be used"), "{stderr}");
    // The checks used the keys (the fakes saw them) and printed none of them.
    assert!(fakes.binance.requests("GET /api/v3/account") >= 3);
    for v in [&good, &wrong, &unreachable] {
        assert_no_canary("keys test --json", v.to_string().as_bytes());
    }
    assert_no_canary("keys test", &human.stdout);
}

/// Collects every trace line of this test process (nextest runs each test in its own process).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The signed order path (executor → Binance client → fake), in process until `trademind
/// execute` exists: an accepted order, a wrong key, a malformed answer and a timeout after the
/// exchange accepted. Every trace event at TRACE level, every error and the database files are
/// searched for the key pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_orders_leave_no_secret_in_traces_errors_or_the_database() {
    use crate::exchange_common::{ORDER_TIME, executor_config, market};
    use rust_decimal_macros::dec;
    use std::sync::{Arc, Mutex};
    use trademind::domain::trading::order::Side;
    use trademind::services::exchange::binance::{BinanceClient, BinanceConfig, Credentials};
    use trademind::services::exchange::executor::OrderExecutor;
    use trademind::store::Store;

    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();
    let fake = FakeBinance::start(FakeConfig {
        api_key: GOOD.binance_key.into(),
        api_secret: GOOD.binance_secret.into(),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(
        Store::open(&dir.path().join("trademind.db")).unwrap(),
    ));
    let config = BinanceConfig {
        base_url: Some(fake.base_url()),
        request_timeout_ms: 300,
        ..BinanceConfig::default()
    };
    let mut outcomes = Vec::new();
    for (i, keys) in [&GOOD, &WRONG, &GOOD, &GOOD].into_iter().enumerate() {
        match i {
            2 => fake.faults(|f| f.malformed_next = 1),
            3 => fake.faults(|f| {
                f.orders_slow_after_accept = 1;
                f.accept_delay = Duration::from_millis(600);
            }),
            _ => {}
        }
        let creds = Credentials::new(keys.binance_key, keys.binance_secret);
        let client = BinanceClient::new(config.clone(), Some(creds)).unwrap();
        let executor =
            OrderExecutor::new(Arc::new(client), store.clone(), "leak", executor_config());
        let placed = executor
            .place(
                &market(&format!("leak-{i}"), Side::Buy, dec!(0.001)),
                ORDER_TIME,
            )
            .await;
        outcomes.push(format!("{placed:?}"));
    }
    assert!(outcomes[0].starts_with("Ok("), "{outcomes:?}");
    assert!(outcomes[1].contains("BadApiKey"), "{outcomes:?}");
    assert!(fake.requests("POST /api/v3/order") >= 2, "{outcomes:?}");
    drop(store);

    assert_no_canary("order results and errors", outcomes.join("\n").as_bytes());
    let traced = logs.0.lock().unwrap().clone();
    assert!(
        find(&traced, "TRACE") || find(&traced, "DEBUG"),
        "nothing was traced"
    );
    assert_no_canary("trace output", &traced);
    let files = data_dir_files(dir.path());
    assert!(!files.is_empty());
    for (path, bytes) in &files {
        assert_no_canary(&path.display().to_string(), bytes);
    }
}

/// A server (a proxy, a local OpenAI-compatible one) that quotes the key it was sent in its
/// error body: the clients blank the key before the body becomes an error message.
#[tokio::test]
async fn an_error_body_that_echoes_the_key_is_redacted() {
    use std::sync::Arc;
    use trademind::services::llm::TavilyConfig;
    use trademind::services::llm::{ApiKey, ChatMessage, LlmClient, LlmConfig, TavilyClient};
    use trademind::services::notification::ResendClient;
    use trademind::testkit::http::{Handler, Response, serve};

    let handler: Handler = Arc::new(|req| {
        let sent = req.header("authorization").unwrap_or_default().to_string();
        Response::json(
            401,
            &json!({"error": format!("invalid key: {sent}"), "name": "validation_error",
                    "message": format!("you sent {sent}"), "statusCode": 422}),
        )
    });
    let server = serve(handler).await.unwrap();
    let llm = LlmClient::new(
        LlmConfig {
            base_url: format!("{}/v1", server.url()),
            ..LlmConfig::default()
        },
        ApiKey::new(GOOD.xai),
    )
    .unwrap();
    let tavily = TavilyClient::new(
        TavilyConfig {
            base_url: server.url(),
            ..TavilyConfig::default()
        },
        ApiKey::new(GOOD.tavily),
    )
    .unwrap();
    let errors = [
        llm.list_models().await.unwrap_err().to_string(),
        llm.complete(&[ChatMessage::user("hi")], &json!({}))
            .await
            .unwrap_err()
            .to_string(),
        tavily
            .search_news("BTC", None)
            .await
            .unwrap_err()
            .to_string(),
        tavily.usage().await.unwrap_err().to_string(),
    ];
    for text in &errors {
        assert!(text.contains("***"), "the echo was not seen: {text}");
        assert_no_canary("an error built from an echoing server", text.as_bytes());
    }
    // Resend's 422 message is quoted in its error; the key in it is blanked as well.
    let echo_422: Handler = Arc::new(|req| {
        let sent = req.header("authorization").unwrap_or_default().to_string();
        Response::json(
            422,
            &json!({"statusCode": 422, "name": "validation_error", "message": format!("you sent {sent}")}),
        )
    });
    let server = serve(echo_422).await.unwrap();
    let resend = ResendClient::new(&server.url(), GOOD.resend, Duration::from_secs(2)).unwrap();
    let to = vec!["me@example.com".to_string()];
    let text = resend
        .send("a <a@example.com>", &to, "s", "t", "test/1")
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("you sent Bearer ***"), "{text}");
    assert_no_canary("a Resend error", text.as_bytes());
}
