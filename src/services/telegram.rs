//! A Telegram Bot API client (core.telegram.org/bots/api) for long polling: `getUpdates`,
//! `sendMessage` with an inline keyboard, `editMessageText`, `answerCallbackQuery`. A 429 is
//! honoured: the call waits `parameters.retry_after` and is sent again (a few times at most).
//! The token is part of every URL, so no error text ever carries a URL.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::services::notification::AlertKind;

/// `[telegram]` in the config. The token is not here: it lives in the keyring
/// (`trademind keys set telegram`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// Run the bot in the daemon and send alerts to the chats.
    pub enabled: bool,
    /// Bot API root.
    pub base_url: String,
    /// The only chats the bot answers and alerts (a user's id for a private chat); anyone else
    /// is ignored and logged.
    pub chat_ids: Vec<i64>,
    /// How long a confirmation button of /pause, /resume, /kill, /close stays valid.
    pub confirm_seconds: u64,
    /// UTC hour (0-23) of the daily summary; unset: none.
    pub daily_summary_hour: Option<u8>,
    /// Long-polling wait of one getUpdates call, 1-50 s.
    pub poll_timeout_seconds: u64,
    /// Alert kinds sent to the chats; empty: all.
    pub events: Vec<AlertKind>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            enabled: false,
            base_url: "https://api.telegram.org".into(),
            chat_ids: Vec::new(),
            confirm_seconds: 60,
            daily_summary_hour: None,
            poll_timeout_seconds: 30,
            events: Vec::new(),
        }
    }
}

impl TelegramConfig {
    /// `Err((key, message))` naming the offending key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.chat_ids.is_empty() {
            return Err((
                "telegram.chat_ids".into(),
                "list at least one chat id when the bot is enabled (send /start to the bot, \
                 then read your id from getUpdates or @userinfobot)"
                    .into(),
            ));
        }
        if !(self.base_url.starts_with("https://")
            || self.base_url.starts_with("http://127.0.0.1")
            || self.base_url.starts_with("http://localhost"))
        {
            return Err(("telegram.base_url".into(), "must be an https:// URL".into()));
        }
        if !(5..=3600).contains(&self.confirm_seconds) {
            return Err((
                "telegram.confirm_seconds".into(),
                "must be between 5 and 3600".into(),
            ));
        }
        if self.daily_summary_hour.is_some_and(|h| h > 23) {
            return Err((
                "telegram.daily_summary_hour".into(),
                "must be an hour from 0 to 23 (UTC)".into(),
            ));
        }
        if !(1..=50).contains(&self.poll_timeout_seconds) {
            return Err((
                "telegram.poll_timeout_seconds".into(),
                "must be between 1 and 50".into(),
            ));
        }
        Ok(())
    }
}
use serde_json::{Value, json};

/// How many 429s one call sits out before giving up.
const MAX_THROTTLED: u32 = 3;
/// The longest `retry_after` honoured in place; a longer one is returned to the caller.
const MAX_RETRY_AFTER_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("Telegram refused the bot token (401): store the token BotFather gave you")]
    Unauthorized,
    #[error("Telegram asked to wait {retry_after_secs} s (429) and the wait is over budget")]
    RateLimited { retry_after_secs: u64 },
    #[error("Telegram refused {method} ({code}): {description}")]
    Api {
        method: String,
        code: u16,
        description: String,
    },
    #[error("no answer from Telegram for {method}: {detail}")]
    Network { method: String, detail: String },
    #[error("Telegram's answer to {method} could not be read: {detail}")]
    Malformed { method: String, detail: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Chat {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub data: Option<String>,
}

/// One update; kinds the bot does not handle have neither field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// A bot's client. The token is held privately and never printed.
#[derive(Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

impl std::fmt::Debug for TelegramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramClient")
            .field("base_url", &self.base_url)
            .field("token", &"***")
            .finish()
    }
}

impl TelegramClient {
    /// `base_url` is `https://api.telegram.org` (or a fake's).
    pub fn new(base_url: &str, token: &str) -> Result<Self, TelegramError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TelegramError::Network {
                method: "client".into(),
                detail: e.to_string(),
            })?;
        Ok(TelegramClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// Call `method` with a JSON body; waits out up to [`MAX_THROTTLED`] 429s.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<T, TelegramError> {
        let url = format!("{}/bot{}/{method}", self.base_url, self.token);
        let mut throttled = 0;
        loop {
            let response = self
                .http
                .post(&url)
                .timeout(timeout)
                .json(body)
                .send()
                .await
                .map_err(|e| TelegramError::Network {
                    method: method.into(),
                    detail: e.without_url().to_string(),
                })?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(|e| TelegramError::Network {
                method: method.into(),
                detail: e.without_url().to_string(),
            })?;
            let answer: Answer =
                serde_json::from_str(&text).map_err(|e| TelegramError::Malformed {
                    method: method.into(),
                    detail: e.to_string(),
                })?;
            if answer.ok {
                let result = answer.result.unwrap_or(Value::Null);
                return serde_json::from_value(result).map_err(|e| TelegramError::Malformed {
                    method: method.into(),
                    detail: e.to_string(),
                });
            }
            let code = answer.error_code.unwrap_or(status);
            if code == 401 {
                return Err(TelegramError::Unauthorized);
            }
            if code == 429 {
                let retry_after_secs = answer.parameters.and_then(|p| p.retry_after).unwrap_or(1);
                throttled += 1;
                if throttled > MAX_THROTTLED || retry_after_secs > MAX_RETRY_AFTER_SECS {
                    return Err(TelegramError::RateLimited { retry_after_secs });
                }
                tracing::debug!(method, retry_after_secs, "Telegram asked to wait");
                tokio::time::sleep(Duration::from_secs(retry_after_secs)).await;
                continue;
            }
            return Err(TelegramError::Api {
                method: method.into(),
                code,
                description: answer.description.unwrap_or_default(),
            });
        }
    }

    /// The bot itself (`getMe`): a cheap check that the token is accepted.
    pub async fn get_me(&self) -> Result<User, TelegramError> {
        self.call("getMe", &json!({}), Duration::from_secs(15))
            .await
    }

    /// Updates from `offset` on (confirming every earlier one), waiting up to `timeout_secs`
    /// for one to arrive.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_secs: u64,
    ) -> Result<Vec<Update>, TelegramError> {
        let mut body = json!({
            "timeout": timeout_secs,
            "allowed_updates": ["message", "callback_query"],
        });
        if let Some(o) = offset {
            body["offset"] = json!(o);
        }
        // The HTTP timeout outlasts the long poll.
        let timeout = Duration::from_secs(timeout_secs + 10);
        self.call("getUpdates", &body, timeout).await
    }

    /// Send `text` to `chat_id`, with one row of inline buttons (label, callback data) if any.
    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        buttons: &[(String, String)],
    ) -> Result<Message, TelegramError> {
        let mut body = json!({ "chat_id": chat_id, "text": text });
        if !buttons.is_empty() {
            body["reply_markup"] = inline_keyboard(buttons);
        }
        self.call("sendMessage", &body, Duration::from_secs(30))
            .await
    }

    /// Replace the text of the bot's message (its buttons go with it).
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
    ) -> Result<Message, TelegramError> {
        let body = json!({ "chat_id": chat_id, "message_id": message_id, "text": text });
        self.call("editMessageText", &body, Duration::from_secs(30))
            .await
    }

    /// Stop the button's spinner, showing `text` as a notification if given.
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: Option<&str>,
    ) -> Result<(), TelegramError> {
        let mut body = json!({ "callback_query_id": callback_query_id });
        if let Some(t) = text {
            body["text"] = json!(t);
        }
        let _: bool = self
            .call("answerCallbackQuery", &body, Duration::from_secs(30))
            .await?;
        Ok(())
    }
}

fn inline_keyboard(buttons: &[(String, String)]) -> Value {
    let row: Vec<Value> = buttons
        .iter()
        .map(|(label, data)| json!({ "text": label, "callback_data": data }))
        .collect();
    json!({ "inline_keyboard": [row] })
}
