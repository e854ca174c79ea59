//! Alerts as Telegram messages to the configured chats (`[telegram]`), behind the same
//! `AlertChannel` trait as e-mail and webhooks, so the delivery log sends each alert at most
//! once on this channel, across restarts too.

use futures_util::future::BoxFuture;

use super::channel::{AlertChannel, ChannelError, wants};
use super::{Alert, AlertKind};
use crate::services::telegram::{TelegramClient, TelegramConfig};

/// The channel's name in the delivery log and `notify test --channel`.
pub const TELEGRAM: &str = "telegram";

/// Telegram's limit on one message's text, in characters.
const MAX_TEXT_CHARS: usize = 4096;

pub struct TelegramChannel {
    client: TelegramClient,
    chat_ids: Vec<i64>,
    events: Vec<AlertKind>,
}

impl TelegramChannel {
    pub fn new(client: TelegramClient, cfg: &TelegramConfig) -> Self {
        TelegramChannel {
            client,
            chat_ids: cfg.chat_ids.clone(),
            events: cfg.events.clone(),
        }
    }
}

/// The alert as one message: subject, blank line, body, cut to Telegram's limit.
pub fn message_text(alert: &Alert) -> String {
    let text = format!("{}\n\n{}", alert.subject, alert.body);
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_TEXT_CHARS - 1).collect();
    cut.push('…');
    cut
}

impl AlertChannel for TelegramChannel {
    fn name(&self) -> String {
        TELEGRAM.to_string()
    }

    /// The daily summary is asked for under `[telegram]` (`daily_summary_hour`), so it comes
    /// to the chats whatever `telegram.events` lists.
    fn wants(&self, kind: AlertKind) -> bool {
        matches!(kind, AlertKind::Test | AlertKind::DailySummary) || wants(&self.events, kind)
    }

    /// One message per chat. Delivered when any chat got it: a retry after a partial failure
    /// would send the alert twice to the chats that did get it.
    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        _idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<String, ChannelError>> {
        Box::pin(async move {
            let text = message_text(alert);
            let mut sent = Vec::new();
            let mut last_error = None;
            for &chat_id in &self.chat_ids {
                match self.client.send_message(chat_id, &text, &[]).await {
                    Ok(m) => sent.push(format!("{chat_id}/{}", m.message_id)),
                    Err(e) => {
                        tracing::warn!(chat_id, error = %e, "Telegram alert not sent to this chat");
                        last_error = Some(e);
                    }
                }
            }
            match (sent.is_empty(), last_error) {
                (true, Some(e)) => Err(e.into()),
                _ => Ok(sent.join(",")),
            }
        })
    }
}
