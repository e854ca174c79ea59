//! The command line as a user meets it: help, exit codes, config errors, the database commands.

use assert_cmd::Command;
use std::fs;

fn trademind() -> Command {
    Command::from_std(crate::hermetic::hermetic())
}

#[test]
fn help_lists_modes_subcommands_and_exit_codes() {
    let out = trademind()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for needle in [
        "--daemon",
        "config",
        "db",
        "completions",
        "Exit codes",
        "2  bad usage",
    ] {
        assert!(text.contains(needle), "help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn db_migrate_creates_every_table_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    trademind()
        .args(["--data-dir", d, "db", "migrate"])
        .assert()
        .success();
    let db = dir.path().join("trademind.db");
    let before = fs::read(&db).unwrap();
    let out = trademind()
        .args(["--data-dir", d, "--json", "db", "migrate"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["from_version"], report["to_version"]);
    let out = trademind()
        .args(["--data-dir", d, "--json", "db", "status"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let status: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(status["up_to_date"], true);
    assert_eq!(status["journal_mode"], "wal");
    let tables: Vec<String> = serde_json::from_value(status["tables"].clone()).unwrap();
    for t in trademind::store::TABLES {
        assert!(tables.iter().any(|x| x == t), "missing {t}");
    }
    // a second migrate changed no schema (the file may only differ by WAL bookkeeping)
    assert_eq!(
        status["schema_version"].as_u64().unwrap() as usize,
        trademind::store::latest_version()
    );
    assert!(!before.is_empty());
}

#[test]
fn db_status_lists_each_candle_series_and_whether_its_side_file_is_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let csv = dir.path().join("btc.csv");
    let mut text = String::from("open_time,open,high,low,close,volume\n");
    for i in 0..120i64 {
        let close = 100 + (i * 7) % 13;
        text.push_str(&format!(
            "{},{close},{},{},{close},1.5\n",
            1_700_000_000_000 + i * 60_000,
            close + 1,
            close - 1
        ));
    }
    fs::write(&csv, text).unwrap();
    let run = |args: &[&str]| {
        let out = trademind()
            .args(["--data-dir", d])
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    let import = |csv: &std::path::Path| {
        run(&[
            "data",
            "import",
            csv.to_str().unwrap(),
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
        ])
    };
    let backtest = || {
        run(&[
            "backtest",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
            "--strategy",
            "sma-cross",
            "--no-save",
            "--json",
        ])
    };
    import(&csv);
    let human = run(&["db", "status"]);
    assert!(
        human.contains("BTCUSDT 1m: 120 candles, 2023-11-14 22:13 to 2023-11-15 00:12 UTC"),
        "{human}"
    );
    assert!(human.contains("not written yet"), "{human}");
    backtest();
    let status: serde_json::Value =
        serde_json::from_str(&run(&["--json", "db", "status"])).unwrap();
    let series = &status["candle_series"][0];
    assert_eq!(series["candles"], 120, "{status}");
    assert_eq!(series["side_state"]["state"], "fresh", "{status}");
    assert!(
        series["side_file"]
            .as_str()
            .unwrap()
            .ends_with("-BTCUSDT-1m.cols"),
        "{status}"
    );
    assert!(run(&["db", "status"]).contains(": fresh ("));

    // Newer candles (the live sink's, say): the file is a prefix of the series; backtests read
    // them after it, and rewrite it once they are an eighth of it.
    let import_later = |range: std::ops::Range<i64>| {
        let later = dir.path().join(format!("later-{}.csv", range.start));
        let mut text = String::from("open_time,open,high,low,close,volume\n");
        for i in range {
            text.push_str(&format!(
                "{},100,101,99,100,1.5\n",
                1_700_000_000_000 + i * 60_000
            ));
        }
        fs::write(&later, text).unwrap();
        import(&later)
    };
    import_later(120..123);
    let status: serde_json::Value =
        serde_json::from_str(&run(&["--json", "db", "status"])).unwrap();
    let state = &status["candle_series"][0]["side_state"];
    assert_eq!(state["state"], "behind", "{status}");
    assert_eq!(state["new_candles"], 3, "{status}");
    let human = run(&["db", "status"]);
    assert!(
        human.contains("behind by 3 candles; backtests read them from the database"),
        "{human}"
    );
    backtest();
    let status: serde_json::Value =
        serde_json::from_str(&run(&["--json", "db", "status"])).unwrap();
    assert_eq!(status["candle_series"][0]["candles"], 123, "{status}");
    assert_eq!(
        status["candle_series"][0]["side_state"]["new_candles"], 3,
        "three candles are read again, the file is not rewritten for them: {status}"
    );
    // Twelve more: 15 after the file's 120 rows, an eighth of them: the next backtest writes it.
    import_later(123..135);
    backtest();
    let status: serde_json::Value =
        serde_json::from_str(&run(&["--json", "db", "status"])).unwrap();
    assert_eq!(status["candle_series"][0]["candles"], 135, "{status}");
    assert_eq!(
        status["candle_series"][0]["side_state"]["state"], "fresh",
        "{status}"
    );
}

#[cfg(unix)]
#[test]
fn data_dir_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    trademind()
        .args(["--data-dir", data.to_str().unwrap(), "db", "migrate"])
        .assert()
        .success();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("trademind.db")), 0o600);
    for log in fs::read_dir(data.join("logs")).unwrap() {
        assert_eq!(mode(&log.unwrap().path()), 0o600);
    }
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    fs::write(
        &cfg,
        "[trading]\ninterval = \"1h\"\nsymbolz = [\"BTCUSDT\"]\n",
    )
    .unwrap();
    let out = trademind()
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "config",
            "check",
        ])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(err.contains("bad.toml:3:1"), "{err}");
    assert!(err.contains("trading.symbolz"), "{err}");
}

#[test]
fn wrong_type_exits_2_and_valid_file_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[scheduler]\nmonitor_orders_seconds = \"often\"\n").unwrap();
    let out = trademind()
        .args([
            "--data-dir",
            d,
            "--config",
            bad.to_str().unwrap(),
            "config",
            "check",
        ])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(
        err.contains("bad.toml:2:") && err.contains("scheduler.monitor_orders_seconds"),
        "{err}"
    );

    let good = dir.path().join("good.toml");
    fs::write(&good, "[scheduler]\nmonitor_orders_seconds = 20\n").unwrap();
    trademind()
        .args([
            "--data-dir",
            d,
            "--config",
            good.to_str().unwrap(),
            "config",
            "check",
        ])
        .assert()
        .success();
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let dir = tempfile::tempdir().unwrap();
    trademind()
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--config",
            example,
            "config",
            "check",
        ])
        .assert()
        .success();
}

#[test]
fn config_show_json_reports_origins() {
    let dir = tempfile::tempdir().unwrap();
    let out = trademind()
        .env("TRADEMIND_SCHEDULER__MONITOR_ORDERS_SECONDS", "12")
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--json",
            "config",
            "show",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let row = rows
        .iter()
        .find(|r| r["key"] == "scheduler.monitor_orders_seconds")
        .unwrap();
    assert_eq!(row["value"], "12");
    assert_eq!(row["origin"]["kind"], "env");
    let row = rows
        .iter()
        .find(|r| r["key"] == "general.data_dir")
        .unwrap();
    assert_eq!(row["origin"]["kind"], "flag");
}

#[test]
fn bad_usage_exits_2() {
    trademind().arg("no-such-command").assert().code(2);
    trademind()
        .args(["--daemon", "db", "status"])
        .assert()
        .code(2);
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = trademind()
            .args(["completions", shell])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert!(String::from_utf8(out).unwrap().contains("trademind"));
    }
}

#[test]
fn tui_without_a_terminal_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = trademind()
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8(out).unwrap().contains("needs a terminal"));
}

#[test]
fn status_reports_positions_breaker_and_jobs_from_another_process() {
    use rust_decimal_macros::dec;
    use trademind::app::scheduler::JobRun;
    use trademind::domain::trading::{Position, PositionSide};
    use trademind::domain::{Price, Qty, Quote, Symbol};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = trademind::store::Store::open(&dir.path().join("trademind.db")).unwrap();
        let p = Position {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: PositionSide::Long,
            quantity: Qty(dec!(0.015)),
            entry_price: Price(dec!(94000.5)),
            stop_loss: Some(Price(dec!(92000))),
            take_profit: Some(Price(dec!(99000))),
            realized_pnl: Quote(dec!(-1.41)),
            fees_paid: Quote(dec!(1.41)),
            opened_at: 1_000,
            closed_at: None,
        };
        trademind::store::positions::insert(store.conn(), "paper", None, &p, 1_000).unwrap();
        let run = JobRun {
            job: "monitor_orders".into(),
            started_at: 2_000,
            finished_at: 2_050,
            error: Some("timeout".into()),
        };
        trademind::store::jobs::insert_run(store.conn(), &run).unwrap();
    }
    let d = dir.path().to_str().unwrap();
    trademind()
        .args(["--data-dir", d, "risk", "kill"])
        .assert()
        .success();
    let out = trademind()
        .args(["--data-dir", d, "--json", "status"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let s: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(s["mode"], "PAPER");
    assert_eq!(s["breaker"]["state"], "halted");
    assert_eq!(s["positions"][0]["position"]["entry_price"], "94000.5");
    assert_eq!(s["positions"][0]["position"]["stop_loss"], "92000");
    assert_eq!(s["jobs"][0]["job"], "monitor_orders");
    assert_eq!(s["jobs"][0]["last_error"][1], "timeout");
    let text = trademind()
        .args(["--data-dir", d, "status"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("halted") && text.contains("BTCUSDT") && text.contains("last error timeout"),
        "{text}"
    );
}

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

#[test]
fn status_on_a_fresh_database_says_never_tripped_not_active_since_1970() {
    // Symptom 9: "breaker: active since 1970-01-01" on a database where nothing ever tripped.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let text = stdout_of(trademind().args(["--data-dir", d, "status"]));
    assert!(text.contains("breaker:    never tripped"), "{text}");
    assert!(!text.contains("1970"), "{text}");
    assert!(text.contains("trading:    active"), "{text}");
}

#[test]
fn status_shows_the_trading_state_while_paused_not_just_the_breaker() {
    // Symptom 9: "breaker: active" while trading was paused; the state says who and why.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    trademind()
        .args(["--data-dir", d, "pause", "--reason", "fomc"])
        .assert()
        .success();
    let text = stdout_of(trademind().args(["--data-dir", d, "status"]));
    assert!(
        text.contains("trading:    paused by cli (fomc) since"),
        "{text}"
    );
    let json = stdout_of(trademind().args(["--data-dir", d, "--json", "status"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["trading"]["state"], "paused");
    assert_eq!(v["trading"]["why"], "fomc");
    trademind()
        .args(["--data-dir", d, "resume"])
        .assert()
        .success();
    let text = stdout_of(trademind().args(["--data-dir", d, "status"]));
    assert!(text.contains("trading:    active"), "{text}");
}

#[test]
fn status_on_a_testnet_connection_says_testnet_not_paper() {
    // Issue #24 item 12: `status` said PAPER on a testnet connection.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    trademind()
        .args(["--data-dir", d, "connection", "add", "tn", "--testnet"])
        .assert()
        .success();
    let text = stdout_of(
        trademind()
            .env("TRADEMIND_TRADING__CONNECTION", "tn")
            .args(["--data-dir", d, "status"]),
    );
    assert!(
        text.starts_with("mode:       TESTNET (connection tn)"),
        "{text}"
    );
}

#[test]
fn strategy_list_says_enabled_and_that_no_daemon_is_running() {
    // Symptom 9: `strategy list` said "running" with no daemon up.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    trademind()
        .args([
            "--data-dir",
            d,
            "strategy",
            "add",
            "trend",
            "--symbol",
            "BTCUSDT",
        ])
        .assert()
        .success();
    let text = stdout_of(trademind().args(["--data-dir", d, "strategy", "list"]));
    assert!(text.contains("no daemon running"), "{text}");
    let row = text.lines().find(|l| l.starts_with("trend")).unwrap();
    assert!(row.contains("abled") && !row.contains("running"), "{text}");
}

#[test]
fn connection_add_follows_the_configured_environment_and_the_listing_says_which() {
    // Issue #23: `connection add NAME` made a production connection although
    // exchange.binance.environment defaults to "testnet".
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let add = |extra: &[&str], env: Option<&str>| {
        let mut cmd = trademind();
        if let Some(e) = env {
            cmd.env("TRADEMIND_EXCHANGE__BINANCE__ENVIRONMENT", e);
        }
        cmd.args(["--data-dir", d, "connection", "add"]).args(extra);
        stdout_of(&mut cmd)
    };
    let text = add(&["plain"], None);
    assert!(text.contains("(binance, testnet)"), "{text}");
    add(&["prod-default"], Some("production"));
    add(&["flagged", "--production"], None);
    add(&["tn", "--testnet"], Some("production"));
    trademind()
        .args(["--data-dir", d, "connection", "add", "x", "--testnet"])
        .arg("--production")
        .assert()
        .code(2);
    let text = stdout_of(trademind().args(["--data-dir", d, "connection", "list"]));
    let env_of = |name: &str| {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed: {text}"));
        line.split_whitespace().nth(2).unwrap().to_string()
    };
    assert_eq!(env_of("plain"), "testnet", "{text}");
    assert_eq!(env_of("prod-default"), "production", "{text}");
    assert_eq!(env_of("flagged"), "production", "{text}");
    assert_eq!(env_of("tn"), "testnet", "{text}");
    let json = stdout_of(trademind().args(["--data-dir", d, "--json", "connection", "list"]));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["name"], "flagged");
    assert_eq!(rows[0]["environment"], "production");
}

#[test]
fn without_a_session_keyring_only_a_command_that_needs_a_key_mentions_the_keyring() {
    // Issue #23: every command, the demo included, warned about the keyring on a server without
    // a session keyring. Run in a plain process (`TRADEMIND_KEYUTILS_TEST=expect-unavailable
    // cargo nextest run keyring`): under `keyctl session -` the keyring works and there is
    // nothing to warn about.
    if std::env::var("TRADEMIND_KEYUTILS_TEST").as_deref() != Ok("expect-unavailable") {
        eprintln!(
            "skipping: set TRADEMIND_KEYUTILS_TEST=expect-unavailable in a process without a session keyring"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = trademind()
        .args(["--data-dir", d, "demo", "--daemon", "--candles", "30"])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(!err.to_lowercase().contains("keyring"), "{err}");
    trademind()
        .args(["--data-dir", d, "connection", "add", "bn", "--testnet"])
        .assert()
        .success();
    let out = trademind()
        .args(["--data-dir", d, "exchange", "balance", "--connection", "bn"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("keys set binance --connection bn"), "{err}");
    assert!(err.contains("keyctl session"), "{err}");
}

#[test]
fn bench_indicators_times_the_full_set_over_every_candle_of_the_file() {
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/btcusdt_1h_2025-01_binance.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = trademind()
        .args(["--data-dir", dir.path().to_str().unwrap(), "--json"])
        .args(["bench-indicators", "--runs", "2", "--data"])
        .arg(&csv)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["candles"], 744, "{report}");
    assert_eq!(report["runs"], 2, "{report}");
    for field in ["fresh_median_ms", "reused_median_ms"] {
        let ms = report[field].as_f64().unwrap_or(f64::NAN);
        assert!(ms.is_finite() && ms >= 0.0, "{field}: {report}");
    }
    trademind()
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["bench-indicators", "--data", "/nonexistent/candles.csv"])
        .assert()
        .failure();
}
