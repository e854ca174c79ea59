//! `trademind backtest` as a user meets it: JSON output, the HTML report, stored runs, sweeps and
//! usage errors.

use assert_cmd::Command;
use std::path::PathBuf;

fn trademind(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("trademind").expect("binary built");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    cmd.arg("--data-dir").arg(data_dir);
    cmd
}

fn binance_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/btcusdt_1h_2025-01_binance.csv")
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

#[test]
fn json_run_prints_metrics_and_trades_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(
        trademind(dir.path())
            .args([
                "--json",
                "backtest",
                "--strategy",
                "sma-cross",
                "--symbol",
                "BTCUSDT",
            ])
            .args([
                "--interval",
                "1h",
                "--param",
                "fast=10",
                "--param",
                "slow=30",
            ])
            .args(["--fill", "next-open", "--fee-bps", "10", "--data"])
            .arg(binance_csv()),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["metrics"]["trades"], 17);
    assert!((v["metrics"]["max_drawdown_pct"].as_f64().unwrap() - 15.8479).abs() < 1e-4);
    let eq: f64 = v["final_equity"].as_str().unwrap().parse().unwrap();
    assert!((eq / 91_639.086_3 - 1.0).abs() < 1e-6);
    assert_eq!(v["trades"].as_array().unwrap().len(), 17);
    assert!(v["trades"][0]["entry_price"].is_string());
    let id = v["id"].as_i64().unwrap();

    let list: serde_json::Value = serde_json::from_str(&stdout(
        trademind(dir.path()).args(["--json", "backtest", "list"]),
    ))
    .unwrap();
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["status"], "completed");

    let show: serde_json::Value = serde_json::from_str(&stdout(trademind(dir.path()).args([
        "--json",
        "backtest",
        "show",
        &id.to_string(),
    ])))
    .unwrap();
    assert_eq!(show["trades"].as_array().unwrap().len(), 17);
    assert_eq!(show["equity_curve"].as_array().unwrap().len(), 744);

    trademind(dir.path())
        .args(["backtest", "delete", &id.to_string()])
        .assert()
        .success();
    trademind(dir.path())
        .args(["backtest", "show", &id.to_string()])
        .assert()
        .code(2);
}

#[test]
fn report_is_one_html_file_with_the_equity_curve_and_trade_list() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let out = stdout(
        trademind(dir.path())
            .args(["backtest", "run", "--no-save", "--fill", "close", "--data"])
            .arg(binance_csv())
            .arg("--report")
            .arg(&report),
    );
    assert!(out.contains("Max drawdown"), "{out}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("id=\"equity-curve\""));
    assert!(html.contains("id=\"trades\""));
    // three inline charts, no external resources
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(!html.contains("<script"));
    assert!(html.contains("<polyline") || html.contains("<path"));
    // 17 trades, one row each, plus the header row
    let trades_table = &html[html.find("id=\"trades\"").unwrap()..];
    assert_eq!(trades_table.matches("<tr>").count(), 18);
}

#[test]
fn sweep_ranks_every_combination() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(
        trademind(dir.path())
            .args(["--json", "backtest", "--data"])
            .arg(binance_csv())
            .args(["--sweep", "fast=5..15:5", "--sweep", "slow=20..40:10"])
            .args(["--rank-by", "total_return", "--threads", "2"]),
    );
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(runs.len(), 9);
    let returns: Vec<f64> = runs
        .iter()
        .map(|r| r["metrics"]["total_return_pct"].as_f64().unwrap())
        .collect();
    assert!(returns.windows(2).all(|w| w[0] >= w[1]), "{returns:?}");
    // fast=10 slow=30 is the parity run
    let parity = runs
        .iter()
        .find(|r| r["params"] == serde_json::json!([["fast", 10.0], ["slow", 30.0]]))
        .unwrap();
    assert_eq!(parity["metrics"]["trades"], 17);
}

#[test]
fn bad_parameters_and_risk_sizing_without_a_stop_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--param", "fats=3"],
        vec!["--strategy", "moon"],
        vec!["--sizing", "fixed"],
        vec!["--fill", "sometimes"],
        vec!["--from", "yesterday"],
    ] {
        trademind(dir.path())
            .args(["backtest", "--no-save", "--data"])
            .arg(binance_csv())
            .args(&args)
            .assert()
            .code(2);
    }
    // with a stop, fixed-risk sizing runs
    trademind(dir.path())
        .args([
            "backtest",
            "--no-save",
            "--sizing",
            "fixed",
            "--param",
            "stop_pct=2",
        ])
        .arg("--data")
        .arg(binance_csv())
        .assert()
        .success();
}
