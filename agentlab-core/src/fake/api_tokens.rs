//! [`ApiTokenStore`] for [`MemoryStore`], with the SQLite store's semantics.

use std::sync::PoisonError;

use async_trait::async_trait;

use super::MemoryStore;
use crate::api_token::{ApiToken, ApiTokenStore};
use crate::store::StateStoreError;
use crate::time::Timestamp;

fn not_found(id: &str) -> StateStoreError {
    StateStoreError::NotFound {
        kind: "api token",
        id: id.to_owned(),
    }
}

#[async_trait]
impl ApiTokenStore for MemoryStore {
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StateStoreError> {
        let mut all = self
            .api_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if all.iter().any(|t| t.id == token.id) {
            return Err(StateStoreError::AlreadyExists {
                kind: "api token",
                id: token.id.clone(),
            });
        }
        if all
            .iter()
            .any(|t| t.name == token.name && t.revoked_at.is_none())
        {
            return Err(StateStoreError::AlreadyExists {
                kind: "api token",
                id: token.name.clone(),
            });
        }
        all.push(token.clone());
        Ok(())
    }

    async fn get_api_token(&self, id: &str) -> Result<ApiToken, StateStoreError> {
        let all = self
            .api_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StateStoreError> {
        let mut all = self
            .api_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn revoke_api_token(
        &self,
        id_or_name: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StateStoreError> {
        let mut all = self
            .api_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let idx = all
            .iter()
            .position(|t| t.id == id_or_name)
            .or_else(|| {
                all.iter()
                    .position(|t| t.name == id_or_name && t.revoked_at.is_none())
            })
            .ok_or_else(|| not_found(id_or_name))?;
        let t = &mut all[idx];
        t.revoked_at.get_or_insert(at);
        Ok(t.clone())
    }

    async fn touch_api_token(&self, id: &str, at: Timestamp) -> Result<(), StateStoreError> {
        let mut all = self
            .api_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let t = all
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| not_found(id))?;
        t.last_used_at = Some(at);
        Ok(())
    }
}
