//! Credentials: the `Secret` value type that never prints itself, the `SecretStore` trait with
//! its OS-keyring, in-memory and environment-variable implementations, and `Secrets`, the async
//! handle the application uses (environment first, then the configured store).
//!
//! Entries are named `<kind>:<connection>`, e.g. `binance:default`; in the OS keyring the name
//! also carries the data dir's scope (see `keyring_store`), so each data dir has its own. Binance needs an API key and an API secret: they are stored together as ONE
//! keyring entry holding `{"api_key": "...", "api_secret": "..."}`, so a set or delete can never
//! leave half a credential behind. Grok, Tavily and Resend store the bare API key.
//!
//! When each entry was set lives in SQLite (`store::secret_entries`); which entry a command uses
//! is only ever decided by `Secrets::get`, which `keys list` also calls.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod env;
mod files;
mod keyring_store;
mod lookup;
mod memory;

pub use env::EnvStore;
pub use files::{ensure_private_dir, restrict_file};
pub use keyring_store::{DataDirScope, KeyringPlace, KeyringStore};
pub use lookup::{optional, unreadable_keyring_note};
pub use memory::MemoryStore;

/// The keyring service name every entry is stored under.
pub const SERVICE: &str = "trademind";

/// A secret value (API key, API secret). Debug and Display print `***`; the value is wiped from
/// memory when dropped; `expose()` is the one door to the value, for the code that signs or sends.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value itself. Call it only where the value leaves the process (a signature, a header).
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reject values that cannot be an API key: empty, too long, or containing whitespace or
    /// control characters (a pasted line break is the usual culprit). Never quotes the value.
    pub fn validate(&self, what: &str) -> Result<(), SecretError> {
        let value = self.expose();
        if value.is_empty() {
            return Err(SecretError::Invalid(format!("the {what} is empty")));
        }
        if value.len() > MAX_SECRET_LEN {
            return Err(SecretError::Invalid(format!(
                "the {what} is {} bytes long, more than the {MAX_SECRET_LEN} any service issues",
                value.len()
            )));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SecretError::Invalid(format!(
                "the {what} contains whitespace or control characters; paste the key alone"
            )));
        }
        Ok(())
    }
}

const MAX_SECRET_LEN: usize = 4096;

/// `text` with every occurrence of `secret` replaced by `***`. For what a remote service
/// answers: an error body that echoes the key (some OpenAI-compatible servers and proxies do)
/// must not reach an error message, a log line or the flight recorder.
pub fn redact(text: String, secret: &str) -> String {
    if secret.len() < 4 || !text.contains(secret) {
        return text;
    }
    text.replace(secret, "***")
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

/// Which service a credential is for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    /// Binance API key + API secret.
    Binance,
    /// xAI Grok API key.
    Grok,
    /// Tavily search API key.
    Tavily,
    /// Resend e-mail API key.
    Resend,
    /// Telegram bot token (from BotFather).
    Telegram,
}

impl SecretKind {
    pub const ALL: [SecretKind; 5] = [
        SecretKind::Binance,
        SecretKind::Grok,
        SecretKind::Tavily,
        SecretKind::Resend,
        SecretKind::Telegram,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Binance => "binance",
            SecretKind::Grok => "grok",
            SecretKind::Tavily => "tavily",
            SecretKind::Resend => "resend",
            SecretKind::Telegram => "telegram",
        }
    }

    /// Binance signs requests with a separate API secret; the others only send a key.
    pub fn has_api_secret(self) -> bool {
        matches!(self, SecretKind::Binance)
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretKind {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                SecretError::Invalid(format!(
                    "unknown key kind {s:?}; expected binance, grok, tavily, resend or telegram"
                ))
            })
    }
}

/// A connection name: 1..=64 of `[A-Za-z0-9_-]`, so it is safe in a keyring user name and an
/// environment variable name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnectionName(String);

impl ConnectionName {
    pub const DEFAULT: &str = "default";

    pub fn new(name: &str) -> Result<ConnectionName, SecretError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            Ok(ConnectionName(name.to_string()))
        } else {
            Err(SecretError::Invalid(format!(
                "connection name {name:?} must be 1 to 64 letters, digits, '_' or '-'"
            )))
        }
    }

    pub fn default_connection() -> ConnectionName {
        ConnectionName(Self::DEFAULT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ConnectionName {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionName::new(s)
    }
}

/// Which entry: a kind and a connection, stored as the keyring user `<kind>:<connection>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId {
    pub kind: SecretKind,
    pub connection: ConnectionName,
}

impl SecretId {
    pub fn new(kind: SecretKind, connection: ConnectionName) -> SecretId {
        SecretId { kind, connection }
    }

    pub fn default_for(kind: SecretKind) -> SecretId {
        SecretId::new(kind, ConnectionName::default_connection())
    }

    /// The keyring user name.
    pub fn user(&self) -> String {
        format!("{}:{}", self.kind, self.connection)
    }

    /// The environment variables that supply this credential when the keyring is not used:
    /// `TRADEMIND_<KIND>_API_KEY` (and `_API_SECRET` for Binance) for the default connection,
    /// `TRADEMIND_<KIND>_<CONNECTION>_API_KEY` for a named one (`-` becomes `_`).
    pub fn env_vars(&self) -> EnvVars {
        let kind = self.kind.as_str().to_ascii_uppercase();
        let prefix = if self.connection.as_str() == ConnectionName::DEFAULT {
            format!("TRADEMIND_{kind}")
        } else {
            let conn = self
                .connection
                .as_str()
                .to_ascii_uppercase()
                .replace('-', "_");
            format!("TRADEMIND_{kind}_{conn}")
        };
        EnvVars {
            api_key: format!("{prefix}_API_KEY"),
            api_secret: self
                .kind
                .has_api_secret()
                .then(|| format!("{prefix}_API_SECRET")),
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.connection)
    }
}

/// Names of the environment variables of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVars {
    pub api_key: String,
    pub api_secret: Option<String>,
}

impl fmt::Display for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.api_secret {
            Some(secret) => write!(f, "{} and {}", self.api_key, secret),
            None => f.write_str(&self.api_key),
        }
    }
}

/// What is stored for one entry.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Grok, Tavily, Resend.
    ApiKey(Secret),
    /// Binance.
    KeyPair { api_key: Secret, api_secret: Secret },
}

#[derive(Serialize)]
struct KeyPairRef<'a> {
    api_key: &'a str,
    api_secret: &'a str,
}

#[derive(Deserialize)]
struct KeyPairOwned {
    api_key: String,
    api_secret: String,
}

impl Credential {
    pub fn api_key(&self) -> &Secret {
        match self {
            Credential::ApiKey(key) => key,
            Credential::KeyPair { api_key, .. } => api_key,
        }
    }

    pub fn api_secret(&self) -> Option<&Secret> {
        match self {
            Credential::ApiKey(_) => None,
            Credential::KeyPair { api_secret, .. } => Some(api_secret),
        }
    }

    /// Check the credential has the shape its kind needs and plausible values.
    pub fn validate_for(&self, kind: SecretKind) -> Result<(), SecretError> {
        match (self, kind.has_api_secret()) {
            (Credential::ApiKey(key), false) => key.validate("API key"),
            (
                Credential::KeyPair {
                    api_key,
                    api_secret,
                },
                true,
            ) => {
                api_key.validate("API key")?;
                api_secret.validate("API secret")
            }
            (Credential::ApiKey(_), true) => Err(SecretError::Invalid(format!(
                "{kind} needs both an API key and an API secret"
            ))),
            (Credential::KeyPair { .. }, false) => Err(SecretError::Invalid(format!(
                "{kind} takes an API key only, not a key pair"
            ))),
        }
    }

    /// The bytes a keyring entry holds (see the module doc for the format).
    pub(crate) fn encode(&self) -> Result<Zeroizing<String>, SecretError> {
        match self {
            Credential::ApiKey(key) => Ok(Zeroizing::new(key.expose().to_string())),
            Credential::KeyPair {
                api_key,
                api_secret,
            } => serde_json::to_string(&KeyPairRef {
                api_key: api_key.expose(),
                api_secret: api_secret.expose(),
            })
            .map(Zeroizing::new)
            // serde_json's error on a struct of two &str can only be I/O; it holds no value.
            .map_err(|e| SecretError::Invalid(format!("cannot encode key pair: {e}"))),
        }
    }

    pub(crate) fn decode(id: &SecretId, bytes: &[u8]) -> Result<Credential, SecretError> {
        let corrupt = |reason: &str| SecretError::Corrupt {
            id: id.to_string(),
            reason: reason.to_string(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
        if id.kind.has_api_secret() {
            // The error of a failed parse may quote input, so it is dropped, not displayed.
            let pair: KeyPairOwned = serde_json::from_str(text)
                .map_err(|_| corrupt("expected a JSON object with api_key and api_secret"))?;
            Ok(Credential::KeyPair {
                api_key: Secret::new(pair.api_key),
                api_secret: Secret::new(pair.api_secret),
            })
        } else {
            Ok(Credential::ApiKey(Secret::new(text)))
        }
    }
}

/// Where a credential came from (reported by `keys list` / `keys test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The OS keyring (kernel keyutils on Linux).
    OsKeyring,
    /// Environment variables (systemd, containers); read-only.
    Environment,
    /// Process memory (tests).
    Memory,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::OsKeyring => "os-keyring",
            Backend::Environment => "environment",
            Backend::Memory => "memory",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "os-keyring" => Ok(Backend::OsKeyring),
            "environment" => Ok(Backend::Environment),
            "memory" => Ok(Backend::Memory),
            other => Err(SecretError::Invalid(format!("unknown backend {other:?}"))),
        }
    }
}

/// Errors never contain a secret value: only names, kinds and reasons.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no {id} credential is stored for this data dir; run `trademind keys set {kind} --connection {connection}` or set {env}{note}"
    )]
    Missing {
        id: String,
        kind: SecretKind,
        connection: String,
        env: String,
        /// Empty, or a sentence starting with "; " about why a key the user remembers is not used.
        note: String,
    },
    #[error(
        "the OS keyring cannot be used by this process ({detail}). Fix one of: run every trademind command from a shell started with `keyctl session trademind` (package `keyutils`; keys stored there last until that shell exits, while `keyctl session - trademind ...` loses them with each command); set `keyring = \"persistent\"` under [secrets] to keep keys in the user's persistent keyring; install and unlock a Secret Service (gnome-keyring or KWallet) on a desktop; or set `backend = \"environment\"` under [secrets] and provide the keys as TRADEMIND_<SERVICE>_API_KEY / TRADEMIND_BINANCE_API_SECRET environment variables"
    )]
    KeyringUnavailable { detail: String },
    #[error("OS keyring error on {id}: {detail}")]
    Keyring { id: String, detail: String },
    #[error(
        "the stored {id} credential is unreadable ({reason}); store it again with `trademind keys set`"
    )]
    Corrupt { id: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{id} comes from environment variables, which trademind cannot change; edit {env} where they are set (systemd unit, container env)"
    )]
    ReadOnly { id: String, env: String },
    #[error("the keyring worker thread failed: {0}")]
    Worker(String),
}

/// A place credentials are kept. Implementations are blocking (the OS keyring is); async code
/// goes through `Secrets`, which runs them on `spawn_blocking`.
pub trait SecretStore: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// `Ok(None)` when there is no such entry.
    fn get(&self, id: &SecretId) -> Result<Option<Credential>, SecretError>;
    /// Create or replace.
    fn set(&self, id: &SecretId, credential: &Credential) -> Result<(), SecretError>;
    /// `Ok(false)` when there was nothing to delete.
    fn delete(&self, id: &SecretId) -> Result<bool, SecretError>;
    /// Where an entry of this store lives, for people (`keys set`, `keys list`).
    fn location(&self) -> String {
        self.backend().to_string()
    }
    /// Whether an entry an older trademind stored without a data-dir scope exists for `id`.
    /// Such an entry is never used; this only lets the user be told to store it again.
    fn unscoped_legacy_entry(&self, _id: &SecretId) -> bool {
        false
    }
}

/// `[secrets]` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Where `keys set` writes and where keys are read after the environment:
    /// `"os-keyring"` (default) or `"environment"` (never touch the keyring: containers whose
    /// seccomp profile blocks keyctl, systemd units with `Environment=`/`LoadCredential=`).
    pub backend: ConfiguredBackend,
    /// With the OS keyring on Linux, which kernel keyring holds the keys: `"session"` (default;
    /// a key lasts as long as the session that stored it) or `"persistent"` (the user's
    /// persistent keyring: kept across sessions until the kernel expires it).
    pub keyring: KeyringPlace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfiguredBackend {
    #[default]
    OsKeyring,
    Environment,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            backend: ConfiguredBackend::OsKeyring,
            keyring: KeyringPlace::Session,
        }
    }
}

impl SecretsConfig {
    pub fn validate(&self) -> Result<(), String> {
        // Both variants are valid; serde already rejects unknown names.
        Ok(())
    }
}

/// A credential and where it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub credential: Credential,
    pub backend: Backend,
    /// Where it lives, for people: the variables' names, or which keyring.
    pub location: String,
}

/// The application's handle on credentials: environment variables first (explicit, per
/// process), then the configured store. Every store call runs on `spawn_blocking`, because the
/// OS keyring blocks and some back ends start their own runtime.
#[derive(Clone)]
pub struct Secrets {
    env: EnvStore,
    store: Option<Arc<dyn SecretStore>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("store", &self.store.as_ref().map(|s| s.backend()))
            .finish()
    }
}

impl Secrets {
    /// From configuration, reading the process environment; keyring entries are those of
    /// `data_dir` only.
    pub fn from_config(config: &SecretsConfig, data_dir: &std::path::Path) -> Secrets {
        let store: Option<Arc<dyn SecretStore>> = match config.backend {
            ConfiguredBackend::OsKeyring => Some(Arc::new(KeyringStore::new(
                config.keyring,
                DataDirScope::of(data_dir),
            ))),
            ConfiguredBackend::Environment => None,
        };
        Secrets {
            env: EnvStore::from_process(),
            store,
        }
    }

    /// Any store and environment (tests inject `MemoryStore` and `EnvStore::from_pairs`).
    pub fn new(env: EnvStore, store: Option<Arc<dyn SecretStore>>) -> Secrets {
        Secrets { env, store }
    }

    /// Where `set`/`delete` go; `Environment` when the store is off.
    pub fn writable_backend(&self) -> Backend {
        self.store
            .as_ref()
            .map_or(Backend::Environment, |s| s.backend())
    }

    /// Where `set` puts an entry, for people.
    pub fn writable_location(&self) -> String {
        self.store
            .as_ref()
            .map_or_else(|| Backend::Environment.to_string(), |s| s.location())
    }

    /// Whether the store holds an older trademind's unscoped entry for `id` (never used).
    pub async fn unscoped_legacy_entry(&self, id: &SecretId) -> bool {
        let Some(store) = self.store.clone() else {
            return false;
        };
        let key = id.clone();
        run_blocking(move || Ok(store.unscoped_legacy_entry(&key)))
            .await
            .unwrap_or(false)
    }

    /// Whether the environment supplies this entry (it then wins over the store).
    pub fn env_provides(&self, id: &SecretId) -> bool {
        self.env.provides(id)
    }

    pub async fn get(&self, id: &SecretId) -> Result<Option<Resolved>, SecretError> {
        if let Some(credential) = self.env.get(id)? {
            tracing::debug!(entry = %id, "credential taken from the environment");
            return Ok(Some(Resolved {
                credential,
                backend: Backend::Environment,
                location: format!("environment ({})", id.env_vars()),
            }));
        }
        let Some(store) = self.store.clone() else {
            return Ok(None);
        };
        let backend = store.backend();
        let location = store.location();
        let key = id.clone();
        let found = run_blocking(move || store.get(&key)).await?;
        tracing::debug!(entry = %id, %backend, %location, found = found.is_some(), "credential lookup");
        Ok(found.map(|credential| Resolved {
            credential,
            backend,
            location,
        }))
    }

    /// Like `get`, but a missing entry is an error that says how to add it.
    pub async fn require(&self, id: &SecretId) -> Result<Resolved, SecretError> {
        if let Some(found) = self.get(id).await? {
            return Ok(found);
        }
        let note = if self.unscoped_legacy_entry(id).await {
            tracing::warn!(entry = %id, "an unscoped key from an older trademind is not used");
            "; the keyring holds a key an older trademind stored for every data dir at once, \
             which is no longer used: store it again for this data dir"
                .to_string()
        } else {
            String::new()
        };
        Err(SecretError::Missing {
            id: id.to_string(),
            kind: id.kind,
            connection: id.connection.to_string(),
            env: id.env_vars().to_string(),
            note,
        })
    }

    /// Validate, then store; returns the backend written to.
    pub async fn set(&self, id: &SecretId, credential: Credential) -> Result<Backend, SecretError> {
        credential.validate_for(id.kind)?;
        let Some(store) = self.store.clone() else {
            return Err(SecretError::ReadOnly {
                id: id.to_string(),
                env: id.env_vars().to_string(),
            });
        };
        let backend = store.backend();
        let key = id.clone();
        run_blocking(move || store.set(&key, &credential)).await?;
        Ok(backend)
    }

    pub async fn delete(&self, id: &SecretId) -> Result<bool, SecretError> {
        let Some(store) = self.store.clone() else {
            return Err(SecretError::ReadOnly {
                id: id.to_string(),
                env: id.env_vars().to_string(),
            });
        };
        let key = id.clone();
        run_blocking(move || store.delete(&key)).await
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SecretError> + Send + 'static,
) -> Result<T, SecretError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SecretError::Worker(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AKIAtopsecret123";
    const SECRET: &str = "s3cr3t-signing-value";

    fn pair() -> Credential {
        Credential::KeyPair {
            api_key: Secret::new(KEY),
            api_secret: Secret::new(SECRET),
        }
    }

    #[test]
    fn redact_blanks_every_occurrence_and_leaves_other_text_alone() {
        let body = format!("bad key {KEY}; you sent {KEY}");
        assert_eq!(redact(body, KEY), "bad key ***; you sent ***");
        assert_eq!(redact("nothing here".into(), KEY), "nothing here");
        // Too short to be a key: replacing it would mangle ordinary text.
        assert_eq!(redact("a b c".into(), "a"), "a b c");
    }

    #[test]
    fn secret_debug_and_display_hide_the_value() {
        let s = Secret::new(KEY);
        assert_eq!(format!("{s:?}"), "Secret(\"***\")");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:#?}"), "Secret(\"***\")");
        assert_eq!(s.expose(), KEY);
    }

    #[test]
    fn credential_debug_never_contains_either_value() {
        let shown = format!("{:?} {:#?}", pair(), pair());
        assert!(!shown.contains(KEY) && !shown.contains(SECRET), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn errors_about_bad_values_do_not_quote_them() {
        let bad = Secret::new(format!("{KEY} {SECRET}"));
        let err = bad.validate("API key").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains(KEY) && !text.contains(SECRET), "{text}");
        assert!(text.contains("whitespace"));
    }

    #[test]
    fn corrupt_key_pair_error_does_not_echo_the_stored_bytes() {
        let id = SecretId::default_for(SecretKind::Binance);
        let err = Credential::decode(&id, SECRET.as_bytes()).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("binance:default"));
    }

    #[test]
    fn key_pair_encodes_as_one_json_entry_and_decodes_back() {
        let id = SecretId::default_for(SecretKind::Binance);
        let encoded = pair().encode().unwrap();
        let json: serde_json::Value = serde_json::from_str(&encoded).unwrap();
        assert_eq!(json["api_key"], KEY);
        assert_eq!(json["api_secret"], SECRET);
        let back = Credential::decode(&id, encoded.as_bytes()).unwrap();
        assert_eq!(back.api_key().expose(), KEY);
        assert_eq!(back.api_secret().unwrap().expose(), SECRET);
    }

    #[test]
    fn single_key_kinds_store_the_bare_key() {
        let id = SecretId::default_for(SecretKind::Grok);
        let cred = Credential::ApiKey(Secret::new(KEY));
        assert_eq!(cred.encode().unwrap().as_str(), KEY);
        let back = Credential::decode(&id, KEY.as_bytes()).unwrap();
        assert_eq!(back.api_key().expose(), KEY);
        assert!(back.api_secret().is_none());
    }

    #[test]
    fn binance_needs_a_pair_and_the_others_a_single_key() {
        assert!(pair().validate_for(SecretKind::Binance).is_ok());
        assert!(pair().validate_for(SecretKind::Tavily).is_err());
        let single = Credential::ApiKey(Secret::new(KEY));
        assert!(single.validate_for(SecretKind::Resend).is_ok());
        assert!(single.validate_for(SecretKind::Binance).is_err());
    }

    #[test]
    fn secret_validation_rejects_empty_and_multiline_values() {
        assert!(Secret::new("").validate("API key").is_err());
        assert!(Secret::new("abc\ndef").validate("API key").is_err());
        assert!(Secret::new("x".repeat(4097)).validate("API key").is_err());
        assert!(Secret::new("x".repeat(4096)).validate("API key").is_ok());
    }

    #[test]
    fn entry_user_and_env_var_names_follow_the_documented_scheme() {
        let id = SecretId::default_for(SecretKind::Binance);
        assert_eq!(id.user(), "binance:default");
        let vars = id.env_vars();
        assert_eq!(vars.api_key, "TRADEMIND_BINANCE_API_KEY");
        assert_eq!(
            vars.api_secret.as_deref(),
            Some("TRADEMIND_BINANCE_API_SECRET")
        );

        let named = SecretId::new(SecretKind::Grok, ConnectionName::new("alt-2").unwrap());
        assert_eq!(named.user(), "grok:alt-2");
        assert_eq!(named.env_vars().api_key, "TRADEMIND_GROK_ALT_2_API_KEY");
        assert_eq!(named.env_vars().api_secret, None);
    }

    #[test]
    fn connection_names_are_restricted_to_safe_characters() {
        assert!(ConnectionName::new("main_1-b").is_ok());
        assert!(ConnectionName::new("").is_err());
        assert!(ConnectionName::new("a:b").is_err());
        assert!(ConnectionName::new("a b").is_err());
        assert!(ConnectionName::new(&"a".repeat(65)).is_err());
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in SecretKind::ALL {
            assert_eq!(kind.as_str().parse::<SecretKind>().unwrap(), kind);
        }
        assert!("kraken".parse::<SecretKind>().is_err());
    }

    #[test]
    fn config_defaults_to_the_os_keyring_and_parses_environment() {
        assert_eq!(
            SecretsConfig::default().backend,
            ConfiguredBackend::OsKeyring
        );
        let c: SecretsConfig = toml::from_str("backend = \"environment\"").unwrap();
        assert_eq!(c.backend, ConfiguredBackend::Environment);
        assert!(toml::from_str::<SecretsConfig>("backend = \"vault\"").is_err());
        assert!(toml::from_str::<SecretsConfig>("other = 1").is_err());
        assert!(c.validate().is_ok());
        assert_eq!(SecretsConfig::default().keyring, KeyringPlace::Session);
        let p: SecretsConfig = toml::from_str("keyring = \"persistent\"").unwrap();
        assert_eq!(p.keyring, KeyringPlace::Persistent);
        assert!(toml::from_str::<SecretsConfig>("keyring = \"user\"").is_err());
    }

    fn memory_secrets(env: &[(&str, &str)]) -> (Secrets, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let secrets = Secrets::new(
            EnvStore::from_pairs(env.iter().copied()),
            Some(store.clone() as Arc<dyn SecretStore>),
        );
        (secrets, store)
    }

    #[tokio::test]
    async fn set_get_delete_round_trip_through_the_async_handle() {
        let (secrets, _) = memory_secrets(&[]);
        let id = SecretId::default_for(SecretKind::Binance);
        assert!(secrets.get(&id).await.unwrap().is_none());
        assert_eq!(secrets.set(&id, pair()).await.unwrap(), Backend::Memory);
        let got = secrets.require(&id).await.unwrap();
        assert_eq!(got.backend, Backend::Memory);
        assert_eq!(got.credential.api_secret().unwrap().expose(), SECRET);
        assert!(secrets.delete(&id).await.unwrap());
        assert!(!secrets.delete(&id).await.unwrap());
        assert!(secrets.get(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn environment_variables_win_over_the_store_and_are_reported_as_such() {
        let (secrets, _) = memory_secrets(&[("TRADEMIND_GROK_API_KEY", "from-env")]);
        let id = SecretId::default_for(SecretKind::Grok);
        secrets
            .set(&id, Credential::ApiKey(Secret::new("from-store")))
            .await
            .unwrap();
        let got = secrets.require(&id).await.unwrap();
        assert_eq!(got.backend, Backend::Environment);
        assert_eq!(got.credential.api_key().expose(), "from-env");
        assert!(secrets.env_provides(&id));
    }

    #[tokio::test]
    async fn missing_entry_error_names_the_command_and_the_variables() {
        let (secrets, _) = memory_secrets(&[]);
        let id = SecretId::default_for(SecretKind::Binance);
        let text = secrets.require(&id).await.unwrap_err().to_string();
        assert!(
            text.contains("trademind keys set binance --connection default"),
            "{text}"
        );
        assert!(text.contains("TRADEMIND_BINANCE_API_KEY and TRADEMIND_BINANCE_API_SECRET"));
    }

    #[tokio::test]
    async fn environment_only_mode_refuses_to_write_and_says_where_to_edit() {
        let secrets = Secrets::new(EnvStore::from_pairs([]), None);
        let id = SecretId::default_for(SecretKind::Tavily);
        let err = secrets
            .set(&id, Credential::ApiKey(Secret::new(KEY)))
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::ReadOnly { .. }));
        assert!(err.to_string().contains("TRADEMIND_TAVILY_API_KEY"));
        assert_eq!(secrets.writable_backend(), Backend::Environment);
    }

    #[tokio::test]
    async fn invalid_values_are_refused_before_reaching_the_store() {
        let (secrets, store) = memory_secrets(&[]);
        let id = SecretId::default_for(SecretKind::Grok);
        let err = secrets
            .set(&id, Credential::ApiKey(Secret::new("two words")))
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::Invalid(_)));
        assert!(store.get(&id).unwrap().is_none());
    }
}
