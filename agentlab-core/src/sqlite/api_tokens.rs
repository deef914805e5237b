//! The `api_tokens` table: the remote API's tokens, hashes only.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};

use super::SqliteStore;
use super::codec::{get_json, get_opt_ts, get_ts, json, opt_ts, text, ts};
use super::error::{SqlResultExt as _, map_insert_err};
use crate::api_token::{ApiToken, ApiTokenStore};
use crate::store::StateStoreError;
use crate::time::Timestamp;

const COLUMNS: &str =
    "id, name, scopes, profiles, hash, created_at, expires_at, revoked_at, last_used_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get("id")?,
        name: r.get("name")?,
        scopes: get_json(r, "scopes")?,
        profiles: get_json(r, "profiles")?,
        hash: r.get("hash")?,
        created_at: get_ts(r, "created_at")?,
        expires_at: get_opt_ts(r, "expires_at")?,
        revoked_at: get_opt_ts(r, "revoked_at")?,
        last_used_at: get_opt_ts(r, "last_used_at")?,
    })
}

fn get(conn: &Connection, id: &str) -> Result<Option<ApiToken>, StateStoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1"))
        .sql()?
        .query_row([id], row)
        .optional()
        .sql()
}

fn not_found(id: &str) -> StateStoreError {
    StateStoreError::NotFound {
        kind: "api token",
        id: id.to_owned(),
    }
}

#[async_trait]
impl ApiTokenStore for SqliteStore {
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StateStoreError> {
        let t = token.clone();
        let scopes = json(&t.scopes)?;
        let profiles = json(&t.profiles)?;
        self.run(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO api_tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .sql()?
            .execute(rusqlite::params![
                t.id,
                t.name,
                scopes,
                profiles,
                t.hash,
                ts(t.created_at),
                opt_ts(t.expires_at),
                opt_ts(t.revoked_at),
                opt_ts(t.last_used_at),
            ])
            .map_err(|e| map_insert_err(e, "api token", &t.name))?;
            Ok(())
        })
        .await
    }

    async fn get_api_token(&self, id: &str) -> Result<ApiToken, StateStoreError> {
        let id = id.to_owned();
        self.run(move |conn| get(conn, &id)?.ok_or_else(|| not_found(&id)))
            .await
    }

    async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StateStoreError> {
        self.run(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id"
                ))
                .sql()?;
            let rows = stmt.query_map([], row).sql()?;
            rows.collect::<rusqlite::Result<_>>().sql()
        })
        .await
    }

    async fn revoke_api_token(
        &self,
        id_or_name: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StateStoreError> {
        let key = id_or_name.to_owned();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .sql()?;
            let id: Option<String> = match get(&tx, &key)? {
                Some(t) => Some(t.id),
                None => tx
                    .query_row(
                        "SELECT id FROM api_tokens WHERE name = ?1 AND revoked_at IS NULL",
                        [&key],
                        |r| r.get(0),
                    )
                    .optional()
                    .sql()?,
            };
            let id = id.ok_or_else(|| not_found(&key))?;
            tx.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                rusqlite::params![text(&id), ts(at)],
            )
            .sql()?;
            let out = get(&tx, &id)?.ok_or_else(|| not_found(&id))?;
            tx.commit().sql()?;
            Ok(out)
        })
        .await
    }

    async fn touch_api_token(&self, id: &str, at: Timestamp) -> Result<(), StateStoreError> {
        let id = id.to_owned();
        self.run(move |conn| {
            let n = conn
                .prepare_cached("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1")
                .sql()?
                .execute(rusqlite::params![id, ts(at)])
                .sql()?;
            if n == 0 {
                return Err(not_found(&id));
            }
            Ok(())
        })
        .await
    }
}
