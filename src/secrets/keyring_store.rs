//! The OS keyring. On Linux: the kernel's keyutils, called directly (not through the `keyring`
//! crate, whose keyutils store links every key it sets or reads into the user's persistent
//! keyring, so a key "stored in a session" outlived it and reached every later session).
//!
//! The rule (also in the README's Keys section):
//! * `[secrets] keyring = "session"` (default): a key lives in the session keyring of the
//!   process that stored it (`keyctl show @s`), and nowhere else. It is found by commands run in
//!   that same session and ends with it. A process without a session keyring of its own is
//!   refused rather than falling back to the user-session keyring, which outlives sessions.
//! * `keyring = "persistent"`: a key lives in the user's persistent keyring (`keyctl
//!   get_persistent @p`), found from any session until the kernel expires that keyring.
//!
//! Each store reads and writes only its own keyring, and only entries linked into it directly
//! (a keyring nested in it, such as a persistent keyring an older trademind linked into the
//! session, is not searched). Entries are scoped by data dir: the description is
//! `trademind:<kind>:<connection>@<scope>`, where the scope is a short hash of the canonical
//! data-dir path, so a key stored for one data dir is never used by another. Entries an older
//! trademind wrote without a scope (`keyring-rs:<kind>:<connection>@trademind`) are never used:
//! nothing says which data dir they belong to. They are only detected, to tell the user to run
//! `keys set` again.
//!
//! Every method blocks: async code goes through `Secrets`, which uses `spawn_blocking`.

use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Backend, Credential, SERVICE, SecretError, SecretId, SecretStore};

/// Which kernel keyring `keys set` writes to and the lookup reads from (`[secrets] keyring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyringPlace {
    /// The session keyring of the storing process: the key ends with the session.
    #[default]
    Session,
    /// The user's persistent keyring: the key outlives the session (asked for explicitly).
    Persistent,
}

impl KeyringPlace {
    /// Where an entry lives, as `keys set` and `keys list` say it.
    pub fn describe(self) -> &'static str {
        match self {
            KeyringPlace::Session => "session keyring (keyctl show @s)",
            KeyringPlace::Persistent => "persistent keyring (keyctl get_persistent @p)",
        }
    }
}

/// A short, stable name for a data dir, put in every keyring entry's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirScope(String);

impl DataDirScope {
    /// The hash of the canonical path (symlinks resolved) when the dir exists, else of the
    /// absolute path: `keys set` creates the dir before storing, so both ends agree.
    pub fn of(data_dir: &Path) -> DataDirScope {
        let path = std::fs::canonicalize(data_dir)
            .or_else(|_| std::path::absolute(data_dir))
            .unwrap_or_else(|_| data_dir.to_path_buf());
        let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
        DataDirScope(hex::encode(&digest[..6]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
pub struct KeyringStore {
    place: KeyringPlace,
    scope: DataDirScope,
    usable: OnceLock<Result<(), String>>,
}

impl KeyringStore {
    pub fn new(place: KeyringPlace, scope: DataDirScope) -> KeyringStore {
        KeyringStore {
            place,
            scope,
            usable: OnceLock::new(),
        }
    }

    pub fn place(&self) -> KeyringPlace {
        self.place
    }

    /// The keyring description of `id` for this data dir.
    pub fn description(&self, id: &SecretId) -> String {
        format!("{SERVICE}:{}@{}", id.user(), self.scope.as_str())
    }

    /// What an older trademind (through the `keyring` crate) named the entry, for every data dir.
    pub fn legacy_description(id: &SecretId) -> String {
        format!("keyring-rs:{}@{SERVICE}", id.user())
    }

    /// Probe once per process whether the keyring accepts, returns and deletes an entry.
    pub fn check_usable(&self) -> Result<(), SecretError> {
        self.usable
            .get_or_init(|| kernel::probe(self.place))
            .clone()
            .map_err(|detail| SecretError::KeyringUnavailable { detail })
    }
}

impl SecretStore for KeyringStore {
    fn backend(&self) -> Backend {
        Backend::OsKeyring
    }

    fn location(&self) -> String {
        self.place.describe().to_string()
    }

    fn get(&self, id: &SecretId) -> Result<Option<Credential>, SecretError> {
        self.check_usable()?;
        let bytes = kernel::read(self.place, &self.description(id)).map_err(|detail| {
            SecretError::Keyring {
                id: id.to_string(),
                detail,
            }
        })?;
        match bytes {
            Some(bytes) => Credential::decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn set(&self, id: &SecretId, credential: &Credential) -> Result<(), SecretError> {
        self.check_usable()?;
        let encoded = credential.encode()?;
        kernel::write(self.place, &self.description(id), encoded.as_bytes()).map_err(|detail| {
            SecretError::Keyring {
                id: id.to_string(),
                detail,
            }
        })
    }

    fn delete(&self, id: &SecretId) -> Result<bool, SecretError> {
        self.check_usable()?;
        kernel::remove(self.place, &self.description(id)).map_err(|detail| SecretError::Keyring {
            id: id.to_string(),
            detail,
        })
    }

    fn unscoped_legacy_entry(&self, id: &SecretId) -> bool {
        kernel::legacy_present(&Self::legacy_description(id))
    }
}

#[cfg(target_os = "linux")]
mod kernel {
    use linux_keyutils::{Key, KeyError, KeyRing, KeyRingIdentifier};
    use zeroize::Zeroizing;

    use super::KeyringPlace;

    /// More links than any user's key quota allows; `get_links` needs a bound.
    const MAX_LINKS: usize = 16 * 1024;

    /// The keyring of `place`, refusing a session "keyring" that is really the user-session
    /// keyring (a process started without a session keyring of its own falls back to it, and
    /// it outlives every session).
    pub fn ring(place: KeyringPlace) -> Result<KeyRing, String> {
        match place {
            KeyringPlace::Session => {
                let session = KeyRing::from_special_id(KeyRingIdentifier::Session, false)
                    .map_err(|e| format!("no session keyring: {e:?}"))?;
                let user_session =
                    KeyRing::from_special_id(KeyRingIdentifier::UserSession, false).ok();
                if user_session == Some(session) {
                    return Err(
                        "this process has no session keyring of its own (the kernel \
                                would fall back to the user-session keyring, which outlives \
                                every session)"
                            .to_string(),
                    );
                }
                Ok(session)
            }
            // Linked into the process keyring only, which ends with this process: the session
            // keyring is left as it was.
            KeyringPlace::Persistent => KeyRing::get_persistent(KeyRingIdentifier::Process)
                .map_err(|e| format!("no persistent keyring: {e:?}")),
        }
    }

    /// The key of that description linked directly into `ring`.
    fn find(ring: KeyRing, description: &str) -> Result<Option<Key>, KeyError> {
        let key = match ring.search(description) {
            Ok(key) => key,
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // search also descends into nested keyrings; only a direct link counts.
        Ok(ring.get_links(MAX_LINKS)?.contains(&key).then_some(key))
    }

    pub fn read(
        place: KeyringPlace,
        description: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let ring = ring(place)?;
        let Some(key) = find(ring, description).map_err(|e| format!("search failed: {e:?}"))?
        else {
            return Ok(None);
        };
        match key.read_to_vec() {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            // Deleted between the search and the read.
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                Ok(None)
            }
            Err(e) => Err(format!("read failed: {e:?}")),
        }
    }

    /// Create or replace (the kernel replaces a key of the same description in that keyring).
    pub fn write(place: KeyringPlace, description: &str, value: &[u8]) -> Result<(), String> {
        ring(place)?
            .add_key(description, value)
            .map(|_| ())
            .map_err(|e| format!("adding the key failed: {e:?}"))
    }

    pub fn remove(place: KeyringPlace, description: &str) -> Result<bool, String> {
        let ring = ring(place)?;
        let Some(key) = find(ring, description).map_err(|e| format!("search failed: {e:?}"))?
        else {
            return Ok(false);
        };
        if key.invalidate().is_err() {
            ring.unlink_key(key)
                .map_err(|e| format!("removing the key failed: {e:?}"))?;
        }
        Ok(true)
    }

    /// Whether an older trademind's unscoped entry is reachable from this process: from the
    /// session keyring (and whatever it links, such as the persistent keyring) or the
    /// persistent keyring. Errors read as "no".
    pub fn legacy_present(description: &str) -> bool {
        let from_session = KeyRing::from_special_id(KeyRingIdentifier::Session, false)
            .is_ok_and(|s| s.search(description).is_ok());
        from_session
            || KeyRing::get_persistent(KeyRingIdentifier::Process)
                .is_ok_and(|p| p.search(description).is_ok())
    }

    /// Add, read back and remove a throwaway key, so that a refusal is reported once with
    /// what to do instead of as a missing entry.
    pub fn probe(place: KeyringPlace) -> Result<(), String> {
        let ring = ring(place)?;
        let description = format!("trademind-probe:{}", std::process::id());
        let key = ring.add_key(&description, b"probe").map_err(|e| {
            format!(
                "adding a test key to the {} failed: {e:?}",
                place.describe()
            )
        })?;
        let read = match key.read_to_vec() {
            Ok(v) if v == b"probe" => Ok(()),
            Ok(_) => Err("a test key read back different bytes".to_string()),
            Err(e) => Err(format!("reading a test key back failed: {e:?}")),
        };
        if key.invalidate().is_err() {
            let _ = ring.unlink_key(key);
        }
        read
    }
}

/// Elsewhere: the platform keyring through the `keyring` crate, under the same scoped names.
#[cfg(not(target_os = "linux"))]
mod kernel {
    use keyring::Entry;
    use zeroize::Zeroizing;

    use super::{KeyringPlace, SERVICE};

    fn entry(description: &str) -> Result<Entry, String> {
        Entry::new(SERVICE, description).map_err(|e| e.to_string())
    }

    pub fn read(_: KeyringPlace, description: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        match entry(description)?.get_secret() {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(keyring::Error::BadEncoding(_)) => Err("the stored value is not UTF-8".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn write(_: KeyringPlace, description: &str, value: &[u8]) -> Result<(), String> {
        entry(description)?
            .set_secret(value)
            .map_err(|e| e.to_string())
    }

    pub fn remove(_: KeyringPlace, description: &str) -> Result<bool, String> {
        match entry(description)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn legacy_present(_: &str) -> bool {
        false
    }

    pub fn probe(_: KeyringPlace) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{ConnectionName, SecretKind};

    #[test]
    fn entries_of_two_data_dirs_have_different_descriptions() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let id = SecretId::new(SecretKind::Binance, ConnectionName::new("main").unwrap());
        let in_a = KeyringStore::new(KeyringPlace::Session, DataDirScope::of(a.path()));
        let in_b = KeyringStore::new(KeyringPlace::Session, DataDirScope::of(b.path()));
        assert_ne!(in_a.description(&id), in_b.description(&id));
        assert!(in_a.description(&id).starts_with("trademind:binance:main@"));
        // The same dir reached through a different spelling is the same scope.
        let dotted = a.path().join(".");
        assert_eq!(DataDirScope::of(&dotted), DataDirScope::of(a.path()));
    }

    #[test]
    fn legacy_description_is_what_keyring_3_used() {
        let id = SecretId::default_for(SecretKind::Grok);
        assert_eq!(
            KeyringStore::legacy_description(&id),
            "keyring-rs:grok:default@trademind"
        );
    }
}
