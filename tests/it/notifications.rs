//! E-mail alerts against a fake Resend: sent once, deduplicated, retried with the same
//! idempotency key, and refused errors reported.

use std::sync::Mutex;
use std::time::Duration;

use trademind::services::notification::{
    Alert, AlertKind, AlertOutcome, NotificationConfig, ResendClient, ResendError, notify,
};
use trademind::store::Store;
use trademind::testkit::fake_resend::FakeResend;

const KEY: &str = "re_test_0123456789";

fn config(url: &str) -> NotificationConfig {
    NotificationConfig {
        enabled: true,
        base_url: url.to_string(),
        from: "TradeMind <alerts@example.com>".into(),
        to: vec!["me@example.com".into()],
        ..NotificationConfig::default()
    }
}

fn alert(key: &str) -> Alert {
    Alert {
        kind: AlertKind::BreakerChanged,
        dedup_key: key.into(),
        subject: "Circuit breaker tripped".into(),
        body: "daily loss limit reached: halted".into(),
    }
}

#[tokio::test]
async fn an_alert_is_sent_once_and_a_repeat_is_suppressed() {
    let fake = FakeResend::start(KEY).await.unwrap();
    let cfg = config(&fake.url());
    let client = ResendClient::new(&cfg.base_url, KEY, Duration::from_secs(5)).unwrap();
    let db = Mutex::new(Store::open_in_memory().unwrap().into_connection());
    let first = notify(
        &db,
        Some(&client),
        &cfg,
        &alert("breaker/global"),
        1_000_000,
    )
    .await
    .unwrap();
    assert!(matches!(first, AlertOutcome::Sent { .. }), "{first:?}");
    let again = notify(
        &db,
        Some(&client),
        &cfg,
        &alert("breaker/global"),
        1_060_000,
    )
    .await
    .unwrap();
    assert!(
        matches!(again, AlertOutcome::Suppressed { .. }),
        "{again:?}"
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["subject"], "Circuit breaker tripped");
    assert_eq!(sent[0].body["to"][0], "me@example.com");
    assert!(
        sent[0]
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("breaker_changed/")
    );
    let statuses: Vec<String> = db
        .lock()
        .unwrap()
        .prepare("SELECT status FROM alerts ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(statuses, ["sent", "suppressed"]);
}

#[tokio::test]
async fn a_429_is_retried_with_the_same_idempotency_key_and_delivers_once() {
    let fake = FakeResend::start(KEY).await.unwrap();
    fake.script(FakeResend::rate_limited());
    let client = ResendClient::new(&fake.url(), KEY, Duration::from_secs(5)).unwrap();
    let to = vec!["me@example.com".to_string()];
    let id = client
        .send("a <a@example.com>", &to, "s", "t", "trade_executed/7")
        .await
        .unwrap();
    assert_eq!(fake.requests(), 2);
    assert_eq!(fake.sent().len(), 1);
    // a retry of the same request after success is answered from the idempotency record
    let replay = client
        .send("a <a@example.com>", &to, "s", "t", "trade_executed/7")
        .await
        .unwrap();
    assert_eq!(replay, id);
    assert_eq!(fake.sent().len(), 1, "no second delivery");
    // the same key with another payload is refused, as Resend does
    let err = client
        .send("a <a@example.com>", &to, "other", "t", "trade_executed/7")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ResendError::Rejected { status: 409, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_names_the_fix() {
    let fake = FakeResend::start(KEY).await.unwrap();
    let client = ResendClient::new(&fake.url(), "re_wrong", Duration::from_secs(5)).unwrap();
    let err = client
        .send(
            "a <a@example.com>",
            &["me@example.com".to_string()],
            "s",
            "t",
            "test/1",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ResendError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("keys set resend"));
    assert!(
        !err.to_string().contains("re_wrong"),
        "the key never appears in an error"
    );
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn the_fake_rejects_what_resend_rejects() {
    let fake = FakeResend::start(KEY).await.unwrap();
    let http = reqwest::Client::new();
    // no User-Agent: reqwest sends none unless told to
    let r = http
        .post(format!("{}/emails", fake.url()))
        .bearer_auth(KEY)
        .json(
            &serde_json::json!({"from": "a@example.com", "to": ["b@example.com"], "subject": "s"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .post(format!("{}/emails", fake.url()))
        .header("User-Agent", "t")
        .json(
            &serde_json::json!({"from": "a@example.com", "to": ["b@example.com"], "subject": "s"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(format!("{}/emails", fake.url()))
        .header("User-Agent", "t")
        .bearer_auth(KEY)
        .json(&serde_json::json!({"from": "a@example.com", "to": ["b@example.com"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["name"], "missing_required_field");
    assert!(fake.sent().is_empty());
}

/// `trademind --json notify test` against `fake`, with `key` (if any) in the environment and
/// the config and data dir under `dir`.
fn notify_test(dir: &std::path::Path, fake: &FakeResend, key: Option<&str>) -> assert_cmd::Command {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[notifications]\nenabled = true\nbase_url = \"{}\"\nfrom = \"TradeMind <alerts@example.com>\"\nto = [\"me@example.com\"]\n\n[secrets]\nbackend = \"environment\"\n",
            fake.url()
        ),
    )
    .unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("trademind").unwrap();
    cmd.env_remove("TRADEMIND_RESEND_API_KEY")
        .env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    if let Some(key) = key {
        cmd.env("TRADEMIND_RESEND_API_KEY", key);
    }
    cmd.args([
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        "notify",
        "test",
    ]);
    cmd
}

#[tokio::test]
async fn notify_test_sends_one_mail_with_the_key_from_the_environment() {
    let fake = FakeResend::start(KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut with_key, mut without) = (
        notify_test(dir.path(), &fake, Some(KEY)),
        notify_test(dir.path(), &fake, None),
    );
    let (out, no_key) = tokio::task::spawn_blocking(move || {
        let ok = with_key.assert().success().get_output().stdout.clone();
        let no_key = without.assert().code(2).get_output().stdout.clone();
        (ok, no_key)
    })
    .await
    .unwrap();
    let outcome: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(outcome["status"], "sent");
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.sent()[0].body["subject"], "TradeMind test alert");
    assert!(String::from_utf8_lossy(&no_key).contains("keys set resend"));
}

#[tokio::test]
async fn a_failed_test_mail_with_json_prints_one_error_document_carrying_the_outcome() {
    let fake = FakeResend::start(KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Resend refuses this key: the mail fails after the command has its outcome.
    let mut cmd = notify_test(dir.path(), &fake, Some("re_not_the_right_key"));
    let out = tokio::task::spawn_blocking(move || cmd.assert().code(1).get_output().stdout.clone())
        .await
        .unwrap();
    let documents: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(documents.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(documents[0]["error"], "the test e-mail was not sent");
    assert_eq!(documents[0]["details"]["status"], "failed");
    assert!(fake.sent().is_empty());
}
