//! In-memory `SecretStore` for tests: entries shared by every caller of the same instance
//! (unlike `keyring::mock`, whose entries do not share state).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::{Backend, Credential, SecretError, SecretId, SecretStore};

#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<SecretId, Credential>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl SecretStore for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn get(&self, id: &SecretId) -> Result<Option<Credential>, SecretError> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries.get(id).cloned())
    }

    fn set(&self, id: &SecretId, credential: &Credential) -> Result<(), SecretError> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.insert(id.clone(), credential.clone());
        Ok(())
    }

    fn delete(&self, id: &SecretId) -> Result<bool, SecretError> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries.remove(id).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{ConnectionName, Secret, SecretKind};

    #[test]
    fn entries_are_keyed_by_kind_and_connection() {
        let store = MemoryStore::new();
        let main = SecretId::default_for(SecretKind::Tavily);
        let alt = SecretId::new(SecretKind::Tavily, ConnectionName::new("alt").unwrap());
        store
            .set(&main, &Credential::ApiKey(Secret::new("tvly-main")))
            .unwrap();
        assert!(store.get(&alt).unwrap().is_none());
        store
            .set(&main, &Credential::ApiKey(Secret::new("tvly-new")))
            .unwrap();
        assert_eq!(
            store.get(&main).unwrap().unwrap().api_key().expose(),
            "tvly-new"
        );
    }
}
