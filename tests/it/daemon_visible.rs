//! A daemon you can see (issue #21): one log line per trading event, plain text when stderr is
//! not a terminal, `--log-format json`, the heartbeat that `status` and `strategy list` show,
//! and one daemon per data dir.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rust_decimal_macros::dec;
use trademind::domain::market::Interval;
use trademind::domain::trading::order::OrderType;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, rebound_candles};
use trademind::testkit::fake_webhook::FakeWebhook;

use crate::daemon::{signal, trademind_command, wait_exit, wait_for_rows};

/// Kills the daemon if a test fails before it stops it.
struct Running(Option<Child>);

impl Running {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, then its exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        signal(&child, "TERM");
        wait_exit(&mut child, Duration::from_secs(30))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stdout_of(data: &Path, args: &[&str]) -> String {
    let out = trademind_command(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_second_daemon_on_the_same_data_dir_exits_2_naming_the_first_ones_pid() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(trademind::cli::DB_FILE);
    let first = Running(Some(
        trademind_command(dir.path())
            .arg("--daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    assert!(
        wait_for_rows(
            &db,
            "SELECT COUNT(*) FROM daemon_heartbeat WHERE stopped_at IS NULL",
            Duration::from_secs(30)
        ),
        "the daemon never wrote its heartbeat"
    );
    // Every face says which daemon is alive.
    let pid = first.id();
    let status = stdout_of(dir.path(), &["status"]);
    assert!(
        status.contains(&format!("process:    daemon alive (pid {pid}, since ")),
        "{status}"
    );
    let list = stdout_of(dir.path(), &["strategy", "list"]);
    assert!(list.contains(&format!("daemon alive (pid {pid}")), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(dir.path(), &["--json", "status"])).unwrap();
    assert_eq!(json["daemon"]["state"], "alive");
    assert_eq!(json["daemon"]["pid"], pid);

    let mut second = trademind_command(dir.path())
        .arg("--daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_exit(&mut second, Duration::from_secs(30)).code();
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("another daemon (pid {pid}) is already running")),
        "{stderr}"
    );

    assert_eq!(first.stop().code(), Some(0));
    let status = stdout_of(dir.path(), &["status"]);
    assert!(
        status.contains("process:    no daemon running (last seen ")
            && status.contains("stopped cleanly"),
        "{status}"
    );
    // The lock went with the first daemon: a new one starts.
    let third = Running(Some(
        trademind_command(dir.path())
            .arg("--daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let pid3 = third.id();
    let query =
        format!("SELECT COUNT(*) FROM daemon_heartbeat WHERE pid = {pid3} AND stopped_at IS NULL");
    assert!(
        wait_for_rows(&db, &query, Duration::from_secs(30)),
        "a daemon after the first one stopped could not start"
    );
    assert_eq!(third.stop().code(), Some(0));
}

#[test]
fn warnings_on_a_redirected_stderr_carry_no_escape_codes_and_json_lines_parse() {
    let dir = tempfile::tempdir().unwrap();
    let out = trademind_command(dir.path())
        .env_remove("NO_COLOR")
        .args(["pause", "--reason", "fomc"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("trading paused"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a pipe: {stderr:?}"
    );

    let out = trademind_command(dir.path())
        .args(["--log-format", "json", "pause", "--reason", "cpi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.contains("trading paused"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert_eq!(v["reason"], "cpi", "{line}");
    assert!(v["timestamp"].is_string(), "{line}");
}

/// A config whose one-minute trading slot falls `in_secs` seconds from now; orders are
/// checked every second; stop and target hits go to the webhook at `hook`.
fn write_config(path: &Path, base_url: &str, hook: &str, in_secs: u64) {
    let now = chrono::Utc::now().timestamp() as u64;
    let offset = (now + in_secs) % 60;
    std::fs::write(
        path,
        format!(
            "[trading]\nconnection = \"fake\"\n\n\
             [exchange.binance]\nbase_url = \"{base_url}\"\n\n\
             [scheduler]\nautonomous_trading_minutes = 1\ncandle_close_offset_seconds = {offset}\n\
             monitor_orders_seconds = 1\nupdate_prices_seconds = 600\n\n\
             [rules]\noversold = 99.0\noverbought = 99.5\n\n\
             [[notifications.webhooks]]\nname = \"ops\"\nurl = \"{hook}\"\n\
             events = [\"stop_or_target_hit\"]\n"
        ),
    )
    .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_of_a_round_trip_has_entry_protection_exit_and_pnl_lines_and_no_escapes() {
    let fake = FakeBinance::start(FakeConfig::default()).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let series = rebound_candles(dec!(50000), Interval::M1, now);
    fake.set_price("BTCUSDT", series.last().unwrap().close.get());
    fake.set_klines("BTCUSDT", series);

    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    let db = data.join(trademind::cli::DB_FILE);
    let hook = FakeWebhook::start().await.unwrap();
    write_config(&config, &fake.base_url(), &hook.url("/hook"), 4);
    cli(&data, &config, &["connection", "add", "fake", "--testnet"]);
    cli(
        &data,
        &config,
        &[
            "strategy",
            "add",
            "trip",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
            "--connection",
            "fake",
        ],
    );
    cli(&data, &config, &["strategy", "enable", "trip"]);

    // stderr written to a file, as `trademind --daemon 2>daemon.log` does.
    let log_path = dir.path().join("daemon.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let start = |log_file: std::fs::File| {
        Running(Some(
            trademind_command(&data)
                .env_remove("NO_COLOR")
                .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
                .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
                .arg("--config")
                .arg(&config)
                .arg("--daemon")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file))
                .spawn()
                .unwrap(),
        ))
    };
    let daemon = Running(Some(
        trademind_command(&data)
            .env_remove("NO_COLOR")
            .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
            .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
            .arg("--config")
            .arg(&config)
            .arg("--daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap(),
    ));
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let protected = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            wait_for_rows(
                &db,
                "SELECT COUNT(*) FROM orders WHERE purpose = 'stop_loss' AND status = 'NEW'",
                Duration::from_secs(90),
            )
        })
        .await
        .unwrap()
    };
    assert!(protected, "no protected entry:\n{}", log());
    // The price falls to the stop: the stop-limit triggers and fills on the fake.
    let stop = fake
        .orders()
        .into_iter()
        .find(|o| o.order_type == OrderType::StopLossLimit)
        .expect("the stop on the exchange");
    fake.set_price("BTCUSDT", stop.stop_price.expect("a stop price").get());
    let closed = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            wait_for_rows(
                &db,
                "SELECT COUNT(*) FROM positions WHERE status = 'closed'",
                Duration::from_secs(30),
            )
        })
        .await
        .unwrap()
    };
    assert!(closed, "the stop fill was not booked:\n{}", log());
    let status = tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .unwrap();
    let text = log();
    assert_eq!(status.code(), Some(0), "{text}");

    assert!(!text.contains('\u{1b}'), "escape codes in the log file");
    let line_with = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in:\n{text}"))
            .to_string()
    };
    let decision = line_with("decision executed");
    assert!(
        decision.contains("INFO") && decision.contains("symbol=BTCUSDT"),
        "{decision}"
    );
    let sent = line_with("entry order sent");
    assert!(
        sent.contains("side=\"BUY\"") || sent.contains("side=BUY"),
        "{sent}"
    );
    line_with("entry fill booked");
    let protection = line_with("protection placed");
    assert!(protection.contains("stop="), "{protection}");
    let exit = line_with("stop hit: position closed");
    assert!(exit.contains("realized_pnl="), "{exit}");
    assert!(exit.contains("exit_price="), "{exit}");
    // Stream churn (the testnet streams cannot connect here) does not bury the trading lines.
    let churn = text
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("reconnecting"))
        .count();
    assert!(churn <= 3, "{churn} reconnect lines at info:\n{text}");

    // The stop hit went to the webhook once...
    let stop_alerts = |hook: &FakeWebhook| {
        hook.delivered()
            .into_iter()
            .filter(|c| c.body["kind"] == "stop_or_target_hit")
            .count()
    };
    assert_eq!(stop_alerts(&hook), 1, "{:?}", hook.calls());
    assert_eq!(hook.delivered().len(), 1, "only the kinds configured");
    // ...and a restarted daemon (reconciling, monitoring) does not send it again.
    let restart_log = std::fs::File::create(dir.path().join("daemon2.log")).unwrap();
    let again = start(restart_log);
    let pid = again.id();
    let beat = {
        let db = db.clone();
        let query = format!(
            "SELECT COUNT(*) FROM daemon_heartbeat WHERE pid = {pid} AND last_cycle_job = 'monitor_orders'"
        );
        tokio::task::spawn_blocking(move || wait_for_rows(&db, &query, Duration::from_secs(30)))
            .await
            .unwrap()
    };
    assert!(beat, "the restarted daemon never monitored orders");
    let status = tokio::task::spawn_blocking(move || again.stop())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(stop_alerts(&hook), 1, "sent again after a restart");
}
