//! One alert pipeline (issue #21): e-mail and webhooks behind one trait, filtered by kind,
//! retried, and delivered at most once per channel across restarts (the delivery log).

use std::sync::Mutex;
use std::time::Duration;

use trademind::services::notification::{
    Alert, AlertChannels, AlertKind, AlertOutcome, NotificationConfig, WebhookConfig,
    WebhookFormat, dispatch,
};
use trademind::store::Store;
use trademind::testkit::fake_webhook::FakeWebhook;
use trademind::testkit::http::Response;

fn hook(name: &str, url: String, format: WebhookFormat) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        url,
        format,
        initial_backoff_ms: 10,
        ..WebhookConfig::default()
    }
}

fn stop_hit() -> Alert {
    Alert {
        kind: AlertKind::StopOrTargetHit,
        dedup_key: "stop_or_target_hit/sl-42".into(),
        subject: "TradeMind: stop hit on BTCUSDT".into(),
        body: "stop hit: 0.02 BTCUSDT sold at 48900".into(),
    }
}

#[tokio::test]
async fn a_webhook_is_retried_after_a_5xx_and_a_429_with_the_same_idempotency_key() {
    let fake = FakeWebhook::start().await.unwrap();
    fake.script([
        Response::json(500, &serde_json::json!({})),
        Response::json(429, &serde_json::json!({"retry_after": 0.05}))
            .with_header("Retry-After", "0"),
    ]);
    let cfg = NotificationConfig {
        webhooks: vec![hook("ops", fake.url("/hook"), WebhookFormat::Json)],
        ..NotificationConfig::default()
    };
    let channels = AlertChannels::from_config(&cfg, None).unwrap();
    let db = Mutex::new(Store::open_in_memory().unwrap());
    let (outcome, deliveries) = dispatch(&db, &channels, &cfg, &stop_hit(), 1_000)
        .await
        .unwrap();
    assert!(matches!(outcome, AlertOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].channel, "webhook:ops");
    let calls = fake.calls();
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [500, 429, 204]
    );
    let keys: Vec<_> = calls.iter().map(|c| c.idempotency_key.clone()).collect();
    assert!(
        keys[0].is_some() && keys.iter().all(|k| *k == keys[0]),
        "{keys:?}"
    );
    assert_eq!(calls[2].body["kind"], "stop_or_target_hit");
    assert_eq!(calls[2].body["subject"], "TradeMind: stop hit on BTCUSDT");
    // The delivery log says so.
    let store = db.into_inner().unwrap();
    let (status, attempts): (String, i64) = store
        .conn()
        .query_row(
            "SELECT status, attempts FROM alert_deliveries WHERE channel = 'webhook:ops'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), attempts), ("sent", 1));
}

#[tokio::test]
async fn a_stop_hit_is_delivered_once_per_channel_even_after_a_restart_and_the_dedup_window() {
    let fake = FakeWebhook::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = NotificationConfig {
        webhooks: vec![
            hook("ops", fake.url("/hook"), WebhookFormat::Json),
            hook("team", fake.url("/slack"), WebhookFormat::Slack),
        ],
        ..NotificationConfig::default()
    };
    for now in [1_000, 5_000, 1_000 + 3 * 3_600_000] {
        // A new process each time: a fresh store connection and fresh channels.
        let db = Mutex::new(Store::open_in(dir.path()).unwrap());
        let channels = AlertChannels::from_config(&cfg, None).unwrap();
        dispatch(&db, &channels, &cfg, &stop_hit(), now)
            .await
            .unwrap();
    }
    let calls = fake.delivered();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let slack = calls.iter().find(|c| c.path == "/slack").unwrap();
    assert!(
        slack.body["text"]
            .as_str()
            .unwrap()
            .starts_with("*TradeMind: stop hit on BTCUSDT*"),
        "{slack:?}"
    );
}

#[tokio::test]
async fn a_channel_gets_only_the_kinds_it_is_configured_for() {
    let fake = FakeWebhook::start().await.unwrap();
    let cfg = NotificationConfig {
        webhooks: vec![WebhookConfig {
            events: vec![AlertKind::StopOrTargetHit],
            ..hook("stops", fake.url("/discord"), WebhookFormat::Discord)
        }],
        ..NotificationConfig::default()
    };
    let channels = AlertChannels::from_config(&cfg, None).unwrap();
    let db = Mutex::new(Store::open_in_memory().unwrap());
    let bought = Alert {
        kind: AlertKind::TradeExecuted,
        dedup_key: "trade_executed/e-1".into(),
        subject: "bought".into(),
        body: "…".into(),
    };
    dispatch(&db, &channels, &cfg, &bought, 1_000)
        .await
        .unwrap();
    dispatch(&db, &channels, &cfg, &stop_hit(), 2_000)
        .await
        .unwrap();
    let calls = fake.delivered();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].body["content"]
            .as_str()
            .unwrap()
            .starts_with("**TradeMind: stop hit")
    );
}

fn trademind(dir: &std::path::Path, config: &str) -> std::process::Command {
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = crate::daemon::trademind_command(&dir.join("data"));
    cmd.arg("--config").arg(cfg);
    cmd
}

#[tokio::test]
async fn notify_test_on_a_named_webhook_posts_once_and_an_unknown_channel_is_a_usage_error() {
    let fake = FakeWebhook::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[notifications.webhooks]]\nname = \"ops\"\nurl = \"{}\"\nformat = \"discord\"\n",
        fake.url("/hook")
    );
    let (ok, unknown, check) = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let ok = trademind(&dir, &config)
                .args(["notify", "test", "--channel", "webhook:ops"])
                .output()
                .unwrap();
            let unknown = trademind(&dir, &config)
                .args(["notify", "test", "--channel", "webhook:nope"])
                .output()
                .unwrap();
            let bad =
                "[[notifications.webhooks]]\nname = \"ops\"\nurl = \"http://example.com/x\"\n";
            let check = trademind(&dir, bad)
                .args(["config", "check"])
                .output()
                .unwrap();
            (ok, unknown, check)
        })
        .await
        .unwrap()
    };
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("webhook:ops: sent"),
        "{ok:?}"
    );
    let calls = fake.delivered();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].body["content"]
            .as_str()
            .unwrap()
            .contains("TradeMind test alert")
    );
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("configured: webhook:ops"),
        "{unknown:?}"
    );
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("notifications.webhooks[0].url"),
        "{check:?}"
    );
    let _ = Duration::ZERO;
}
