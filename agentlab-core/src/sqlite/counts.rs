//! The `state_counts` table: records per state, kept by triggers on `sandboxes` and `jobs`
//! (migration 3), so [`crate::StateStore::counts`] reads a handful of rows whatever the size
//! of the tables.

use rusqlite::Connection;

use super::codec::corrupt;
use super::error::SqlResultExt as _;
use crate::store::{StateCounts, StateStoreError};

/// See [`crate::StateStore::counts`].
pub(super) fn read(conn: &Connection) -> Result<StateCounts, StateStoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT kind, state, n FROM state_counts WHERE n > 0")
        .sql()?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .sql()?;
    let mut counts = StateCounts::default();
    for row in rows {
        let (kind, state, n) = row.sql()?;
        let n = u64::try_from(n).unwrap_or(0);
        let bad = |e: String| corrupt("state_counts.state", e);
        match kind.as_str() {
            "sandbox" => {
                let s = state.parse().map_err(|_| bad(state.clone())).sql()?;
                counts.sandboxes.insert(s, n);
            }
            "job" => {
                let s = state.parse().map_err(|_| bad(state.clone())).sql()?;
                counts.jobs.insert(s, n);
            }
            _ => {}
        }
    }
    Ok(counts)
}
