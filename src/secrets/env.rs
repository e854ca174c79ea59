//! The environment-variable fallback (`TRADEMIND_<KIND>_API_KEY`, `TRADEMIND_BINANCE_API_SECRET`)
//! for systemd units and containers, where no keyring is reachable. Read-only.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Backend, Credential, Secret, SecretError, SecretId, SecretStore};

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Reads credentials from environment variables; the lookup is injectable so tests never have to
/// mutate the process environment.
#[derive(Clone)]
pub struct EnvStore {
    lookup: Arc<Lookup>,
}

impl std::fmt::Debug for EnvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvStore")
    }
}

impl EnvStore {
    pub fn from_process() -> EnvStore {
        EnvStore {
            lookup: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> EnvStore {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvStore {
            lookup: Arc::new(move |name| map.get(name).cloned()),
        }
    }

    /// An empty variable counts as unset (a blank `Environment=` line in a unit file).
    fn var(&self, name: &str) -> Option<Secret> {
        (self.lookup)(name)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    }

    /// Whether the API key variable of this entry is set.
    pub fn provides(&self, id: &SecretId) -> bool {
        self.var(&id.env_vars().api_key).is_some()
    }
}

impl SecretStore for EnvStore {
    fn backend(&self) -> Backend {
        Backend::Environment
    }

    fn get(&self, id: &SecretId) -> Result<Option<Credential>, SecretError> {
        let vars = id.env_vars();
        let key = self.var(&vars.api_key);
        let credential = match (&vars.api_secret, key) {
            (None, None) => return Ok(None),
            (None, Some(key)) => Credential::ApiKey(key),
            (Some(secret_var), key) => match (key, self.var(secret_var)) {
                (None, None) => return Ok(None),
                (Some(api_key), Some(api_secret)) => Credential::KeyPair {
                    api_key,
                    api_secret,
                },
                (Some(_), None) => {
                    return Err(SecretError::Invalid(format!(
                        "{} is set but {secret_var} is not; {} needs both",
                        vars.api_key, id.kind
                    )));
                }
                (None, Some(_)) => {
                    return Err(SecretError::Invalid(format!(
                        "{secret_var} is set but {} is not; {} needs both",
                        vars.api_key, id.kind
                    )));
                }
            },
        };
        credential.validate_for(id.kind).map_err(|e| {
            SecretError::Invalid(format!("environment variable {}: {e}", vars.api_key))
        })?;
        Ok(Some(credential))
    }

    fn set(&self, id: &SecretId, _credential: &Credential) -> Result<(), SecretError> {
        Err(SecretError::ReadOnly {
            id: id.to_string(),
            env: id.env_vars().to_string(),
        })
    }

    fn delete(&self, id: &SecretId) -> Result<bool, SecretError> {
        Err(SecretError::ReadOnly {
            id: id.to_string(),
            env: id.env_vars().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{ConnectionName, SecretKind};

    #[test]
    fn binance_pair_is_read_from_both_variables() {
        let env = EnvStore::from_pairs([
            ("TRADEMIND_BINANCE_API_KEY", "k1"),
            ("TRADEMIND_BINANCE_API_SECRET", "s1"),
        ]);
        let cred = env
            .get(&SecretId::default_for(SecretKind::Binance))
            .unwrap()
            .unwrap();
        assert_eq!(cred.api_key().expose(), "k1");
        assert_eq!(cred.api_secret().unwrap().expose(), "s1");
    }

    #[test]
    fn half_a_binance_pair_is_an_error_naming_the_missing_variable() {
        let env = EnvStore::from_pairs([("TRADEMIND_BINANCE_API_KEY", "k1")]);
        let err = env
            .get(&SecretId::default_for(SecretKind::Binance))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRADEMIND_BINANCE_API_SECRET is not"), "{err}");
        assert!(!err.contains("k1"));
    }

    #[test]
    fn named_connection_uses_its_own_variables_and_empty_counts_as_unset() {
        let env = EnvStore::from_pairs([
            ("TRADEMIND_RESEND_API_KEY", ""),
            ("TRADEMIND_RESEND_OPS_API_KEY", "re_123"),
        ]);
        assert!(
            env.get(&SecretId::default_for(SecretKind::Resend))
                .unwrap()
                .is_none()
        );
        let ops = SecretId::new(SecretKind::Resend, ConnectionName::new("ops").unwrap());
        assert_eq!(env.get(&ops).unwrap().unwrap().api_key().expose(), "re_123");
    }

    #[test]
    fn environment_store_is_read_only() {
        let env = EnvStore::from_pairs([]);
        let id = SecretId::default_for(SecretKind::Grok);
        assert!(matches!(
            env.set(&id, &Credential::ApiKey(Secret::new("x"))),
            Err(SecretError::ReadOnly { .. })
        ));
        assert!(matches!(env.delete(&id), Err(SecretError::ReadOnly { .. })));
    }
}
