//! `trademind risk ...` as a user meets it: limits stored in SQLite and validated, and a kill
//! switch that survives a restart (each command is a fresh process reopening the file).

use assert_cmd::Command;

fn trademind(data_dir: &std::path::Path) -> Command {
    crate::hermetic::trademind_at(data_dir)
}

fn show_json(dir: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let out = trademind(dir)
        .args(["--json", "risk", "show"])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn risk_set_validates_and_persists_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let shown = show_json(dir.path(), &[]);
    assert_eq!(shown["source"], "settings");
    assert_eq!(shown["config"]["max_daily_loss_pct"], "3");
    assert_eq!(shown["breaker"]["state"], "active");

    trademind(dir.path())
        .args(["risk", "set", "max_daily_loss_pct", "2"])
        .assert()
        .success();
    let shown = show_json(dir.path(), &[]);
    assert_eq!(shown["source"], "stored_default");
    assert_eq!(shown["config"]["max_daily_loss_pct"], "2");

    let out = trademind(dir.path())
        .args(["risk", "set", "max_daily_loss_pct", "250"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(err.contains("max_daily_loss_pct"), "{err}");
    assert!(err.contains("out of range"), "{err}");
    trademind(dir.path())
        .args(["risk", "set", "no_such_key", "1"])
        .assert()
        .code(2);
    trademind(dir.path())
        .args(["risk", "show", "--strategy", "ghost"])
        .assert()
        .code(2);
    // the refused values changed nothing
    assert_eq!(
        show_json(dir.path(), &[])["config"]["max_daily_loss_pct"],
        "2"
    );
}

#[test]
fn kill_halts_across_restarts_until_reset() {
    let dir = tempfile::tempdir().unwrap();
    trademind(dir.path())
        .args(["risk", "kill"])
        .assert()
        .success();
    let shown = show_json(dir.path(), &[]);
    assert_eq!(shown["breaker"]["state"], "halted");
    assert_eq!(shown["breaker"]["reason"], "manual_kill");
    trademind(dir.path())
        .args(["risk", "reset-breaker"])
        .assert()
        .success();
    let shown = show_json(dir.path(), &[]);
    assert_eq!(shown["breaker"]["state"], "active");
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["reason"], "manual_reset");
    assert_eq!(history[1]["state"], "halted");
}

#[test]
fn a_strategy_gets_its_own_limits_over_the_default() {
    let dir = tempfile::tempdir().unwrap();
    trademind(dir.path())
        .args(["strategy", "add", "trend", "--symbol", "BTCUSDT"])
        .assert()
        .success();
    trademind(dir.path())
        .args(["risk", "set", "heat_cap_pct", "4", "--strategy", "trend"])
        .assert()
        .success();
    let trend = show_json(dir.path(), &["--strategy", "trend"]);
    assert_eq!(trend["source"], "strategy");
    assert_eq!(trend["config"]["heat_cap_pct"], "4");
    let default = show_json(dir.path(), &[]);
    assert_eq!(default["source"], "settings");
    assert_eq!(default["config"]["heat_cap_pct"], "6");
}
