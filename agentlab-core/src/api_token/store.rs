//! [`ApiTokenStore`]: where the daemon keeps API tokens (hashes only).

use async_trait::async_trait;

use super::record::ApiToken;
use crate::store::StateStoreError;
use crate::time::Timestamp;

/// Storage of API tokens. Implemented by `crate::sqlite::SqliteStore` (feature `sqlite`) (table `api_tokens`
/// in the state database) and by the in-memory fake; both pass
/// `testkit::api_tokens::api_token_store_conformance`.
#[async_trait]
pub trait ApiTokenStore: Send + Sync + std::fmt::Debug {
    /// Stores a new token. A token that is not revoked with the same name is
    /// `AlreadyExists`.
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StateStoreError>;

    /// The token with this id (`NotFound` otherwise), revoked and expired ones included.
    async fn get_api_token(&self, id: &str) -> Result<ApiToken, StateStoreError>;

    /// Every token, oldest first.
    async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StateStoreError>;

    /// Revokes the token with this id, or else the one not revoked with this name, at `at`
    /// (a revoked token stays revoked at its first time). Returns the record.
    async fn revoke_api_token(
        &self,
        id_or_name: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StateStoreError>;

    /// Records that the token was used at `at`.
    async fn touch_api_token(&self, id: &str, at: Timestamp) -> Result<(), StateStoreError>;
}
