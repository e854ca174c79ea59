//! `trademind keys ...` and `trademind live ...` as a user meets them: secrets are refused as
//! arguments, never printed, never written to the log or the database.

use assert_cmd::Command;
use std::fs;
use std::path::Path;

fn trademind(data: &Path) -> Command {
    let mut cmd = Command::cargo_bin("trademind").expect("binary built");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    cmd.args(["--data-dir", data.to_str().unwrap()]);
    cmd
}

/// Every byte the data dir holds (database, WAL, logs), for leak searches.
fn data_dir_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(data_dir_bytes(&p));
            } else {
                out.extend(fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn keys_set_refuses_a_secret_given_as_an_argument_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "sk-argument-9f3a";
    let attempts: [&[&str]; 4] = [
        &["keys", "set", "grok", secret],
        &["keys", "set", "binance", "--key", secret],
        &["keys", "set", "tavily", &format!("--api-secret={secret}")],
        &[
            "keys",
            "set",
            "resend",
            "--connection",
            "ops",
            "--password",
            secret,
        ],
    ];
    for args in attempts {
        let out = trademind(dir.path())
            .args(args)
            .write_stdin("")
            .assert()
            .code(2);
        let out = out.get_output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("secrets are never accepted on the command line"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("prompt") && stderr.contains("stdin"),
            "{stderr}"
        );
        assert!(!contains(&out.stdout, secret) && !contains(&out.stderr, secret));
    }
    assert!(!contains(&data_dir_bytes(dir.path()), secret));
}

#[test]
fn a_secret_in_the_kind_or_another_wrong_place_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "xai-pasted-in-kind-7Qm2";
    let attempts: [(&[&str], &str); 6] = [
        (&["keys", "set", secret], "unknown key kind"),
        (&["keys", "delete", secret], "unknown key kind"),
        (
            &["keys", "set", "grok", "--connection", &format!("{secret}+")],
            "invalid connection name",
        ),
        (
            &["keys", "set", "--token", secret, "grok"],
            "unexpected argument",
        ),
        (&["keys", "test", secret], "unexpected argument"),
        (&["keys", secret], "unrecognized subcommand"),
    ];
    for (args, expected) in attempts {
        let out = trademind(dir.path())
            .args(args)
            .write_stdin("")
            .assert()
            .code(2);
        let out = out.get_output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !contains(&out.stdout, secret) && !contains(&out.stderr, secret),
            "{args:?} echoed the value: {stderr}"
        );
    }
    // Words trademind defines are still named, so the message stays useful.
    let out = trademind(dir.path())
        .args(["keys", "delete", "grok", "--bogus"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8_lossy(&out);
    assert!(stderr.contains("Usage: trademind keys delete"), "{stderr}");
}

#[test]
fn environment_backend_lists_and_tests_env_keys_and_refuses_to_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    fs::write(&cfg, "[secrets]\nbackend = \"environment\"\n").unwrap();
    let data = dir.path().join("data");
    let value = "xai-env-value-77";

    let out = trademind(&data)
        .args(["--config", cfg.to_str().unwrap(), "--json", "keys", "list"])
        .env("TRADEMIND_GROK_API_KEY", value)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!contains(&out.stdout, value));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["kind"], "grok");
    assert_eq!(listed[0]["connection"], "default");
    assert_eq!(listed[0]["backend"], "environment");

    let out = trademind(&data)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "keys",
            "test",
            "--offline",
        ])
        .env("TRADEMIND_GROK_API_KEY", value)
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("readable     grok:default (environment)"),
        "{text}"
    );
    assert!(text.contains("--offline only checks"), "{text}");

    let out = trademind(&data)
        .args(["--config", cfg.to_str().unwrap(), "keys", "set", "grok"])
        .write_stdin("xai-new\n")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TRADEMIND_GROK_API_KEY"), "{stderr}");
    assert!(!contains(&data_dir_bytes(&data), value));
}

#[test]
fn half_a_binance_pair_on_stdin_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = trademind(dir.path())
        .args(["keys", "set", "binance"])
        .write_stdin("only-the-key-123\n")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("two non-empty lines"), "{stderr}");
    assert!(!stderr.contains("only-the-key-123"));
}

/// Runs only inside a session keyring: `TRADEMIND_KEYUTILS_TEST=1 keyctl session - ...`.
#[test]
fn keyutils_keys_round_trip_through_the_binary_without_leaking() {
    if std::env::var("TRADEMIND_KEYUTILS_TEST").as_deref() != Ok("1") {
        eprintln!("skipping: set TRADEMIND_KEYUTILS_TEST=1 and run under `keyctl session -`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conn = format!("cli-{}", std::process::id());
    let (key, secret) = ("binance-key-leakcheck-1", "binance-secret-leakcheck-2");
    let mut printed = Vec::new();
    let mut run = |args: &[&str], stdin: &str| {
        // Trace level: not even debug logging may carry a value.
        let out = trademind(dir.path())
            .args(["--log-level", "trace"])
            .args(args)
            .write_stdin(stdin.to_string())
            .assert()
            .success()
            .get_output()
            .clone();
        printed.extend(&out.stdout);
        printed.extend(&out.stderr);
        out.stdout
    };
    run(
        &["keys", "set", "binance", "--connection", &conn],
        &format!("{key}\n{secret}\n"),
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&run(&["--json", "keys", "list"], "")).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["connection"] == conn.as_str())
        .expect("listed");
    assert_eq!(entry["kind"], "binance");
    assert_eq!(entry["backend"], "os-keyring");
    assert!(entry["set_at"].as_str().unwrap().contains('T'));
    let tested = String::from_utf8(run(&["keys", "test", "--offline"], "")).unwrap();
    assert!(
        tested.contains(&format!("readable     binance:{conn} (os-keyring)")),
        "{tested}"
    );
    run(&["keys", "delete", "binance", "--connection", &conn], "");

    let stored = data_dir_bytes(dir.path());
    // The log did record the operations, by entry name only.
    assert!(contains(&stored, &format!("binance:{conn}")));
    for value in [key, secret] {
        assert!(!contains(&printed, value), "{value} was printed");
        assert!(!contains(&stored, value), "{value} is in the data dir");
    }
}

#[test]
fn live_confirm_needs_the_exact_sentence_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    trademind(dir.path())
        .args(["live", "confirm", "--connection", "main"])
        .write_stdin("yes\n")
        .assert()
        .code(2);
    let status: serde_json::Value = serde_json::from_slice(
        &trademind(dir.path())
            .args(["--json", "live", "status", "--connection", "main"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["confirmed_at"], serde_json::Value::Null);
    assert_eq!(status["live_enabled_in_config"], false);

    trademind(dir.path())
        .args(["live", "confirm", "--connection", "main"])
        .write_stdin("I understand that main trades real money\n")
        .assert()
        .success();
    let status: serde_json::Value = serde_json::from_slice(
        &trademind(dir.path())
            .args(["--json", "live", "status", "--connection", "main"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    assert!(status["confirmed_at"].as_str().unwrap().contains('T'));

    trademind(dir.path())
        .args(["live", "confirm", "--connection", "paper"])
        .write_stdin("I understand that paper trades real money\n")
        .assert()
        .code(2);
}
