//! Retention: batched deletes of old events and of ended jobs, each batch one short
//! immediate transaction so a large prune never holds the write lock for long.

use rusqlite::{Connection, TransactionBehavior};

use super::codec::ts;
use super::error::SqlResultExt as _;
use crate::state::{JobState, SandboxState};
use crate::store::{PrunedJobs, StateStoreError};
use crate::time::Timestamp;

/// `'QUEUED', 'RUNNING'`: the job states whose events are never pruned.
fn unfinished_jobs() -> String {
    format!(
        "'{}', '{}'",
        JobState::Queued.as_str(),
        JobState::Running.as_str()
    )
}

/// See [`crate::StateStore::prune_events_before`]. Walks the `events_ts` index.
pub(super) fn events_before(
    conn: &mut Connection,
    before: Timestamp,
    batch: u32,
) -> Result<u64, StateStoreError> {
    let sql = format!(
        "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.ts < ?1 \
         AND (e.sandbox IS NULL OR NOT EXISTS (SELECT 1 FROM sandboxes s \
              WHERE s.vmid = e.sandbox AND s.state <> '{destroyed}')) \
         AND (e.job IS NULL OR NOT EXISTS (SELECT 1 FROM jobs j \
              WHERE j.id = e.job AND j.state IN ({unfinished}))) \
         ORDER BY e.ts, e.id LIMIT ?2)",
        destroyed = SandboxState::Destroyed.as_str(),
        unfinished = unfinished_jobs(),
    );
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    let n = tx
        .prepare_cached(&sql)
        .sql()?
        .execute(rusqlite::params![ts(before), batch])
        .sql()?;
    tx.commit().sql()?;
    Ok(n as u64)
}

/// See [`crate::StateStore::prune_jobs_finished_before`].
pub(super) fn jobs_finished_before(
    conn: &mut Connection,
    before: Timestamp,
    batch: u32,
) -> Result<PrunedJobs, StateStoreError> {
    let select = format!(
        "SELECT j.id FROM jobs j WHERE j.state NOT IN ({unfinished}) \
         AND j.ended_at < ?1 \
         AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.job = j.id) \
         AND NOT EXISTS (SELECT 1 FROM sandboxes s WHERE s.job = j.id \
              AND s.state <> '{destroyed}') \
         ORDER BY j.ended_at, j.id LIMIT ?2",
        destroyed = SandboxState::Destroyed.as_str(),
        unfinished = unfinished_jobs(),
    );
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    let ids: Vec<String> = {
        let mut stmt = tx.prepare_cached(&select).sql()?;
        let rows = stmt
            .query_map(rusqlite::params![ts(before), batch], |r| r.get(0))
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()?
    };
    let mut out = PrunedJobs::default();
    let mut budget = u64::from(batch);
    for id in &ids {
        let n = tx
            .prepare_cached(
                "DELETE FROM events WHERE id IN \
                 (SELECT id FROM events WHERE job = ?1 ORDER BY id LIMIT ?2)",
            )
            .sql()?
            .execute(rusqlite::params![
                id,
                i64::try_from(budget).unwrap_or(i64::MAX)
            ])
            .sql()? as u64;
        out.events += n;
        if n == budget {
            // The budget is spent; the job (and any events left) go in the next call.
            break;
        }
        budget -= n;
        out.jobs += tx
            .prepare_cached("DELETE FROM jobs WHERE id = ?1")
            .sql()?
            .execute([id])
            .sql()? as u64;
    }
    tx.commit().sql()?;
    Ok(out)
}

/// See [`crate::StateStore::artifact_bytes_total`].
pub(super) fn artifact_bytes(conn: &Connection) -> Result<u64, StateStoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(size), 0) FROM artifacts")
        .sql()?
        .query_row([], |r| r.get(0))
        .sql()?;
    Ok(u64::try_from(n).unwrap_or(0))
}
