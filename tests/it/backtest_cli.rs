//! `trademind backtest` as a user meets it: JSON output, the HTML report, stored runs, sweeps and
//! usage errors.

use assert_cmd::Command;
use std::path::PathBuf;

/// The binary on a data dir, with no `TRADEMIND_*` variable or user config of the caller's.
pub(crate) fn trademind(data_dir: &std::path::Path) -> Command {
    crate::hermetic::trademind_at(data_dir)
}

/// January 2025's BTCUSDT hourly candles as Binance serves them.
pub(crate) fn binance_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/btcusdt_1h_2025-01_binance.csv")
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

fn show_json(dir: &std::path::Path, id: i64) -> serde_json::Value {
    let out = stdout(trademind(dir).args(["--json", "backtest", "show", &id.to_string()]));
    serde_json::from_str(&out).expect("valid JSON")
}

/// `trademind --json backtest --data <the January 2025 CSV> ARGS...`, parsed.
fn json_backtest<T: serde::de::DeserializeOwned>(dir: &std::path::Path, args: &[&str]) -> T {
    let out = stdout(
        trademind(dir)
            .args(["--json", "backtest", "--data"])
            .arg(binance_csv())
            .args(args),
    );
    serde_json::from_str(&out).expect("valid JSON")
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

    let show = show_json(dir.path(), id);
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
    let runs: Vec<serde_json::Value> = json_backtest(
        dir.path(),
        &[
            "--sweep",
            "fast=5..15:5",
            "--sweep",
            "slow=20..40:10",
            "--rank-by",
            "total_return",
            "--threads",
            "2",
        ],
    );
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

#[test]
fn walk_forward_reports_out_of_sample_windows_and_is_stored_as_one_run() {
    let dir = tempfile::tempdir().unwrap();
    // January 2025, 744 hourly candles: tests start on days 10, 15, 20 and 25 (the next would
    // end on day 35, after the data).
    let v: serde_json::Value = json_backtest(
        dir.path(),
        &[
            "--sweep",
            "fast=5..10:5",
            "--sweep",
            "slow=20..30:10",
            "--rank",
            "total_return",
            "--walk-forward",
            "train=10d,test=5d",
        ],
    );
    let windows = v["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 4);
    assert_eq!(v["planned_windows"], 4);
    assert_eq!(v["status"], "completed");
    let jan = |day: i64, hour: i64| 1_735_689_600_000 + ((day - 1) * 24 + hour) * 3_600_000;
    assert_eq!(windows[0]["train_first"], jan(1, 0));
    assert_eq!(windows[0]["train_last"], jan(10, 23));
    assert_eq!(windows[0]["test_first"], jan(11, 0));
    assert_eq!(windows[0]["test_last"], jan(15, 23));
    assert_eq!(windows[3]["test_last"], jan(30, 23));
    for w in windows {
        assert_eq!(w["train_candles"], 240);
        assert_eq!(w["test_candles"], 120);
        assert!(w["params"].as_array().unwrap().len() == 2);
    }
    // The stitched metrics cover only the 4 x 120 out-of-sample candles.
    assert_eq!(v["metrics"]["candles"], 480);
    assert_eq!(v["metrics"]["start"], jan(11, 0));
    let id = v["id"].as_i64().unwrap();

    let show = show_json(dir.path(), id);
    assert_eq!(show["status"], "completed");
    assert_eq!(show["windows"].as_array().unwrap().len(), 4);
    assert_eq!(show["equity_curve"].as_array().unwrap().len(), 480);
    assert_eq!(show["parameters"]["walk_forward"], "train=10d,test=5d");
    let text = stdout(trademind(dir.path()).args(["backtest", "show", &id.to_string()]));
    assert!(text.contains("walk-forward windows"), "{text}");

    // Without a grid there is nothing to re-optimise.
    trademind(dir.path())
        .args(["backtest", "--no-save", "--data"])
        .arg(binance_csv())
        .args(["--walk-forward", "train=10d,test=5d"])
        .assert()
        .code(2);
    trademind(dir.path())
        .args(["backtest", "--no-save", "--data"])
        .arg(binance_csv())
        .args([
            "--sweep",
            "fast=5..10:5",
            "--walk-forward",
            "train=40d,test=5d",
        ])
        .assert()
        .code(2);
}

/// `--param post_only=true`, as the docs write it, runs a post-only limit entry: every entry pays
/// the 2 bps maker fee, not the 10 bps taker fee a market entry pays. `yes` is a usage error.
#[test]
fn post_only_true_on_the_command_line_runs_a_post_only_limit_entry() {
    let dir = tempfile::tempdir().unwrap();
    let v: serde_json::Value = json_backtest(
        dir.path(),
        &[
            "--strategy",
            "sma-cross",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1h",
            "--no-save",
            "--fee-bps",
            "10",
            "--maker-fee-bps",
            "2",
            "--param",
            "entry_limit_bps=20",
            "--param",
            "post_only=true",
            "--param",
            "entry_timeout_candles=3",
        ],
    );
    let trades = v["trades"].as_array().unwrap();
    assert!(!trades.is_empty(), "{v}");
    for t in trades {
        let dec = |k: &str| -> rust_decimal::Decimal { t[k].as_str().unwrap().parse().unwrap() };
        let maker_fee = dec("entry_price") * dec("qty") * rust_decimal_macros::dec!(0.0002);
        assert_eq!(dec("entry_fee"), maker_fee, "{t}");
    }
    let refused = trademind(dir.path())
        .args(["backtest", "--strategy", "sma-cross", "--data"])
        .arg(binance_csv())
        .args(["--param", "entry_limit_bps=20", "--param", "post_only=yes"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("is not a number"), "{stderr}");
}
