//! `trademind keys ...` and `trademind live ...` as a user meets them: secrets are refused as
//! arguments, never printed, never written to the log or the database.

use assert_cmd::Command;
use std::fs;
use std::path::Path;

fn trademind(data: &Path) -> Command {
    crate::hermetic::trademind_at(data)
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

fn keyutils_gate(test: &str) -> bool {
    if std::env::var("TRADEMIND_KEYUTILS_TEST").as_deref() != Ok("1") {
        eprintln!(
            "skipping {test}: set TRADEMIND_KEYUTILS_TEST=1 and run under `keyctl session -`"
        );
        return false;
    }
    true
}

/// The descriptions of the keys linked directly into `ring`.
#[cfg(target_os = "linux")]
fn descriptions(ring: linux_keyutils::KeyRing) -> Vec<String> {
    ring.get_links(4096)
        .map(|links| {
            links
                .iter()
                .filter_map(|l| l.as_key())
                .filter_map(|k| k.metadata().ok())
                .map(|m| m.get_description().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `trademind` in a brand-new session keyring of its own (`keyctl session - trademind ...`),
/// as a user running each command under its own `keyctl session -` would.
fn trademind_in_new_session(data: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("trademind");
    let mut cmd = std::process::Command::new("keyctl");
    cmd.args(["session", "-"]).arg(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test")
        .args(["--data-dir", data.to_str().unwrap()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("keyctl (package keyutils) runs");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Issue #24 (5): a key stored inside a session was also linked into the user's persistent
/// keyring, so it outlived the session and reached every later one.
#[cfg(target_os = "linux")]
#[test]
fn keyutils_keys_set_links_nothing_into_the_persistent_keyring() {
    if !keyutils_gate("keyutils_keys_set_links_nothing_into_the_persistent_keyring") {
        return;
    }
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let dir = tempfile::tempdir().unwrap();
    let conn = format!("nopersist-{}", std::process::id());
    trademind(dir.path())
        .args(["keys", "set", "grok", "--connection", &conn])
        .write_stdin("xai-session-only-1\n")
        .assert()
        .success();
    let ours = |d: &String| d.contains(&format!(":{conn}"));
    let persistent = KeyRing::get_persistent(KeyRingIdentifier::Process).unwrap();
    let in_persistent: Vec<String> = descriptions(persistent).into_iter().filter(ours).collect();
    let session = KeyRing::from_special_id(KeyRingIdentifier::Session, false).unwrap();
    let in_session: Vec<String> = descriptions(session).into_iter().filter(ours).collect();
    let user = KeyRing::from_special_id(KeyRingIdentifier::User, false).unwrap();
    let in_user: Vec<String> = descriptions(user).into_iter().filter(ours).collect();
    // Clean up whatever the assertions find, before they fail.
    for d in in_persistent.iter().chain(&in_session) {
        for ring in [persistent, session] {
            if let Ok(key) = ring.search(d) {
                let _ = key.invalidate();
            }
        }
    }
    assert!(
        in_persistent.is_empty(),
        "linked into the persistent keyring: {in_persistent:?}"
    );
    assert!(
        in_user.is_empty(),
        "linked into the user keyring: {in_user:?}"
    );
    assert_eq!(in_session.len(), 1, "the session keyring holds it once");
}

/// Issue #24 (5): a brand-new data dir with no `keys set` used another data dir's key while
/// `keys list` said no keys were stored.
#[test]
fn keyutils_a_key_stored_for_one_data_dir_is_not_used_by_another() {
    if !keyutils_gate("keyutils_a_key_stored_for_one_data_dir_is_not_used_by_another") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    // notify test needs the Resend key; its server is a closed port, so a found key fails
    // to send (exit 1) while a missing one is refused before (exit 2).
    let cfg = tmp.path().join("config.toml");
    fs::write(
        &cfg,
        "[notifications]\nenabled = true\nbase_url = \"http://127.0.0.1:9\"\n\
         from = \"TradeMind <a@example.com>\"\nto = [\"b@example.com\"]\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    trademind(&a)
        .args(["--config", cfg, "keys", "set", "resend"])
        .write_stdin("re_data_dir_a_1\n")
        .assert()
        .success();

    // B has no key of its own, so nothing is used there; A uses its key.
    let out_b = trademind(&b)
        .args(["--config", cfg, "notify", "test"])
        .output()
        .unwrap();
    let stderr_b = String::from_utf8_lossy(&out_b.stderr);
    assert_eq!(out_b.status.code(), Some(2), "{stderr_b}");
    assert!(stderr_b.contains("no Resend API key"), "{stderr_b}");
    let out_a = trademind(&a)
        .args(["--config", cfg, "notify", "test"])
        .output()
        .unwrap();
    let stderr_a = String::from_utf8_lossy(&out_a.stderr);
    assert!(!stderr_a.contains("no Resend API key"), "{stderr_a}");

    // The lists agree with the lookup.
    let listed = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(
            &trademind(dir)
                .args(["--config", cfg, "--json", "keys", "list"])
                .assert()
                .success()
                .get_output()
                .stdout,
        )
        .unwrap()
    };
    let in_a = listed(&a);
    let resend: Vec<&serde_json::Value> = in_a
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "resend")
        .collect();
    assert_eq!(resend.len(), 1, "{in_a}");
    assert!(
        resend[0]["location"]
            .as_str()
            .unwrap_or_default()
            .contains("session keyring"),
        "{in_a}"
    );
    let in_b = listed(&b);
    assert!(
        !in_b
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "resend"),
        "{in_b}"
    );

    trademind(&a)
        .args(["--config", cfg, "keys", "delete", "resend"])
        .assert()
        .success();
}

/// Issue #24 (5): a key stored under one `keyctl session -` was not found by the next
/// command, while `keys list` kept showing it. A session key ends with its session and the
/// list says so; `keyring = "persistent"` keeps a key across sessions.
#[test]
fn keyutils_session_keys_end_with_their_session_and_persistent_keys_do_not() {
    if !keyutils_gate("keyutils_session_keys_end_with_their_session_and_persistent_keys_do_not") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let conn = format!("sess-{}", std::process::id());
    let first = trademind_in_new_session(
        &data,
        &["keys", "set", "tavily", "--connection", &conn],
        "tvly-session-1\n",
    );
    assert!(first.status.success(), "{first:?}");

    let out = trademind_in_new_session(&data, &["--json", "keys", "list"], "");
    assert!(out.status.success(), "{:?}", out);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["connection"] == conn.as_str()),
        "listed although the lookup cannot find it: {listed}"
    );
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(
        notes.contains(&format!(
            "tavily:{conn} was set for this data dir but is not in the session keyring"
        )),
        "{notes}"
    );
    // `keys set` said so when it stored the key.
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(said.contains("ends with it"), "{said}");

    let cfg = tmp.path().join("persistent.toml");
    fs::write(&cfg, "[secrets]\nkeyring = \"persistent\"\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = trademind_in_new_session(
        &data,
        &[
            "--config",
            cfg,
            "keys",
            "set",
            "tavily",
            "--connection",
            &conn,
        ],
        "tvly-persistent-1\n",
    );
    assert!(out.status.success(), "{:?}", out);
    let out = trademind_in_new_session(&data, &["--config", cfg, "--json", "keys", "list"], "");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["connection"] == conn.as_str())
        .unwrap_or_else(|| panic!("persistent key not found from a new session: {listed}"));
    assert!(
        entry["location"]
            .as_str()
            .unwrap()
            .contains("persistent keyring"),
        "{entry}"
    );
    let out = trademind_in_new_session(
        &data,
        &[
            "--config",
            cfg,
            "keys",
            "delete",
            "tavily",
            "--connection",
            &conn,
        ],
        "",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted"),
        "{out:?}"
    );
}

/// Issue #24 (5): keys an older trademind stored for every data dir at once are not used; the
/// list says they exist and what to do.
#[cfg(target_os = "linux")]
#[test]
fn keyutils_an_unscoped_key_from_an_older_version_is_reported_not_used() {
    if !keyutils_gate("keyutils_an_unscoped_key_from_an_older_version_is_reported_not_used") {
        return;
    }
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("fresh");
    // The name keyring 3 gave `keys set grok` (its user `grok:default`, service `trademind`).
    let session = KeyRing::from_special_id(KeyRingIdentifier::Session, false).unwrap();
    let old = session
        .add_key("keyring-rs:grok:default@trademind", b"xai-old-unscoped-1")
        .unwrap();
    let out = trademind(&data)
        .args(["--json", "keys", "list"])
        .output()
        .unwrap();
    let _ = old.invalidate();
    assert!(out.status.success(), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "grok"),
        "{listed}"
    );
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(
        notes.contains("grok:default: the keyring holds a key an older trademind stored"),
        "{notes}"
    );
    assert!(notes.contains("keys set grok"), "{notes}");
    assert!(!contains(&out.stdout, "xai-old-unscoped-1") && !contains(&out.stderr, "xai-old"));
}
