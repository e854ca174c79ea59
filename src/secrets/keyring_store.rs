//! The OS keyring through the `keyring` 3 crate (kernel keyutils on Linux: `linux-native`).
//!
//! keyring 3 reports a keyutils permission failure as `NoEntry`: a process without a session
//! keyring of its own can add a key but not link it into the persistent keyring, and reads fail
//! the same way. So before the first real operation the store probes once (set, read back,
//! delete a throwaway entry); if that fails, every call returns `KeyringUnavailable`, whose
//! message says what to do, instead of a misleading "not found".
//!
//! Every method blocks: async code goes through `Secrets`, which uses `spawn_blocking`.

use std::sync::OnceLock;

use keyring::Entry;

use super::{Backend, Credential, SERVICE, SecretError, SecretId, SecretStore};

#[derive(Debug, Default)]
pub struct KeyringStore {
    usable: OnceLock<Result<(), String>>,
}

/// What a keyring error says, without anything that could hold secret bytes.
fn describe(err: &keyring::Error) -> String {
    match err {
        keyring::Error::BadEncoding(_) => "the stored value is not UTF-8".to_string(),
        keyring::Error::Ambiguous(items) => format!("{} entries match", items.len()),
        other => other.to_string(),
    }
}

impl KeyringStore {
    pub fn new() -> KeyringStore {
        KeyringStore::default()
    }

    fn entry(user: &str) -> Result<Entry, SecretError> {
        Entry::new(SERVICE, user).map_err(|e| SecretError::KeyringUnavailable {
            detail: describe(&e),
        })
    }

    /// Probe once per process whether the keyring accepts, returns and deletes an entry.
    pub fn check_usable(&self) -> Result<(), SecretError> {
        self.usable
            .get_or_init(probe)
            .clone()
            .map_err(|detail| SecretError::KeyringUnavailable { detail })
    }
}

fn probe() -> Result<(), String> {
    // On Linux, ask the kernel directly first: it says "access denied" where keyring 3 says
    // "no entry", and a refused probe key can be removed by its handle instead of being left
    // in the user session keyring (where keyring's own delete cannot find it).
    #[cfg(target_os = "linux")]
    keyutils_probe()?;
    const PROBE_VALUE: &[u8] = b"trademind-keyring-probe";
    let user = format!("probe:{}", std::process::id());
    let entry = Entry::new(SERVICE, &user).map_err(|e| describe(&e))?;
    let result = match entry.set_secret(PROBE_VALUE) {
        Err(keyring::Error::NoEntry) => Err(
            "storing a test entry was refused (keyring reports the permission error as 'no entry')"
                .to_string(),
        ),
        Err(e) => Err(format!("storing a test entry failed: {}", describe(&e))),
        Ok(()) => match entry.get_secret() {
            Ok(v) if v == PROBE_VALUE => Ok(()),
            Ok(_) => Err("a test entry read back different bytes".to_string()),
            Err(keyring::Error::NoEntry) => Err(
                "a test entry was stored but could not be read back (permission denied, \
                 reported as 'no entry')"
                    .to_string(),
            ),
            Err(e) => Err(format!("reading a test entry failed: {}", describe(&e))),
        },
    };
    let _ = entry.delete_credential();
    result
}

/// Do what keyring's keyutils store does on `set` (add to the session keyring, link into the
/// persistent one) with a throwaway key, and remove it by handle whatever happens.
#[cfg(target_os = "linux")]
fn keyutils_probe() -> Result<(), String> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let session = KeyRing::from_special_id(KeyRingIdentifier::Session, false)
        .map_err(|e| format!("no session keyring: {e:?}"))?;
    let description = format!("trademind-probe:{}", std::process::id());
    let key = session
        .add_key(&description, b"probe")
        .map_err(|e| format!("adding a test key to the session keyring failed: {e:?}"))?;
    let linked = match KeyRing::get_persistent(KeyRingIdentifier::Session) {
        Ok(persistent) => persistent.link_key(key).map_err(|e| {
            format!(
                "the kernel refused to link a test key into the persistent keyring ({e:?}): \
                 this process has no session keyring of its own"
            )
        }),
        // keyring 3 skips the persistent keyring when there is none; so does the probe.
        Err(_) => Ok(()),
    };
    // Invalidation needs possession, which such a process lacks; unlinking only needs write
    // access to the keyring the key was just added to, and drops the key's last reference.
    if key.invalidate().is_err() {
        let _ = session.unlink_key(key);
    }
    linked
}

impl SecretStore for KeyringStore {
    fn backend(&self) -> Backend {
        Backend::OsKeyring
    }

    fn get(&self, id: &SecretId) -> Result<Option<Credential>, SecretError> {
        self.check_usable()?;
        match Self::entry(&id.user())?.get_secret() {
            Ok(bytes) => {
                let bytes = zeroize::Zeroizing::new(bytes);
                Credential::decode(id, &bytes).map(Some)
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(SecretError::Keyring {
                id: id.to_string(),
                detail: describe(&e),
            }),
        }
    }

    fn set(&self, id: &SecretId, credential: &Credential) -> Result<(), SecretError> {
        self.check_usable()?;
        let entry = Self::entry(&id.user())?;
        let encoded = credential.encode()?;
        match entry.set_secret(encoded.as_bytes()) {
            Ok(()) => Ok(()),
            Err(keyring::Error::NoEntry) => {
                let _ = entry.delete_credential();
                Err(SecretError::KeyringUnavailable {
                    detail: format!("storing {id} was refused (reported as 'no entry')"),
                })
            }
            Err(e) => Err(SecretError::Keyring {
                id: id.to_string(),
                detail: describe(&e),
            }),
        }
    }

    fn delete(&self, id: &SecretId) -> Result<bool, SecretError> {
        self.check_usable()?;
        match Self::entry(&id.user())?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(SecretError::Keyring {
                id: id.to_string(),
                detail: describe(&e),
            }),
        }
    }
}
