//! `trademind exchange info|balance|ping` against the paper exchange and the fake Binance.

use crate::exchange_common::fake;
use assert_cmd::Command;

pub(crate) fn trademind(data_dir: &std::path::Path) -> Command {
    crate::hermetic::trademind_at(data_dir)
}

fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn paper_exchange_is_the_default_for_info_balance_and_ping() {
    let dir = tempfile::tempdir().unwrap();
    let info = json_of(trademind(dir.path()).args(["--json", "exchange", "info", "BTCUSDT"]));
    assert_eq!(info["connection"], "paper");
    assert_eq!(info["filters"]["tick_size"], "0.01");
    assert_eq!(info["filters"]["min_notional"], "5");
    let balances = json_of(trademind(dir.path()).args(["--json", "exchange", "balance"]));
    assert_eq!(balances[0]["asset"], "USDT");
    assert_eq!(balances[0]["free"], "10000");
    let ping = json_of(trademind(dir.path()).args(["--json", "exchange", "ping"]));
    assert_eq!(ping["ping"]["latency_ms"], 0);
    trademind(dir.path())
        .args(["exchange", "info", "NOPEUSDT"])
        .assert()
        .failure();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_connection_reports_filters_balances_and_ping_from_the_fake() {
    let fake = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[trading]\nconnection = \"fake\"\n\n[exchange.binance]\nbase_url = \"{}\"\n",
            fake.base_url()
        ),
    )
    .unwrap();
    let data = dir.path().to_path_buf();
    let cfg = config.to_str().unwrap().to_string();
    let (info, balances, ping, no_key) = tokio::task::spawn_blocking(move || {
        trademind(&data)
            .args(["--config", &cfg, "connection", "add", "fake", "--testnet"])
            .assert()
            .success();
        let info = json_of(
            trademind(&data).args(["--config", &cfg, "--json", "exchange", "info", "BTCUSDT"]),
        );
        let balances = json_of(
            trademind(&data)
                // the named connection "fake" reads its own variables (or its keyring entry)
                .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
                .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
                .args(["--config", &cfg, "--json", "exchange", "balance"]),
        );
        let ping = json_of(trademind(&data).args(["--config", &cfg, "--json", "exchange", "ping"]));
        let no_key = trademind(&data)
            .args(["--config", &cfg, "exchange", "balance"])
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        (
            info,
            balances,
            ping,
            String::from_utf8_lossy(&no_key).into_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(info["filters"]["step_size"], "0.00001");
    assert_eq!(info["filters"]["max_price"], "1000000");
    let usdt = balances
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "USDT")
        .unwrap();
    assert_eq!(usdt["free"], "10000");
    assert!(ping["ping"]["used_weight"].as_u64().unwrap() >= 2, "{ping}");
    assert!(ping["ping"]["clock_offset_ms"].as_i64().unwrap().abs() < 1000);
    assert!(
        no_key.contains("keys set binance --connection fake"),
        "{no_key}"
    );
    assert!(
        no_key.contains("TRADEMIND_BINANCE_FAKE_API_KEY"),
        "{no_key}"
    );
    assert!(fake.requests("GET /api/v3/account") >= 1);
}
