//! The `bootstrap_tokens` table: hashes only, single use.

use rusqlite::{Connection, TransactionBehavior};

use super::codec::{get_ts, ts};
use super::error::SqlResultExt as _;
use crate::ids::Vmid;
use crate::model::BootstrapToken;
use crate::store::{RunnerTokenIssue, StateStoreError, TokenCheck, TokenStatus};
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

/// See [`crate::StateStore::redeem_bootstrap_token`]: the token's use and the runner token
/// hash are written in one immediate transaction, so a crash leaves either both or neither.
pub(super) fn redeem(
    conn: &mut Connection,
    vmid: Vmid,
    presented: &str,
    now: Timestamp,
    issue: Option<&RunnerTokenIssue>,
) -> Result<TokenCheck, StateStoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    let rows: Vec<(i64, String, Timestamp, bool)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, hash, expires_at, consumed FROM bootstrap_tokens WHERE vmid = ?1 \
                 ORDER BY id",
            )
            .sql()?;
        let rows = stmt
            .query_map([vmid.get()], |r| {
                Ok((
                    r.get("id")?,
                    r.get("hash")?,
                    get_ts(r, "expires_at")?,
                    r.get::<_, i64>("consumed")? != 0,
                ))
            })
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()?
    };
    // Compare every row (constant time each, no early exit).
    let mut found = None;
    for (id, hash, expires_at, consumed) in &rows {
        if token_matches(presented, hash) {
            found = Some((*id, *expires_at, *consumed));
        }
    }
    let check = match found {
        None => TokenCheck::Unknown,
        Some((_, _, true)) => TokenCheck::Used,
        Some((_, exp, false)) if exp <= now => TokenCheck::Expired,
        Some(_) => TokenCheck::Accepted,
    };
    let Some((id, _, _)) = found.filter(|_| check == TokenCheck::Accepted) else {
        return Ok(check);
    };
    let changed = tx
        .execute(
            "UPDATE bootstrap_tokens SET consumed = 1, consumed_at = ?2 \
             WHERE id = ?1 AND consumed = 0",
            rusqlite::params![id, ts(now)],
        )
        .sql()?;
    if changed != 1 {
        return Ok(TokenCheck::Used);
    }
    if let Some(issue) = issue {
        let changed = tx
            .execute(
                "UPDATE jobs SET runner_token_hash = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND state = 'QUEUED'",
                rusqlite::params![issue.job.as_str(), issue.hash, ts(now)],
            )
            .sql()?;
        if changed != 1 {
            let actual: Option<String> = tx
                .query_row(
                    "SELECT state FROM jobs WHERE id = ?1",
                    [issue.job.as_str()],
                    |r| r.get(0),
                )
                .ok();
            return match actual {
                None => Err(StateStoreError::NotFound {
                    kind: "job",
                    id: issue.job.to_string(),
                }),
                Some(actual) => Err(StateStoreError::Conflict {
                    kind: "job",
                    id: issue.job.to_string(),
                    expected: "QUEUED".into(),
                    actual,
                }),
            };
        }
    }
    tx.commit().sql()?;
    Ok(TokenCheck::Accepted)
}

/// See [`crate::StateStore::bootstrap_tokens`].
pub(super) fn list(conn: &Connection, vmid: Vmid) -> Result<Vec<TokenStatus>, StateStoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT expires_at, consumed FROM bootstrap_tokens WHERE vmid = ?1 ORDER BY id",
        )
        .sql()?;
    let rows = stmt
        .query_map([vmid.get()], |r| {
            Ok(TokenStatus {
                expires_at: get_ts(r, "expires_at")?,
                consumed: r.get::<_, i64>("consumed")? != 0,
            })
        })
        .sql()?;
    rows.collect::<rusqlite::Result<_>>().sql()
}

/// See [`crate::StateStore::delete_bootstrap_tokens`].
pub(super) fn delete_all(conn: &Connection, vmid: Vmid) -> Result<(), StateStoreError> {
    conn.execute("DELETE FROM bootstrap_tokens WHERE vmid = ?1", [vmid.get()])
        .sql()?;
    Ok(())
}
