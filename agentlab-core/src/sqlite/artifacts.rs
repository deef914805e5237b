//! The `artifacts` table, keyed by (job, name); the job must exist (foreign key).

use rusqlite::{Connection, Row, params_from_iter};

use super::codec::{corrupt, get_parsed, get_ts, int, text, ts};
use super::error::{SqlResultExt as _, is_foreign_key_violation, map_err};
use crate::ids::JobId;
use crate::model::Artifact;
use crate::store::StateStoreError;
use crate::time::Timestamp;

const COLUMNS: &str = "job, name, size, sha256, created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Artifact> {
    let size: i64 = row.get("size")?;
    Ok(Artifact {
        job: get_parsed(row, "job")?,
        name: row.get("name")?,
        size: u64::try_from(size).map_err(|e| corrupt("size", e))?,
        sha256: row.get("sha256")?,
        created_at: get_ts(row, "created_at")?,
    })
}

/// See [`crate::StateStore::put_artifact`]. `NotFound{kind: "job"}` when the job is unknown.
pub(super) fn put(conn: &Connection, a: &Artifact) -> Result<(), StateStoreError> {
    let size = i64::try_from(a.size).map_err(|e| StateStoreError::Backend(Box::new(e)))?;
    let args = vec![
        text(&a.job),
        text(&a.name),
        int(size),
        text(&a.sha256),
        ts(a.created_at),
    ];
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO artifacts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))
    .sql()?
    .execute(params_from_iter(args))
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StateStoreError::NotFound {
                kind: "job",
                id: a.job.to_string(),
            }
        } else {
            map_err(e)
        }
    })?;
    Ok(())
}

/// See [`crate::StateStore::list_artifacts`].
pub(super) fn list(conn: &Connection, job: &JobId) -> Result<Vec<Artifact>, StateStoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE job = ?1 ORDER BY name"
        ))
        .sql()?;
    let rows = stmt.query_map([job.as_str()], from_row).sql()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().sql()
}

/// See [`crate::StateStore::artifacts_before`]: oldest first, then by job and name.
pub(super) fn before(
    conn: &Connection,
    before: Timestamp,
) -> Result<Vec<Artifact>, StateStoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE created_at < ?1 ORDER BY created_at, job, name"
        ))
        .sql()?;
    let rows = stmt.query_map([ts(before)], from_row).sql()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().sql()
}

/// See [`crate::StateStore::delete_artifact`]: `NotFound` when there is no such record.
pub(super) fn delete(conn: &Connection, job: &JobId, name: &str) -> Result<(), StateStoreError> {
    let deleted = conn
        .execute(
            "DELETE FROM artifacts WHERE job = ?1 AND name = ?2",
            [job.as_str(), name],
        )
        .sql()?;
    if deleted == 0 {
        return Err(StateStoreError::NotFound {
            kind: "artifact",
            id: format!("{job}/{name}"),
        });
    }
    Ok(())
}
