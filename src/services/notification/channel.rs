//! The alert channels behind one trait: e-mail (Resend) and webhooks (generic JSON, Discord,
//! Slack). `dispatch` records the alert once, then hands it to every channel that wants its kind,
//! each at most once per alert: a delivery row with a unique (dedup key, channel) is claimed in
//! the database before anything is sent, so a restart, a second process or a repeat never
//! delivers the same alert twice on one channel.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use rusqlite::{Connection, params};

use super::webhook::{WebhookChannel, WebhookError};
use super::{
    Alert, AlertDb, AlertKind, AlertOutcome, NotificationConfig, ResendClient, ResendError,
    mark_alert, record_alert, suppression_reason,
};
use crate::store::{StoreError, StoreResult};

/// Why a channel could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Email(#[from] ResendError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Telegram(#[from] crate::services::telegram::TelegramError),
}

/// One way out for alerts.
pub trait AlertChannel: Send + Sync {
    /// As the config and `notify test --channel` name it: `email`, `webhook:<name>`.
    fn name(&self) -> String;
    /// Whether alerts of `kind` go out here (the channel's `events` filter).
    fn wants(&self, kind: AlertKind) -> bool;
    /// Deliver once; `idempotency_key` is the same on every retry of this alert. Returns the
    /// receiver's id for it, if it gives one.
    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<String, ChannelError>>;
}

/// `events = []` means every kind.
pub fn wants(events: &[AlertKind], kind: AlertKind) -> bool {
    events.is_empty() || events.contains(&kind)
}

/// E-mail through Resend to the configured recipients.
pub struct EmailChannel {
    client: ResendClient,
    from: String,
    to: Vec<String>,
    events: Vec<AlertKind>,
}

impl EmailChannel {
    pub fn new(client: ResendClient, cfg: &NotificationConfig) -> Self {
        EmailChannel {
            client,
            from: cfg.from.clone(),
            to: cfg.to.clone(),
            events: cfg.events.clone(),
        }
    }
}

impl AlertChannel for EmailChannel {
    fn name(&self) -> String {
        EMAIL.to_string()
    }

    fn wants(&self, kind: AlertKind) -> bool {
        kind == AlertKind::Test || wants(&self.events, kind)
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<String, ChannelError>> {
        Box::pin(async move {
            Ok(self
                .client
                .send(
                    &self.from,
                    &self.to,
                    &alert.subject,
                    &alert.body,
                    idempotency_key,
                )
                .await?)
        })
    }
}

/// The e-mail channel's name.
pub const EMAIL: &str = "email";

/// The channels alerts go out on.
#[derive(Clone, Default)]
pub struct AlertChannels {
    channels: Vec<Arc<dyn AlertChannel>>,
}

impl AlertChannels {
    /// E-mail when `mailer` is set up, and every enabled webhook of the config.
    pub fn from_config(
        cfg: &NotificationConfig,
        mailer: Option<&ResendClient>,
    ) -> Result<Self, WebhookError> {
        let mut channels: Vec<Arc<dyn AlertChannel>> = Vec::new();
        if let Some(client) = mailer {
            channels.push(Arc::new(EmailChannel::new(client.clone(), cfg)));
        }
        for hook in cfg.webhooks.iter().filter(|w| w.enabled) {
            channels.push(Arc::new(WebhookChannel::new(hook.clone())?));
        }
        Ok(AlertChannels { channels })
    }

    pub fn push(&mut self, channel: Arc<dyn AlertChannel>) {
        self.channels.push(channel);
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name()).collect()
    }

    /// Only the channel called `name`.
    pub fn only(&self, name: &str) -> Option<AlertChannels> {
        let found = self.channels.iter().find(|c| c.name() == name)?;
        Some(AlertChannels {
            channels: vec![found.clone()],
        })
    }
}

/// What became of an alert on each channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub channel: String,
    #[serde(flatten)]
    pub outcome: AlertOutcome,
}

/// Claim the delivery of `alert` on `channel`: true when this call may send it. A delivery
/// already sent (or being sent) is not claimed again; a failed one is, and so is one of a kind
/// that repeats (a component failing again) once the dedup window has passed. One statement,
/// so two processes cannot both claim it.
pub fn claim_delivery(
    conn: &Connection,
    alert: &Alert,
    alert_id: i64,
    channel: &str,
    window_ms: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let changed = conn.execute(
        "INSERT INTO alert_deliveries (alert_id, dedup_key, channel, status, attempts, created_at)
         VALUES (?1, ?2, ?3, 'pending', 1, ?4)
         ON CONFLICT (dedup_key, channel) DO UPDATE
            SET alert_id = excluded.alert_id, status = 'pending', error = NULL,
                attempts = attempts + 1, created_at = excluded.created_at, sent_at = NULL
          WHERE status = 'failed'
             OR (?5 AND created_at <= ?4 - ?6)",
        params![
            alert_id,
            alert.dedup_key,
            channel,
            now_ms,
            alert.kind.repeats(),
            window_ms
        ],
    )?;
    Ok(changed == 1)
}

/// Record how a claimed delivery ended.
pub fn finish_delivery(
    conn: &Connection,
    dedup_key: &str,
    channel: &str,
    outcome: &Result<String, String>,
    now_ms: i64,
) -> StoreResult<()> {
    let (status, remote, error, sent_at) = match outcome {
        Ok(id) => ("sent", Some(id.as_str()), None, Some(now_ms)),
        Err(e) => ("failed", None, Some(e.as_str()), None),
    };
    conn.execute(
        "UPDATE alert_deliveries SET status = ?3, remote_id = ?4, error = ?5, sent_at = ?6
         WHERE dedup_key = ?1 AND channel = ?2",
        params![dedup_key, channel, status, remote, error, sent_at],
    )?;
    Ok(())
}

fn poisoned() -> StoreError {
    StoreError::Conflict("database lock poisoned".into())
}

/// Record, deduplicate, rate-limit and deliver one alert on every channel that wants it. The
/// store lock is not held across the network calls. The alert's own row says `sent` when any
/// channel delivered it.
pub async fn dispatch<D: AlertDb>(
    conn: &std::sync::Mutex<D>,
    channels: &AlertChannels,
    cfg: &NotificationConfig,
    alert: &Alert,
    now_ms: i64,
) -> StoreResult<(AlertOutcome, Vec<Delivery>)> {
    let window_ms = i64::try_from(cfg.dedup_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX);
    let (id, key, suppressed) = {
        let guard = conn.lock().map_err(|_| poisoned())?;
        let c = guard.db();
        let suppressed = suppression_reason(c, alert, now_ms, cfg)?;
        let (id, key) = record_alert(c, alert, now_ms)?;
        (id, key, suppressed)
    };
    let mut deliveries = Vec::new();
    let overall = if let Some(reason) = suppressed {
        AlertOutcome::Suppressed { reason }
    } else if channels.is_empty() {
        AlertOutcome::Disabled
    } else {
        for channel in channels.channels.iter().filter(|c| c.wants(alert.kind)) {
            let name = channel.name();
            let claimed = {
                let guard = conn.lock().map_err(|_| poisoned())?;
                claim_delivery(guard.db(), alert, id, &name, window_ms, now_ms)?
            };
            if !claimed {
                deliveries.push(Delivery {
                    channel: name,
                    outcome: AlertOutcome::Suppressed {
                        reason: "already delivered on this channel".into(),
                    },
                });
                continue;
            }
            let result = channel
                .deliver(alert, &key)
                .await
                .map_err(|e| e.to_string());
            {
                let guard = conn.lock().map_err(|_| poisoned())?;
                finish_delivery(guard.db(), &alert.dedup_key, &name, &result, now_ms)?;
            }
            match &result {
                Ok(_) => tracing::info!(channel = %name, kind = alert.kind.as_str(),
                    subject = %alert.subject, "alert delivered"),
                Err(e) => tracing::warn!(channel = %name, kind = alert.kind.as_str(),
                    error = %e, "alert not delivered"),
            }
            deliveries.push(Delivery {
                channel: name,
                outcome: match result {
                    Ok(id) => AlertOutcome::Sent { id },
                    Err(error) => AlertOutcome::Failed { error },
                },
            });
        }
        combine(&deliveries)
    };
    let guard = conn.lock().map_err(|_| poisoned())?;
    mark_alert(guard.db(), id, &overall, now_ms)?;
    Ok((overall, deliveries))
}

/// One outcome for the alert row: sent if any channel sent it, else failed if one failed, else
/// suppressed.
fn combine(deliveries: &[Delivery]) -> AlertOutcome {
    if let Some(sent) = deliveries
        .iter()
        .find(|d| matches!(d.outcome, AlertOutcome::Sent { .. }))
    {
        return sent.outcome.clone();
    }
    if let Some(failed) = deliveries
        .iter()
        .find(|d| matches!(d.outcome, AlertOutcome::Failed { .. }))
    {
        return failed.outcome.clone();
    }
    match deliveries.first() {
        Some(d) => d.outcome.clone(),
        None => AlertOutcome::Suppressed {
            reason: "no channel takes this kind of alert".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn alert(kind: AlertKind, key: &str) -> Alert {
        Alert {
            kind,
            dedup_key: key.into(),
            subject: "s".into(),
            body: "b".into(),
        }
    }

    #[test]
    fn a_delivery_is_claimed_once_per_channel_and_again_only_after_a_failure() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let a = alert(AlertKind::StopOrTargetHit, "stop_or_target_hit/sl-1");
        let (id, _) = record_alert(c, &a, 1_000).unwrap();
        assert!(claim_delivery(c, &a, id, "email", 3_600_000, 1_000).unwrap());
        // The same alert again (a restart, another process): not on the same channel...
        assert!(!claim_delivery(c, &a, id, "email", 3_600_000, 2_000).unwrap());
        // ...but on another one, once.
        assert!(claim_delivery(c, &a, id, "webhook:ops", 3_600_000, 2_000).unwrap());
        finish_delivery(
            c,
            &a.dedup_key,
            "webhook:ops",
            &Err("HTTP 500".into()),
            2_000,
        )
        .unwrap();
        assert!(claim_delivery(c, &a, id, "webhook:ops", 3_600_000, 3_000).unwrap());
        finish_delivery(c, &a.dedup_key, "webhook:ops", &Ok("x".into()), 3_000).unwrap();
        assert!(!claim_delivery(c, &a, id, "webhook:ops", 3_600_000, 4_000).unwrap());
        // A one-off event is never delivered twice, even after the window.
        assert!(!claim_delivery(c, &a, id, "email", 3_600_000, 10_000_000).unwrap());
    }

    #[test]
    fn a_repeating_alert_is_delivered_again_once_its_window_has_passed() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let a = alert(AlertKind::ComponentFailing, "component_failing/exchange");
        let (id, _) = record_alert(c, &a, 1_000).unwrap();
        assert!(claim_delivery(c, &a, id, "email", 60_000, 1_000).unwrap());
        finish_delivery(c, &a.dedup_key, "email", &Ok("m".into()), 1_000).unwrap();
        assert!(!claim_delivery(c, &a, id, "email", 60_000, 30_000).unwrap());
        assert!(claim_delivery(c, &a, id, "email", 60_000, 61_000).unwrap());
    }
}
