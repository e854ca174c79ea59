//! Webhook alerts: a POST of the alert as generic JSON, as a Discord message or as a Slack
//! message, to a configured URL; retried with exponential back-off on network errors, 429
//! (after its `Retry-After`) and 5xx, with the same `Idempotency-Key` header each time.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::channel::{AlertChannel, ChannelError, wants};
use super::{Alert, AlertKind};

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"kind", "subject", "body", "dedup_key", "idempotency_key"}`
    #[default]
    Json,
    /// Discord's execute-webhook body: `{"content": ...}` (at most 2000 characters).
    Discord,
    /// Slack's incoming-webhook body: `{"text": ...}`.
    Slack,
}

/// One `[[notifications.webhooks]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The channel is `webhook:<name>` (in `notify test --channel` and the delivery log).
    pub name: String,
    pub enabled: bool,
    /// Where to POST. A Discord or Slack webhook URL is a credential: keep the config private.
    pub url: String,
    pub format: WebhookFormat,
    /// Alert kinds sent here; empty: every kind.
    pub events: Vec<AlertKind>,
    /// Tries per alert (the first included).
    pub max_attempts: u32,
    /// The first retry waits this long; each next one twice as long (at most 60 s).
    pub initial_backoff_ms: u64,
    pub timeout_seconds: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            name: String::new(),
            enabled: true,
            url: String::new(),
            format: WebhookFormat::Json,
            events: Vec::new(),
            max_attempts: 4,
            initial_backoff_ms: 1_000,
            timeout_seconds: 10,
        }
    }
}

impl WebhookConfig {
    /// `Err((key, message))` naming the offending key under `notifications.webhooks[i]`.
    pub fn validate(&self, index: usize) -> Result<(), (String, String)> {
        let key = |k: &str| format!("notifications.webhooks[{index}].{k}");
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                key("name"),
                "give the webhook a name of letters, digits, '-' or '_'".into(),
            ));
        }
        let local =
            self.url.starts_with("http://127.0.0.1") || self.url.starts_with("http://localhost");
        if !(self.url.starts_with("https://") || local) {
            return Err((key("url"), "must be an https:// URL".into()));
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err((key("max_attempts"), "must be between 1 and 10".into()));
        }
        if !(1..=120).contains(&self.timeout_seconds) {
            return Err((key("timeout_seconds"), "must be between 1 and 120".into()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook {name}: cannot build the HTTP client: {detail}")]
    Client { name: String, detail: String },
    #[error("webhook {name}: no answer after {attempts} attempt(s): {detail}")]
    Network {
        name: String,
        attempts: u32,
        detail: String,
    },
    #[error("webhook {name}: HTTP {status} after {attempts} attempt(s): {body}")]
    Status {
        name: String,
        status: u16,
        attempts: u32,
        body: String,
    },
}

/// The body `format` sends for `alert`.
pub fn payload(format: WebhookFormat, alert: &Alert, idempotency_key: &str) -> Value {
    match format {
        WebhookFormat::Json => json!({
            "kind": alert.kind.as_str(),
            "subject": alert.subject,
            "body": alert.body,
            "dedup_key": alert.dedup_key,
            "idempotency_key": idempotency_key,
        }),
        WebhookFormat::Discord => {
            let text = format!("**{}**\n{}", alert.subject, alert.body);
            json!({ "content": truncate(&text, 2000) })
        }
        WebhookFormat::Slack => json!({ "text": format!("*{}*\n{}", alert.subject, alert.body) }),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A configured webhook.
pub struct WebhookChannel {
    config: WebhookConfig,
    http: reqwest::Client,
}

impl WebhookChannel {
    pub fn new(config: WebhookConfig) -> Result<Self, WebhookError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .user_agent(concat!("trademind/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client {
                name: config.name.clone(),
                detail: e.to_string(),
            })?;
        Ok(WebhookChannel { config, http })
    }

    async fn post(&self, alert: &Alert, idempotency_key: &str) -> Result<String, WebhookError> {
        let body = payload(self.config.format, alert, idempotency_key);
        let name = self.config.name.clone();
        let max = self.config.max_attempts.max(1);
        let mut wait = Duration::from_millis(self.config.initial_backoff_ms.max(1));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .http
                .post(&self.config.url)
                .header("Idempotency-Key", idempotency_key)
                .json(&body)
                .send()
                .await;
            let (retry, error) = match sent {
                // The URL may hold the webhook's token: never in an error text.
                Err(e) => (
                    true,
                    WebhookError::Network {
                        name: name.clone(),
                        attempts: attempt,
                        detail: e.without_url().to_string(),
                    },
                ),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok());
                    let text = response.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return Ok(format!("HTTP {status}"));
                    }
                    if let Some(secs) = retry_after.filter(|_| status == 429) {
                        wait = Duration::from_secs_f64(secs.clamp(0.0, 60.0));
                    }
                    (
                        status == 429 || status >= 500,
                        WebhookError::Status {
                            name: name.clone(),
                            status,
                            attempts: attempt,
                            body: truncate(&text, 300),
                        },
                    )
                }
            };
            if !retry || attempt >= max {
                return Err(error);
            }
            tracing::debug!(webhook = %name, attempt, ?wait, "webhook delivery retried");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
}

impl AlertChannel for WebhookChannel {
    fn name(&self) -> String {
        format!("webhook:{}", self.config.name)
    }

    fn wants(&self, kind: AlertKind) -> bool {
        kind == AlertKind::Test || wants(&self.config.events, kind)
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<String, ChannelError>> {
        Box::pin(async move { Ok(self.post(alert, idempotency_key).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            kind: AlertKind::StopOrTargetHit,
            dedup_key: "stop_or_target_hit/sl-1".into(),
            subject: "TradeMind: stop hit on BTCUSDT".into(),
            body: "x".repeat(3000),
        }
    }

    #[test]
    fn each_format_carries_the_subject_and_discord_stays_under_its_limit() {
        let a = alert();
        let j = payload(WebhookFormat::Json, &a, "k/1");
        assert_eq!(j["kind"], "stop_or_target_hit");
        assert_eq!(j["idempotency_key"], "k/1");
        let d = payload(WebhookFormat::Discord, &a, "k/1");
        let content = d["content"].as_str().unwrap();
        assert!(content.starts_with("**TradeMind: stop hit on BTCUSDT**"));
        assert_eq!(content.chars().count(), 2000);
        let s = payload(WebhookFormat::Slack, &a, "k/1");
        assert!(
            s["text"]
                .as_str()
                .unwrap()
                .starts_with("*TradeMind: stop hit")
        );
    }

    #[test]
    fn a_webhook_config_names_its_bad_key() {
        let ok = WebhookConfig {
            name: "ops".into(),
            url: "https://example.com/hook".into(),
            ..WebhookConfig::default()
        };
        assert!(ok.validate(0).is_ok());
        let plain = WebhookConfig {
            url: "http://example.com/hook".into(),
            ..ok.clone()
        };
        assert_eq!(
            plain.validate(2).unwrap_err().0,
            "notifications.webhooks[2].url"
        );
        let unnamed = WebhookConfig {
            name: "".into(),
            ..ok
        };
        assert_eq!(
            unnamed.validate(0).unwrap_err().0,
            "notifications.webhooks[0].name"
        );
    }
}
