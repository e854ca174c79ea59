//! `keys test`: one cheap authenticated request per stored key against the endpoint the
//! configuration points at (Binance: signed `GET /api/v3/account`; xAI: `GET /models`; Tavily:
//! `GET /usage`; Resend: `GET /domains`), reported as ok, rejected (the service refused the key)
//! or unreachable. None of these calls costs credits, tokens or a sent e-mail. A production
//! Binance key's permissions are read too (`GET /sapi/v1/account/apiRestrictions`): one allowed
//! to withdraw or transfer, or not allowed to trade, is reported with a warning.

use serde::Serialize;
use std::time::Duration;

use crate::secrets::{Credential, SecretKind};
use crate::services::exchange::binance::client::BinanceEnvironment;
use crate::services::exchange::binance::{BinanceClient, BinanceConfig, Credentials};
use crate::services::exchange::{Exchange, ExchangeError};
use crate::services::llm::TavilyError;
use crate::services::llm::{ApiKey, LlmClient, LlmConfig, LlmError, TavilyClient, TavilyConfig};
use crate::services::notification::{KeyAccess, ResendClient, ResendError};

/// What one key's check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// The service accepted the key.
    Ok,
    /// The service refused the key (wrong, revoked, or missing a permission): fix the key.
    Rejected,
    /// No answer (network, DNS, timeout, 5xx, rate limit): the key was not judged.
    Unreachable,
    /// The key could not be read, or the service answered something unexpected.
    Failed,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Ok => "ok",
            KeyStatus::Rejected => "rejected",
            KeyStatus::Unreachable => "unreachable",
            KeyStatus::Failed => "failed",
        }
    }
}

/// The outcome for one key: the status, the URL asked, and a sentence for the user. The
/// sentence comes from our typed errors, which never hold a key, a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyCheck {
    pub status: KeyStatus,
    pub endpoint: String,
    pub detail: String,
    /// What the user should fix although the key works (e.g. a Binance key allowed to
    /// withdraw).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where each service is, from the configuration. Binance's environment (testnet or production)
/// is the connection's, resolved by the caller.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub binance: BinanceConfig,
    pub llm: LlmConfig,
    pub tavily: TavilyConfig,
    pub resend_url: String,
    pub resend_timeout: Duration,
    pub telegram_url: String,
}

fn check(status: KeyStatus, endpoint: String, detail: impl Into<String>) -> KeyCheck {
    KeyCheck {
        status,
        endpoint,
        detail: detail.into(),
        warnings: Vec::new(),
    }
}

/// Check one credential against its service.
pub async fn check_key(kind: SecretKind, credential: &Credential, at: &Endpoints) -> KeyCheck {
    match kind {
        SecretKind::Binance => binance(credential, &at.binance).await,
        SecretKind::Grok => grok(credential, &at.llm).await,
        SecretKind::Tavily => tavily(credential, &at.tavily).await,
        SecretKind::Resend => resend(credential, &at.resend_url, at.resend_timeout).await,
        SecretKind::Telegram => telegram(credential, &at.telegram_url).await,
    }
}

async fn telegram(credential: &Credential, base_url: &str) -> KeyCheck {
    use crate::services::telegram::{TelegramClient, TelegramError};
    // The token is part of Bot API URLs, so the endpoint shown names the method only.
    let endpoint = format!("{base_url}/bot<token>/getMe");
    let client = match TelegramClient::new(base_url, credential.api_key().expose()) {
        Ok(c) => c,
        Err(e) => return check(KeyStatus::Failed, endpoint, e.to_string()),
    };
    match client.get_me().await {
        Ok(bot) => check(
            KeyStatus::Ok,
            endpoint,
            format!("token accepted (bot id {})", bot.id),
        ),
        Err(e @ TelegramError::Unauthorized) => check(KeyStatus::Rejected, endpoint, e.to_string()),
        Err(e @ (TelegramError::Network { .. } | TelegramError::RateLimited { .. })) => {
            check(KeyStatus::Unreachable, endpoint, e.to_string())
        }
        Err(e) => check(KeyStatus::Failed, endpoint, e.to_string()),
    }
}

async fn binance(credential: &Credential, config: &BinanceConfig) -> KeyCheck {
    let endpoint = format!("{}/api/v3/account", config.base_url());
    let Some(secret) = credential.api_secret() else {
        return check(KeyStatus::Failed, endpoint, "Binance needs a key pair");
    };
    let creds = Credentials::new(credential.api_key().expose(), secret.expose());
    // One attempt: a check should answer quickly, and a retry proves nothing more.
    let production = config.environment == BinanceEnvironment::Production;
    let config = BinanceConfig {
        max_read_retries: 0,
        ..config.clone()
    };
    let client = match BinanceClient::new(config, Some(creds)) {
        Ok(c) => c,
        Err(e) => return check(KeyStatus::Failed, endpoint, e.to_string()),
    };
    match client.balances().await {
        Ok(balances) => {
            let mut ok = check(
                KeyStatus::Ok,
                endpoint,
                format!(
                    "signed request accepted; the account holds {} assets",
                    balances.len()
                ),
            );
            if production {
                ok.warnings = permission_warnings(&client).await;
            }
            ok
        }
        Err(e @ (ExchangeError::BadApiKey(_) | ExchangeError::BadSignature)) => {
            check(KeyStatus::Rejected, endpoint, e.to_string())
        }
        Err(
            e @ (ExchangeError::Unavailable(_)
            | ExchangeError::CircuitOpen { .. }
            | ExchangeError::RateLimited { .. }
            | ExchangeError::Banned { .. }
            | ExchangeError::Timestamp),
        ) => check(KeyStatus::Unreachable, endpoint, e.to_string()),
        Err(e) => check(KeyStatus::Failed, endpoint, e.to_string()),
    }
}

/// What a production key may do that it should not, or may not do that it must: TradeMind
/// needs reading and spot trading, and never withdraws, so a key allowed to withdraw is only a
/// risk (a leaked key could empty the account).
async fn permission_warnings(client: &BinanceClient) -> Vec<String> {
    match client.api_restrictions().await {
        Ok(r) => {
            let mut warnings = Vec::new();
            if r.enable_withdrawals {
                warnings.push(
                    "withdrawals are enabled on this key: TradeMind never withdraws, and a leaked \
                     key could empty the account; turn off \"Enable Withdrawals\" for it in \
                     Binance API Management"
                        .to_string(),
                );
            }
            if r.enable_internal_transfer || r.permits_universal_transfer {
                warnings.push(
                    "transfers are enabled on this key: TradeMind never moves funds; turn them off"
                        .to_string(),
                );
            }
            if !r.enable_spot_and_margin_trading {
                warnings.push(
                    "spot trading is not enabled on this key: Binance will refuse every order \
                     (-2015); enable \"Spot & Margin Trading\" for it"
                        .to_string(),
                );
            }
            if !r.enable_reading {
                warnings.push("reading is not enabled on this key".to_string());
            }
            warnings
        }
        Err(e) => vec![format!(
            "the key's permissions could not be checked ({}): make sure it cannot withdraw",
            short(&e)
        )],
    }
}

fn api_key(credential: &Credential) -> ApiKey {
    ApiKey::new(credential.api_key().expose().to_string())
}

async fn grok(credential: &Credential, config: &LlmConfig) -> KeyCheck {
    let endpoint = format!("{}/models", config.base_url.trim_end_matches('/'));
    let client = match LlmClient::new(config.clone(), api_key(credential)) {
        Ok(c) => c,
        Err(e) => return check(KeyStatus::Failed, endpoint, e.to_string()),
    };
    match client.list_models().await {
        Ok(models) if models.contains(&config.model) => check(
            KeyStatus::Ok,
            endpoint,
            format!("key accepted; model {} is available", config.model),
        ),
        Ok(models) => check(
            KeyStatus::Ok,
            endpoint,
            format!(
                "key accepted, but llm.model {:?} is not among its {} models; set llm.model to one of them",
                config.model,
                models.len()
            ),
        ),
        Err(e @ LlmError::Unauthorized { status, .. }) => check(
            KeyStatus::Rejected,
            endpoint,
            format!("HTTP {status}: the server refused the key ({})", short(&e)),
        ),
        Err(e @ (LlmError::Timeout(_) | LlmError::Network(_))) => {
            check(KeyStatus::Unreachable, endpoint, e.to_string())
        }
        Err(e @ LlmError::Http { status, .. }) if status == 429 || status >= 500 => {
            check(KeyStatus::Unreachable, endpoint, short(&e))
        }
        Err(e) => check(KeyStatus::Failed, endpoint, short(&e)),
    }
}

async fn tavily(credential: &Credential, config: &TavilyConfig) -> KeyCheck {
    let endpoint = format!("{}/usage", config.base_url.trim_end_matches('/'));
    let client = match TavilyClient::new(config.clone(), api_key(credential)) {
        Ok(c) => c,
        Err(e) => return check(KeyStatus::Failed, endpoint, e.to_string()),
    };
    match client.usage().await {
        Ok((used, limit)) => check(
            KeyStatus::Ok,
            endpoint,
            match limit {
                Some(limit) => format!("key accepted; {used} of {limit} credits used"),
                None => format!("key accepted; {used} credits used"),
            },
        ),
        Err(e @ TavilyError::Unauthorized(_)) => check(KeyStatus::Rejected, endpoint, short(&e)),
        Err(e @ TavilyError::Limit { .. }) => check(KeyStatus::Rejected, endpoint, short(&e)),
        Err(e @ TavilyError::Network(_)) => check(KeyStatus::Unreachable, endpoint, e.to_string()),
        Err(e @ TavilyError::Http { status, .. }) if status >= 500 => {
            check(KeyStatus::Unreachable, endpoint, short(&e))
        }
        Err(e) => check(KeyStatus::Failed, endpoint, short(&e)),
    }
}

async fn resend(credential: &Credential, base_url: &str, timeout: Duration) -> KeyCheck {
    let endpoint = format!("{}/domains", base_url.trim_end_matches('/'));
    let client = match ResendClient::new(base_url, credential.api_key().expose(), timeout) {
        Ok(c) => c,
        Err(e) => return check(KeyStatus::Failed, endpoint, e.to_string()),
    };
    match client.check_key().await {
        Ok(KeyAccess::Full) => check(KeyStatus::Ok, endpoint, "key accepted (full access)"),
        Ok(KeyAccess::SendingOnly) => check(
            KeyStatus::Ok,
            endpoint,
            "key accepted (sending access only, which is all alerts need)",
        ),
        Err(e @ ResendError::Auth { .. }) => check(KeyStatus::Rejected, endpoint, e.to_string()),
        Err(
            e @ (ResendError::Network(_)
            | ResendError::Unavailable { .. }
            | ResendError::RateLimited { .. }),
        ) => check(KeyStatus::Unreachable, endpoint, e.to_string()),
        Err(e) => check(KeyStatus::Failed, endpoint, e.to_string()),
    }
}

/// An error's message cut to one short line: service error bodies can be long HTML pages.
fn short(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}
