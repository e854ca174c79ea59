//! Typed look-ups on `Secrets`: the bare API key of a service or the key pair of a connection,
//! so callers do not each match on the `Credential` shape.

use super::{Credential, Secret, SecretError, SecretId, SecretKind, Secrets};

impl Secrets {
    /// The default connection's API key for `kind` (Grok, Tavily, Resend): `None` when none is
    /// stored, or when the entry is a key pair (which such a service cannot use).
    pub async fn api_key(&self, kind: SecretKind) -> Result<Option<Secret>, SecretError> {
        Ok(self
            .get(&SecretId::default_for(kind))
            .await?
            .and_then(|r| match r.credential {
                Credential::ApiKey(key) => Some(key),
                Credential::KeyPair { .. } => None,
            }))
    }

    /// The key pair stored for `id` (Binance): `None` when none is stored, or when the entry
    /// is a bare key.
    pub async fn key_pair(&self, id: &SecretId) -> Result<Option<(Secret, Secret)>, SecretError> {
        Ok(self.get(id).await?.and_then(|r| match r.credential {
            Credential::KeyPair {
                api_key,
                api_secret,
            } => Some((api_key, api_secret)),
            Credential::ApiKey(_) => None,
        }))
    }
}

/// Why the keyring could not be read, kept from the last optional look-up that hit it, for the
/// message of a command that then finds it needs the key.
static UNREADABLE_KEYRING: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// For a credential that is optional where it is asked for: an unusable keyring is read as
/// "none stored", so public endpoints, the demo and the offline engine keep working without a
/// warning (they need no key; every command on a server without a session keyring printed
/// one). A command that turns out to need the key says why it found none with
/// [`unreadable_keyring_note`]. Any other error stays an error.
pub fn optional<T>(found: Result<Option<T>, SecretError>) -> Result<Option<T>, SecretError> {
    match found {
        Err(e @ SecretError::KeyringUnavailable { .. }) => {
            tracing::debug!("{e}");
            *UNREADABLE_KEYRING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
            Ok(None)
        }
        other => other,
    }
}

/// `"; <why the keyring could not be read>"` when an optional look-up found it unusable, else
/// empty: appended to "a key is needed" messages.
pub fn unreadable_keyring_note() -> String {
    UNREADABLE_KEYRING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .map(|e| format!("; {e}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{ConnectionName, EnvStore, MemoryStore};
    use std::sync::Arc;

    fn pair() -> Credential {
        Credential::KeyPair {
            api_key: Secret::new("binance-key"),
            api_secret: Secret::new("binance-secret"),
        }
    }

    #[tokio::test]
    async fn api_key_and_key_pair_return_only_the_shape_they_ask_for() {
        let store = Arc::new(MemoryStore::default());
        let secrets = Secrets::new(EnvStore::from_pairs([]), Some(store.clone()));
        let grok = SecretId::default_for(SecretKind::Grok);
        secrets
            .set(&grok, Credential::ApiKey(Secret::new("xai-123")))
            .await
            .unwrap();
        let binance = SecretId::new(SecretKind::Binance, ConnectionName::new("main").unwrap());
        secrets.set(&binance, pair()).await.unwrap();

        let key = secrets.api_key(SecretKind::Grok).await.unwrap().unwrap();
        assert_eq!(key.expose(), "xai-123");
        assert!(secrets.api_key(SecretKind::Tavily).await.unwrap().is_none());
        let (k, s) = secrets.key_pair(&binance).await.unwrap().unwrap();
        assert_eq!((k.expose(), s.expose()), ("binance-key", "binance-secret"));
        // A bare key where a pair is asked for is no pair.
        assert!(secrets.key_pair(&grok).await.unwrap().is_none());
    }

    #[test]
    fn optional_reads_an_unusable_keyring_as_none_and_keeps_other_errors() {
        let unavailable: Result<Option<()>, _> = Err(SecretError::KeyringUnavailable {
            detail: "no session".into(),
        });
        assert!(optional(unavailable).unwrap().is_none());
        let other: Result<Option<()>, _> = Err(SecretError::Keyring {
            id: "grok:default".into(),
            detail: "denied".into(),
        });
        assert!(optional(other).is_err());
    }
}
