//! The real OS keyring (kernel keyutils) behind `Secrets`. Keys go to the session keyring, which
//! a process must have of its own, so these tests run only when asked to:
//!
//! * `TRADEMIND_KEYUTILS_TEST=1 keyctl session - cargo nextest run keyutils` (package
//!   `keyutils`): store, read back, replace and delete real entries;
//! * `TRADEMIND_KEYUTILS_TEST=expect-unavailable cargo nextest run keyutils` in a plain process
//!   (no session keyring): the store must say so and what to do, not "no entry".

use std::sync::Arc;
use std::time::Duration;

use trademind::secrets::{
    ConnectionName, Credential, DataDirScope, EnvStore, KeyringPlace, KeyringStore, Secret,
    SecretError, SecretId, SecretKind, SecretStore, Secrets,
};

const GATE: &str = "TRADEMIND_KEYUTILS_TEST";

fn gate_is(value: &str, test: &str) -> bool {
    let actual = std::env::var(GATE).unwrap_or_default();
    if actual != value {
        eprintln!(
            "skipping {test}: set {GATE}={value} to run it{}",
            if value == "1" {
                " under a session keyring (`keyctl session - ...`)"
            } else {
                " in a process without a session keyring"
            }
        );
        return false;
    }
    true
}

/// The data dir every test of this process stores for (it need not exist).
fn scope() -> DataDirScope {
    DataDirScope::of(&std::env::temp_dir().join(format!("trademind-it-{}", std::process::id())))
}

fn keyring_secrets() -> Secrets {
    secrets_in(KeyringPlace::Session, scope())
}

fn secrets_in(place: KeyringPlace, scope: DataDirScope) -> Secrets {
    Secrets::new(
        EnvStore::from_pairs([]),
        Some(Arc::new(KeyringStore::new(place, scope)) as Arc<dyn SecretStore>),
    )
}

/// A connection of our own, so parallel runs and a developer's real entries are never touched.
fn test_id(kind: SecretKind) -> SecretId {
    let name = format!("it-{}", std::process::id());
    SecretId::new(kind, ConnectionName::new(&name).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyutils_store_round_trips_replaces_and_deletes_a_binance_pair() {
    if !gate_is(
        "1",
        "keyutils_store_round_trips_replaces_and_deletes_a_binance_pair",
    ) {
        return;
    }
    let secrets = keyring_secrets();
    let id = test_id(SecretKind::Binance);
    assert!(secrets.get(&id).await.unwrap().is_none());

    let pair = |k: &str, s: &str| Credential::KeyPair {
        api_key: Secret::new(k),
        api_secret: Secret::new(s),
    };
    secrets
        .set(&id, pair("key-one", "secret-one"))
        .await
        .unwrap();
    let got = secrets.require(&id).await.unwrap();
    assert_eq!(got.backend, trademind::secrets::Backend::OsKeyring);
    assert_eq!(got.credential.api_key().expose(), "key-one");
    assert_eq!(got.credential.api_secret().unwrap().expose(), "secret-one");

    secrets
        .set(&id, pair("key-two", "secret-two"))
        .await
        .unwrap();
    let got = secrets.require(&id).await.unwrap();
    assert_eq!(got.credential.api_secret().unwrap().expose(), "secret-two");

    // A fresh store (as a second process would have) sees the same entry.
    let other = keyring_secrets();
    let seen = other.require(&id).await.unwrap();
    assert_eq!(seen.credential.api_key().expose(), "key-two");

    assert!(secrets.delete(&id).await.unwrap());
    // keyutils invalidation is asynchronous in the kernel: a just-deleted key can still be found
    // for a few milliseconds by the process that deleted it.
    let mut gone = false;
    for _ in 0..50 {
        if secrets.get(&id).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "entry still readable one second after delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyutils_store_keeps_single_key_kinds_apart() {
    if !gate_is("1", "keyutils_store_keeps_single_key_kinds_apart") {
        return;
    }
    let secrets = keyring_secrets();
    let grok = test_id(SecretKind::Grok);
    let tavily = test_id(SecretKind::Tavily);
    secrets
        .set(&grok, Credential::ApiKey(Secret::new("xai-abc")))
        .await
        .unwrap();
    secrets
        .set(&tavily, Credential::ApiKey(Secret::new("tvly-def")))
        .await
        .unwrap();
    let g = secrets.require(&grok).await.unwrap();
    let t = secrets.require(&tavily).await.unwrap();
    assert_eq!(g.credential.api_key().expose(), "xai-abc");
    assert_eq!(t.credential.api_key().expose(), "tvly-def");
    assert!(secrets.delete(&grok).await.unwrap());
    assert!(secrets.delete(&tavily).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyutils_without_session_keyring_reports_what_to_do_instead_of_no_entry() {
    if !gate_is(
        "expect-unavailable",
        "keyutils_without_session_keyring_reports_what_to_do_instead_of_no_entry",
    ) {
        return;
    }
    let secrets = keyring_secrets();
    let id = test_id(SecretKind::Resend);
    let err = secrets.get(&id).await.unwrap_err();
    assert!(
        matches!(err, SecretError::KeyringUnavailable { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("keyctl session trademind"), "{text}");
    assert!(text.contains("Secret Service"), "{text}");
    assert!(text.contains("TRADEMIND_"), "{text}");
    let err = secrets
        .set(&id, Credential::ApiKey(Secret::new("re_123")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SecretError::KeyringUnavailable { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyutils_an_entry_of_one_data_dir_is_invisible_to_another() {
    if !gate_is(
        "1",
        "keyutils_an_entry_of_one_data_dir_is_invisible_to_another",
    ) {
        return;
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let in_a = secrets_in(KeyringPlace::Session, DataDirScope::of(a.path()));
    let in_b = secrets_in(KeyringPlace::Session, DataDirScope::of(b.path()));
    let id = test_id(SecretKind::Grok);
    in_a.set(&id, Credential::ApiKey(Secret::new("xai-only-a")))
        .await
        .unwrap();
    let found = in_a.require(&id).await.unwrap();
    assert!(
        found.location.contains("session keyring"),
        "{}",
        found.location
    );
    assert!(in_b.get(&id).await.unwrap().is_none());
    let err = in_b.require(&id).await.unwrap_err().to_string();
    assert!(err.contains("for this data dir"), "{err}");
    assert!(in_a.delete(&id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyutils_session_and_persistent_stores_each_read_only_their_own_keyring() {
    if !gate_is(
        "1",
        "keyutils_session_and_persistent_stores_each_read_only_their_own_keyring",
    ) {
        return;
    }
    let session = secrets_in(KeyringPlace::Session, scope());
    let persistent = secrets_in(KeyringPlace::Persistent, scope());
    let id = test_id(SecretKind::Tavily);
    persistent
        .set(&id, Credential::ApiKey(Secret::new("tvly-persistent")))
        .await
        .unwrap();
    let found = persistent.require(&id).await.unwrap();
    assert!(
        found.location.contains("persistent keyring"),
        "{}",
        found.location
    );
    assert!(session.get(&id).await.unwrap().is_none());
    assert!(persistent.delete(&id).await.unwrap());
}
