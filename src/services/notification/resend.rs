//! The Resend client: `POST {base}/emails` with Bearer auth, a `User-Agent` (Resend answers 403
//! without one) and an `Idempotency-Key`. 429 and 5xx are retried with the same key, so a retry
//! can never deliver twice; other errors are final and say what to fix.

use serde::{Deserialize, Serialize};
use std::time::Duration;

const USER_AGENT: &str = concat!("trademind/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    #[error("Resend rejected the API key ({name}): check `trademind keys set resend`")]
    Auth { name: String },
    #[error("Resend refused the e-mail ({status} {name}): {message}")]
    Rejected {
        status: u16,
        name: String,
        message: String,
    },
    #[error("Resend rate limit: still limited after {attempts} attempts")]
    RateLimited { attempts: u32 },
    #[error("Resend unavailable ({status}) after {attempts} attempts")]
    Unavailable { status: u16, attempts: u32 },
    #[error("cannot reach Resend: {0}")]
    Network(String),
    #[error("unexpected answer from Resend: {0}")]
    Malformed(String),
}

/// What a valid Resend key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAccess {
    Full,
    SendingOnly,
}

#[derive(Serialize)]
struct SendEmailRequest<'a> {
    from: &'a str,
    to: &'a [String],
    subject: &'a str,
    text: &'a str,
}

#[derive(Deserialize)]
struct SendEmailResponse {
    id: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    name: String,
}

/// A Resend API client. The key is held privately and never printed.
#[derive(Clone)]
pub struct ResendClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    max_attempts: u32,
}

impl std::fmt::Debug for ResendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResendClient")
            .field("base_url", &self.base_url)
            .field("api_key", &"***")
            .finish()
    }
}

impl ResendClient {
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Result<Self, ResendError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ResendError::Network(e.to_string()))?;
        Ok(ResendClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            max_attempts: 4,
        })
    }

    /// `GET /domains`, to check the key without sending mail. A sending-only key is valid but
    /// may not list domains: Resend answers it 401 `restricted_api_key`.
    pub async fn check_key(&self) -> Result<KeyAccess, ResendError> {
        let response = self
            .http
            .get(format!("{}/domains", self.base_url))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| ResendError::Network(crate::services::describe_http_error(e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ResendError::Network(crate::services::describe_http_error(e)))?;
        let err: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
        match status {
            200 => Ok(KeyAccess::Full),
            401 if err.name == "restricted_api_key" => Ok(KeyAccess::SendingOnly),
            401 | 403 => Err(ResendError::Auth { name: err.name }),
            429 => Err(ResendError::RateLimited { attempts: 1 }),
            500..=599 => Err(ResendError::Unavailable {
                status,
                attempts: 1,
            }),
            _ => Err(ResendError::Rejected {
                status,
                name: err.name,
                message: crate::secrets::redact(err.message, &self.api_key),
            }),
        }
    }

    /// Send one plain-text e-mail; returns Resend's e-mail id.
    pub async fn send(
        &self,
        from: &str,
        to: &[String],
        subject: &str,
        text: &str,
        idempotency_key: &str,
    ) -> Result<String, ResendError> {
        let body = SendEmailRequest {
            from,
            to,
            subject,
            text,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .http
                .post(format!("{}/emails", self.base_url))
                .bearer_auth(&self.api_key)
                .header("Idempotency-Key", idempotency_key)
                .json(&body)
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e) if attempt < self.max_attempts && (e.is_timeout() || e.is_connect()) => {
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                // reqwest's error text names the URL, which holds no secret.
                Err(e) => return Err(ResendError::Network(e.without_url().to_string())),
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = response
                .text()
                .await
                .map_err(|e| ResendError::Network(e.without_url().to_string()))?;
            match status {
                200 | 201 => {
                    let ok: SendEmailResponse = serde_json::from_str(&text)
                        .map_err(|e| ResendError::Malformed(e.to_string()))?;
                    return Ok(ok.id);
                }
                429 => {
                    if attempt >= self.max_attempts {
                        return Err(ResendError::RateLimited { attempts: attempt });
                    }
                    let wait = retry_after
                        .map(Duration::from_secs)
                        .unwrap_or_else(|| backoff(attempt));
                    tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                }
                500..=599 => {
                    if attempt >= self.max_attempts {
                        return Err(ResendError::Unavailable {
                            status,
                            attempts: attempt,
                        });
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                _ => {
                    let err: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
                    return Err(match (status, err.name.as_str()) {
                        (401, _) | (403, "invalid_api_key") => ResendError::Auth { name: err.name },
                        _ => ResendError::Rejected {
                            status,
                            name: err.name,
                            message: crate::secrets::redact(err.message, &self.api_key),
                        },
                    });
                }
            }
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 250u64 << attempt.min(6);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}
