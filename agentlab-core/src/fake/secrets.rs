//! [`MemorySecretStore`]: an in-memory [`SecretStore`] that records which bundles were loaded.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::secrets::{SecretBundle, SecretStore, SecretStoreError};

/// A [`SecretStore`] backed by a map; every `load` call is recorded (also failed ones).
#[derive(Debug, Default)]
pub struct MemorySecretStore {
    bundles: Mutex<BTreeMap<String, SecretBundle>>,
    loads: Mutex<Vec<String>>,
}

impl MemorySecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the bundle `name`.
    pub fn insert(&self, name: impl Into<String>, bundle: SecretBundle) {
        self.bundles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.into(), bundle);
    }

    /// Removes the bundle `name`; returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        self.bundles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .is_some()
    }

    /// Names passed to [`SecretStore::load`], in call order.
    pub fn loads(&self) -> Vec<String> {
        self.loads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl SecretStore for MemorySecretStore {
    async fn load(&self, name: &str) -> Result<SecretBundle, SecretStoreError> {
        self.loads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_owned());
        self.bundles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| SecretStoreError::NotFound(name.to_owned()))
    }

    async fn list(&self) -> Result<Vec<String>, SecretStoreError> {
        // BTreeMap keys are already sorted.
        Ok(self
            .bundles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;

    #[tokio::test]
    async fn loads_lists_and_records() {
        let store = MemorySecretStore::new();
        let mut b = SecretBundle::default();
        b.env
            .insert("API_KEY".into(), SecretValue::new("sk-123456"));
        store.insert("zeta", SecretBundle::default());
        store.insert("alpha", b.clone());
        assert_eq!(store.list().await.unwrap(), vec!["alpha", "zeta"]);
        assert_eq!(store.load("alpha").await.unwrap(), b);
        assert!(
            matches!(store.load("nope").await, Err(SecretStoreError::NotFound(n)) if n == "nope")
        );
        assert_eq!(store.loads(), vec!["alpha", "nope"]);
        assert!(store.remove("zeta"));
        assert_eq!(store.list().await.unwrap(), vec!["alpha"]);
    }
}
