//! The OpenAI-compatible client: `POST {base}/chat/completions` with a JSON-schema
//! `response_format`, or xAI's `POST {base}/responses` with the `web_search`/`x_search` tools.
//! 429 honours Retry-After, 5xx backs off, a timeout is an error the caller records as a HOLD.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

use super::config::{ApiKey, LlmConfig};

/// xAI reports cost in ticks: 1 USD = 10^10 ticks.
const TICKS_PER_USD: i64 = 10_000_000_000;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// The model's text and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmReply {
    /// The assistant's text (the decision JSON, if the model behaved).
    pub content: String,
    /// The whole HTTP response body, for the flight recorder.
    pub raw: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Reported by the server (`usage.cost_in_usd_ticks`) or computed from configured prices.
    pub cost_usd: Option<Decimal>,
    /// Requests made, retries included.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM did not answer within {0} s (raise llm.timeout_secs or check the server)")]
    Timeout(u64),
    #[error("cannot reach the LLM server: {0}")]
    Network(String),
    #[error("the LLM server rejected the API key (HTTP {status}): {body}")]
    Unauthorized { status: u16, body: String },
    #[error("rate limited by the LLM server after {attempts} attempts")]
    RateLimited { attempts: u32 },
    #[error("the LLM server answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("unreadable LLM response: {0}")]
    Decode(String),
    #[error("the model refused: {0}")]
    Refused(String),
    #[error(
        "the LLM reply passed llm.max_reply_bytes ({limit} bytes); reading stopped there and the reply was discarded"
    )]
    TooLarge { limit: usize },
}

/// Read a response body, at most `limit` bytes of it: the body is streamed and reading stops
/// as soon as it passes the cap, so a runaway or hostile server costs `limit` bytes of memory,
/// not the size of its reply. `Ok(None)` means the cap was passed.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let hint = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    if hint > limit {
        return Ok(None);
    }
    let mut body = Vec::with_capacity(hint);
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Talks to one OpenAI-compatible server with one key.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
    key: ApiKey,
}

#[derive(Deserialize)]
struct ChatUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    cost_in_usd_ticks: Option<i64>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cost_in_usd_ticks: Option<i64>,
}

impl LlmClient {
    pub fn new(config: LlmConfig, key: ApiKey) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .build()
            .map_err(|e| LlmError::Network(e.to_string()))?;
        Ok(LlmClient { http, config, key })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    fn request_body(&self, messages: &[ChatMessage], schema: &Value) -> (String, Value) {
        let base = self.config.base_url.trim_end_matches('/');
        if self.config.use_grok_search {
            let body = json!({
                "model": self.config.model,
                "input": messages,
                "temperature": self.config.temperature,
                "max_output_tokens": self.config.max_tokens,
                "tools": [{"type": "web_search"}, {"type": "x_search"}],
                "text": {"format": {
                    "type": "json_schema", "name": "trading_decision", "schema": schema, "strict": true
                }},
                "store": false,
            });
            (format!("{base}/responses"), body)
        } else {
            let body = json!({
                "model": self.config.model,
                "messages": messages,
                "temperature": self.config.temperature,
                "max_completion_tokens": self.config.max_tokens,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "trading_decision", "schema": schema, "strict": true
                }},
            });
            (format!("{base}/chat/completions"), body)
        }
    }

    /// Send the conversation and return the model's text; retries 429 and 5xx.
    pub async fn complete(
        &self,
        messages: &[ChatMessage],
        schema: &Value,
    ) -> Result<LlmReply, LlmError> {
        let (url, body) = self.request_body(messages, schema);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let sent = self
                .http
                .post(&url)
                .bearer_auth(self.key.expose())
                .json(&body)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Err(LlmError::Timeout(self.config.timeout_secs));
                }
                Err(e) => return Err(LlmError::Network(e.to_string())),
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let limit = self.config.max_reply_bytes;
            let text = match read_capped(response, limit).await {
                Ok(Some(bytes)) => crate::secrets::redact(
                    String::from_utf8_lossy(&bytes).into_owned(),
                    self.key.expose(),
                ),
                Ok(None) => return Err(LlmError::TooLarge { limit }),
                Err(e) if e.is_timeout() => {
                    return Err(LlmError::Timeout(self.config.timeout_secs));
                }
                Err(e) => return Err(LlmError::Network(e.to_string())),
            };
            let retries_left = attempts <= self.config.max_retries;
            match status {
                200..=299 => return self.parse_reply(text, attempts),
                401 | 403 => return Err(LlmError::Unauthorized { status, body: text }),
                429 if retries_left => {
                    let wait = match retry_after {
                        Some(secs) if secs > self.config.max_retry_after_secs => {
                            return Err(LlmError::RateLimited { attempts });
                        }
                        Some(secs) => Duration::from_secs(secs),
                        None => self.backoff(attempts),
                    };
                    tracing::warn!(
                        attempts,
                        wait_ms = wait.as_millis() as u64,
                        "LLM rate limited; waiting"
                    );
                    tokio::time::sleep(wait).await;
                }
                429 => return Err(LlmError::RateLimited { attempts }),
                500..=599 if retries_left => {
                    let wait = self.backoff(attempts);
                    tracing::warn!(status, attempts, "LLM server error; retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(LlmError::Http { status, body: text }),
            }
        }
    }

    /// `GET /models`: the cheapest authenticated call (no tokens spent), to check the key.
    /// Returns the model ids the key can use.
    pub async fn list_models(&self) -> Result<Vec<String>, LlmError> {
        let url = format!("{}/models", self.config.base_url.trim_end_matches('/'));
        let response = self
            .http
            .get(&url)
            .bearer_auth(self.key.expose())
            .send()
            .await
            .map_err(|e| match e.is_timeout() {
                true => LlmError::Timeout(self.config.timeout_secs),
                false => LlmError::Network(crate::services::describe_http_error(e)),
            })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| LlmError::Network(crate::services::describe_http_error(e)))?;
        let text = crate::secrets::redact(text, self.key.expose());
        match status {
            200..=299 => {}
            401 | 403 => return Err(LlmError::Unauthorized { status, body: text }),
            _ => return Err(LlmError::Http { status, body: text }),
        }
        let value: Value =
            serde_json::from_str(&text).map_err(|e| LlmError::Decode(e.to_string()))?;
        Ok(value["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(10);
        Duration::from_millis(self.config.retry_base_ms.saturating_mul(factor))
    }

    fn parse_reply(&self, raw: String, attempts: u32) -> Result<LlmReply, LlmError> {
        parse_reply(&self.config, raw, attempts)
    }
}

/// Read a 2xx response body of either API (chat completions, or responses when
/// `use_grok_search`): the assistant's text, tokens and cost. Public for the fuzz targets.
pub fn parse_reply(config: &LlmConfig, raw: String, attempts: u32) -> Result<LlmReply, LlmError> {
    let value: Value = serde_json::from_str(&raw).map_err(|e| LlmError::Decode(e.to_string()))?;
    let (content, prompt_tokens, completion_tokens, ticks) = if config.use_grok_search {
        let usage: Option<ResponsesUsage> = value
            .get("usage")
            .and_then(|u| serde_json::from_value(u.clone()).ok());
        let mut text = String::new();
        let mut refusal = None;
        for item in value["output"].as_array().into_iter().flatten() {
            if item["type"] != "message" {
                continue;
            }
            for part in item["content"].as_array().into_iter().flatten() {
                match part["type"].as_str() {
                    Some("output_text") => text.push_str(part["text"].as_str().unwrap_or("")),
                    Some("refusal") => refusal = part["refusal"].as_str().map(str::to_string),
                    _ => {}
                }
            }
        }
        if text.is_empty() {
            if let Some(r) = refusal {
                return Err(LlmError::Refused(r));
            }
            return Err(LlmError::Decode("no output_text in the response".into()));
        }
        let (i, o, t) = usage
            .map(|u| (u.input_tokens, u.output_tokens, u.cost_in_usd_ticks))
            .unwrap_or_default();
        (text, i, o, t)
    } else {
        let message = &value["choices"][0]["message"];
        if let Some(refusal) = message["refusal"].as_str() {
            return Err(LlmError::Refused(refusal.to_string()));
        }
        let Some(text) = message["content"].as_str() else {
            return Err(LlmError::Decode("no choices[0].message.content".into()));
        };
        let usage: Option<ChatUsage> = value
            .get("usage")
            .and_then(|u| serde_json::from_value(u.clone()).ok());
        let (i, o, t) = usage
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.cost_in_usd_ticks))
            .unwrap_or_default();
        (text.to_string(), i, o, t)
    };
    let cost_usd = match ticks {
        Some(t) => Some(Decimal::from(t) / Decimal::from(TICKS_PER_USD)),
        None => match (prompt_tokens, completion_tokens) {
            (Some(p), Some(c)) => config.priced_cost(p, c),
            _ => None,
        },
    };
    Ok(LlmReply {
        content,
        raw,
        prompt_tokens,
        completion_tokens,
        cost_usd,
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn client(search: bool) -> LlmClient {
        let config = LlmConfig {
            use_grok_search: search,
            ..LlmConfig::default()
        };
        LlmClient::new(config, ApiKey::new("k")).unwrap()
    }

    #[test]
    fn ticks_are_converted_at_ten_billion_per_dollar() {
        // The docs' example: 37 756 000 ticks = $0.0037756.
        let raw = r#"{"choices":[{"message":{"content":"{}"}}],
            "usage":{"prompt_tokens":10,"completion_tokens":5,"cost_in_usd_ticks":37756000}}"#;
        let reply = client(false).parse_reply(raw.into(), 1).unwrap();
        assert_eq!(reply.cost_usd, Some(dec!(0.0037756)));
    }

    #[test]
    fn missing_cost_falls_back_to_configured_prices() {
        let raw = r#"{"choices":[{"message":{"content":"{}"}}],
            "usage":{"prompt_tokens":2000,"completion_tokens":1000}}"#;
        let reply = client(false).parse_reply(raw.into(), 1).unwrap();
        // 2000 * 1.25 / 1e6 + 1000 * 2.5 / 1e6 = 0.0025 + 0.0025
        assert_eq!(reply.cost_usd, Some(dec!(0.005)));
    }

    #[test]
    fn responses_api_output_text_is_read() {
        let raw = r#"{"object":"response","output":[{"type":"web_search_call"},
            {"type":"message","content":[{"type":"output_text","text":"{\"a\":1}","annotations":[]}]}],
            "usage":{"input_tokens":3,"output_tokens":4,"cost_in_usd_ticks":10000000000}}"#;
        let reply = client(true).parse_reply(raw.into(), 1).unwrap();
        assert_eq!(reply.content, "{\"a\":1}");
        assert_eq!(reply.cost_usd, Some(dec!(1)));
    }

    #[test]
    fn search_mode_targets_responses_with_tools_and_never_search_parameters() {
        let (url, body) = client(true).request_body(&[ChatMessage::user("x")], &json!({}));
        assert!(url.ends_with("/v1/responses"));
        assert_eq!(body["tools"][0]["type"], "web_search");
        assert!(body.get("search_parameters").is_none());
        let (url, body) = client(false).request_body(&[ChatMessage::user("x")], &json!({}));
        assert!(url.ends_with("/v1/chat/completions"));
        assert_eq!(body["response_format"]["type"], "json_schema");
    }
}
