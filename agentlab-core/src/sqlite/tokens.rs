//! The `bootstrap_tokens` table: hashes only, single use.

use rusqlite::{Connection, TransactionBehavior};

use super::codec::ts;
use super::error::SqlResultExt as _;
use crate::ids::Vmid;
use crate::model::BootstrapToken;
use crate::store::StateStoreError;
use crate::time::Timestamp;
use crate::token::token_matches;

/// See [`crate::StateStore::put_bootstrap_token`].
pub(super) fn put(conn: &Connection, token: &BootstrapToken) -> Result<(), StateStoreError> {
    conn.prepare_cached(
        "INSERT INTO bootstrap_tokens (vmid, hash, expires_at) VALUES (?1, ?2, ?3)",
    )
    .sql()?
    .execute(rusqlite::params![
        token.vmid.get(),
        token.hash,
        ts(token.expires_at)
    ])
    .sql()?;
    Ok(())
}

/// See [`crate::StateStore::consume_bootstrap_token`]. Every candidate of the vmid is compared
/// (constant time each, no early exit); the winner is marked with `UPDATE … WHERE consumed = 0`
/// inside an immediate transaction, so concurrent callers cannot both succeed.
pub(super) fn consume(
    conn: &mut Connection,
    vmid: Vmid,
    presented: &str,
    now: Timestamp,
) -> Result<(), StateStoreError> {
    let not_found = || StateStoreError::NotFound {
        kind: "bootstrap token",
        id: vmid.to_string(),
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    let candidates: Vec<(i64, String)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, hash FROM bootstrap_tokens \
                 WHERE vmid = ?1 AND consumed = 0 AND expires_at > ?2",
            )
            .sql()?;
        let rows = stmt
            .query_map(rusqlite::params![vmid.get(), ts(now)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()?
    };
    let mut winner = None;
    for (id, hash) in &candidates {
        if token_matches(presented, hash) {
            winner = Some(*id);
        }
    }
    let id = winner.ok_or_else(not_found)?;
    let changed = tx
        .execute(
            "UPDATE bootstrap_tokens SET consumed = 1, consumed_at = ?2 \
             WHERE id = ?1 AND consumed = 0",
            rusqlite::params![id, ts(now)],
        )
        .sql()?;
    if changed != 1 {
        return Err(not_found());
    }
    tx.commit().sql()
}

/// See [`crate::StateStore::delete_bootstrap_tokens`].
pub(super) fn delete_all(conn: &Connection, vmid: Vmid) -> Result<(), StateStoreError> {
    conn.execute("DELETE FROM bootstrap_tokens WHERE vmid = ?1", [vmid.get()])
        .sql()?;
    Ok(())
}
