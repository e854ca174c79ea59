//! E-mail alerts through Resend (`POST /emails`), deduplicated and rate-limited so one failing
//! component sends one mail, not a hundred. Every alert is recorded in the `alerts` table first;
//! retries reuse the same `Idempotency-Key`, so Resend never delivers it twice.

pub mod channel;
pub mod resend;
pub mod telegram_channel;
pub mod webhook;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::store::StoreResult;
pub use channel::{AlertChannel, AlertChannels, Delivery, dispatch};
pub use resend::{KeyAccess, ResendClient, ResendError};
pub use webhook::{WebhookConfig, WebhookFormat};

/// What an alert is about (the seed's alert types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    TradeExecuted,
    StopOrTargetHit,
    /// A position could not be protected on the exchange and was closed at market.
    ProtectionFailed,
    DailyLossLimit,
    BreakerChanged,
    ReconciliationDiscrepancy,
    ComponentFailing,
    LlmBudgetSpent,
    /// The account once a UTC day at `telegram.daily_summary_hour` (key `daily_summary/<day>`).
    DailySummary,
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::TradeExecuted => "trade_executed",
            AlertKind::StopOrTargetHit => "stop_or_target_hit",
            AlertKind::ProtectionFailed => "protection_failed",
            AlertKind::DailyLossLimit => "daily_loss_limit",
            AlertKind::BreakerChanged => "breaker_changed",
            AlertKind::ReconciliationDiscrepancy => "reconciliation_discrepancy",
            AlertKind::ComponentFailing => "component_failing",
            AlertKind::LlmBudgetSpent => "llm_budget_spent",
            AlertKind::DailySummary => "daily_summary",
            AlertKind::Test => "test",
        }
    }

    /// Whether the same dedup key may be delivered again once the dedup window has passed (a
    /// component failing again); a trade, a stop hit or a failed protection is one event, told
    /// once per channel ever, and so is a day's summary (its key names the day).
    pub fn repeats(self) -> bool {
        !matches!(
            self,
            AlertKind::TradeExecuted
                | AlertKind::StopOrTargetHit
                | AlertKind::ProtectionFailed
                | AlertKind::DailySummary
        )
    }
}

/// One alert to send. `dedup_key` says "the same thing again" (e.g. `component_failing/exchange`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub dedup_key: String,
    pub subject: String,
    pub body: String,
}

/// `[notifications]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationConfig {
    /// Send e-mail alerts at all (needs a Resend key in the keyring and `from`/`to`).
    pub enabled: bool,
    /// Resend API base URL.
    pub base_url: String,
    /// Sender, e.g. "TradeMind <alerts@example.com>" (a domain verified with Resend).
    pub from: String,
    /// Recipients (at most 50).
    pub to: Vec<String>,
    /// The same alert (same dedup key) is not sent again within this many minutes.
    pub dedup_minutes: u64,
    /// At most this many mails per hour in total; the rest are recorded as suppressed.
    pub max_per_hour: u32,
    /// HTTP timeout in seconds.
    pub timeout_seconds: u64,
    /// Alert kinds e-mailed (e.g. ["stop_or_target_hit", "protection_failed"]); empty: all.
    pub events: Vec<AlertKind>,
    /// Webhook channels (`[[notifications.webhooks]]`): generic JSON, Discord or Slack.
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            enabled: false,
            base_url: "https://api.resend.com".into(),
            from: String::new(),
            to: Vec::new(),
            dedup_minutes: 60,
            max_per_hour: 20,
            timeout_seconds: 10,
            events: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

impl NotificationConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled {
            if self.from.trim().is_empty() {
                return Err((
                    "notifications.from".into(),
                    "set a sender when notifications are enabled".into(),
                ));
            }
            if self.to.is_empty() || self.to.len() > 50 {
                return Err(("notifications.to".into(), "list 1 to 50 recipients".into()));
            }
        }
        if self.to.iter().any(|t| !t.contains('@')) {
            return Err((
                "notifications.to".into(),
                "every recipient must be an e-mail address".into(),
            ));
        }
        if !(self.base_url.starts_with("https://")
            || self.base_url.starts_with("http://127.0.0.1")
            || self.base_url.starts_with("http://localhost"))
        {
            return Err((
                "notifications.base_url".into(),
                "must be an https:// URL".into(),
            ));
        }
        if self.max_per_hour == 0 {
            return Err((
                "notifications.max_per_hour".into(),
                "must be at least 1".into(),
            ));
        }
        if !(1..=120).contains(&self.timeout_seconds) {
            return Err((
                "notifications.timeout_seconds".into(),
                "must be between 1 and 120".into(),
            ));
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            hook.validate(i)?;
            if self.webhooks[..i].iter().any(|h| h.name == hook.name) {
                return Err((
                    format!("notifications.webhooks[{i}].name"),
                    format!("another webhook is already called {:?}", hook.name),
                ));
            }
        }
        Ok(())
    }
}

/// What became of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AlertOutcome {
    Sent {
        id: String,
    },
    /// Not sent: a duplicate within the window, or over the hourly cap.
    Suppressed {
        reason: String,
    },
    Failed {
        error: String,
    },
    /// Notifications are off; recorded only.
    Disabled,
}

/// Decide whether an alert should go out now: the dedup window and the hourly cap.
/// Returns the reason to suppress it, if any.
pub fn suppression_reason(
    conn: &Connection,
    alert: &Alert,
    now_ms: i64,
    cfg: &NotificationConfig,
) -> StoreResult<Option<String>> {
    let window_start = now_ms - (cfg.dedup_minutes as i64) * 60_000;
    let recent: Option<i64> = conn
        .query_row(
            "SELECT created_at FROM alerts WHERE dedup_key = ?1 AND status = 'sent' AND created_at > ?2 ORDER BY created_at DESC LIMIT 1",
            params![alert.dedup_key, window_start],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(at) = recent {
        return Ok(Some(format!(
            "same alert sent {} s ago (dedup window {} min)",
            (now_ms - at) / 1000,
            cfg.dedup_minutes
        )));
    }
    let sent_last_hour: i64 = conn.query_row(
        "SELECT COUNT(*) FROM alerts WHERE status = 'sent' AND created_at > ?1",
        params![now_ms - 3_600_000],
        |r| r.get(0),
    )?;
    if sent_last_hour >= cfg.max_per_hour as i64 {
        return Ok(Some(format!(
            "hourly cap of {} mails reached",
            cfg.max_per_hour
        )));
    }
    Ok(None)
}

/// Record an alert row and return its id and idempotency key.
pub fn record_alert(conn: &Connection, alert: &Alert, now_ms: i64) -> StoreResult<(i64, String)> {
    conn.execute(
        "INSERT INTO alerts (kind, dedup_key, subject, body, status, idempotency_key, created_at) VALUES (?1, ?2, ?3, ?4, 'pending', '', ?5)",
        params![alert.kind.as_str(), alert.dedup_key, alert.subject, alert.body, now_ms],
    )?;
    let id = conn.last_insert_rowid();
    // Resend's suggested format: <event-type>/<entity-id>. Unique per alert row, stable across retries.
    let key = format!("{}/{}", alert.kind.as_str(), id);
    conn.execute(
        "UPDATE alerts SET idempotency_key = ?1 WHERE id = ?2",
        params![key, id],
    )?;
    Ok((id, key))
}

pub fn mark_alert(
    conn: &Connection,
    id: i64,
    outcome: &AlertOutcome,
    now_ms: i64,
) -> StoreResult<()> {
    let (status, error) = match outcome {
        AlertOutcome::Sent { .. } => ("sent", None),
        AlertOutcome::Suppressed { reason } => ("suppressed", Some(reason.clone())),
        AlertOutcome::Failed { error } => ("failed", Some(error.clone())),
        AlertOutcome::Disabled => ("suppressed", Some("notifications disabled".to_string())),
    };
    let sent_at = matches!(outcome, AlertOutcome::Sent { .. }).then_some(now_ms);
    conn.execute(
        "UPDATE alerts SET status = ?1, error = ?2, sent_at = ?3 WHERE id = ?4",
        params![status, error, sent_at, id],
    )?;
    Ok(())
}

/// Anything that holds the database connection: a bare `Connection` or a `Store`.
pub trait AlertDb {
    fn db(&self) -> &Connection;
}

impl AlertDb for Connection {
    fn db(&self) -> &Connection {
        self
    }
}

impl AlertDb for crate::store::Store {
    fn db(&self) -> &Connection {
        self.conn()
    }
}

/// Whether an alert with this dedup key was already sent, or recorded as not to be sent
/// (notifications off, deduplicated); a failed attempt does not count, so it is tried again.
/// For alerts that go out once per period whatever the dedup window (`<kind>/<day>` keys).
pub fn already_alerted(conn: &Connection, dedup_key: &str) -> StoreResult<bool> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT id FROM alerts WHERE dedup_key = ?1 AND status IN ('sent', 'suppressed', 'pending') LIMIT 1",
            params![dedup_key],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.is_some())
}

/// Record, deduplicate, rate-limit and e-mail one alert (the e-mail channel alone, for callers
/// that have only a mailer); see [`dispatch`] for every configured channel.
pub async fn notify<D: AlertDb>(
    conn: &std::sync::Mutex<D>,
    client: Option<&ResendClient>,
    cfg: &NotificationConfig,
    alert: &Alert,
    now_ms: i64,
) -> StoreResult<AlertOutcome> {
    let mut channels = AlertChannels::default();
    if let Some(client) = client {
        channels.push(std::sync::Arc::new(channel::EmailChannel::new(
            client.clone(),
            cfg,
        )));
    }
    Ok(dispatch(conn, &channels, cfg, alert, now_ms).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn alert(key: &str) -> Alert {
        Alert {
            kind: AlertKind::ComponentFailing,
            dedup_key: key.into(),
            subject: "exchange down".into(),
            body: "…".into(),
        }
    }

    #[test]
    fn a_repeated_alert_is_suppressed_within_the_window_and_sent_after_it() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let cfg = NotificationConfig::default();
        let a = alert("component_failing/exchange");
        assert_eq!(suppression_reason(c, &a, 1_000_000, &cfg).unwrap(), None);
        let (id, key) = record_alert(c, &a, 1_000_000).unwrap();
        assert_eq!(key, format!("component_failing/{id}"));
        mark_alert(c, id, &AlertOutcome::Sent { id: "x".into() }, 1_000_000).unwrap();
        assert!(
            suppression_reason(c, &a, 1_000_000 + 59 * 60_000, &cfg)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            suppression_reason(c, &a, 1_000_000 + 61 * 60_000, &cfg).unwrap(),
            None
        );
        // a different dedup key is not a duplicate
        assert_eq!(
            suppression_reason(c, &alert("component_failing/llm"), 1_000_001, &cfg).unwrap(),
            None
        );
    }

    #[test]
    fn a_failed_alert_does_not_count_as_already_alerted_but_a_sent_one_does() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let a = alert("llm_budget_spent/2025-01-15");
        assert!(!already_alerted(c, &a.dedup_key).unwrap());
        let (id, _) = record_alert(c, &a, 1_000).unwrap();
        let failed = AlertOutcome::Failed {
            error: "HTTP 500".into(),
        };
        mark_alert(c, id, &failed, 1_000).unwrap();
        assert!(!already_alerted(c, &a.dedup_key).unwrap());
        let (id, _) = record_alert(c, &a, 2_000).unwrap();
        mark_alert(c, id, &AlertOutcome::Sent { id: "m".into() }, 2_000).unwrap();
        assert!(already_alerted(c, &a.dedup_key).unwrap());
        assert!(!already_alerted(c, "llm_budget_spent/2025-01-16").unwrap());
    }

    #[test]
    fn the_hourly_cap_holds_across_keys() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let cfg = NotificationConfig {
            max_per_hour: 3,
            ..Default::default()
        };
        for i in 0..3 {
            let (id, _) = record_alert(c, &alert(&format!("k{i}")), 1_000 + i).unwrap();
            mark_alert(c, id, &AlertOutcome::Sent { id: i.to_string() }, 1_000 + i).unwrap();
        }
        let reason = suppression_reason(c, &alert("k9"), 2_000, &cfg).unwrap();
        assert!(reason.unwrap().contains("hourly cap"));
        assert_eq!(
            suppression_reason(c, &alert("k9"), 1_000 + 3_600_001, &cfg).unwrap(),
            None
        );
    }

    #[test]
    fn config_validation_names_the_key() {
        let cfg = NotificationConfig {
            enabled: true,
            ..Default::default()
        };
        assert_eq!(cfg.validate().unwrap_err().0, "notifications.from");
        let cfg = NotificationConfig {
            enabled: true,
            from: "a <a@b.c>".into(),
            to: vec!["nobody".into()],
            ..Default::default()
        };
        assert_eq!(cfg.validate().unwrap_err().0, "notifications.to");
    }
}
