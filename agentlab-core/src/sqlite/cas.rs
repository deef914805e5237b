//! The compare-and-set state write shared by the `sandboxes` and `jobs` tables.

use std::fmt::Display;
use std::str::FromStr;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params_from_iter};

use super::error::SqlResultExt as _;
use crate::store::StateStoreError;

/// One row's compare-and-set: the row's key, its kind, and the SQL to write and re-read it.
pub(super) struct Cas<'a> {
    /// Record kind for errors (`sandbox`, `job`).
    pub kind: &'static str,
    /// The row's id for errors.
    pub id: String,
    /// The key value bound as `?1` of `select`.
    pub key: Value,
    /// `UPDATE … WHERE <key> = ?1 AND state = ?<last>`.
    pub update: &'a str,
    /// `SELECT state FROM … WHERE <key> = ?1`.
    pub select: &'a str,
}

impl Cas<'_> {
    /// Runs `update` with `args` in an immediate transaction. When no row changed, reads the
    /// stored state back: `NotFound` when the row is gone, else whatever `check(stored)`
    /// reports (the state-machine check, which names the conflict).
    pub(super) fn run<S>(
        self,
        conn: &mut Connection,
        args: Vec<Value>,
        expected: S,
        check: impl FnOnce(S) -> Result<(), StateStoreError>,
    ) -> Result<(), StateStoreError>
    where
        S: FromStr + Display + Copy,
        S::Err: std::error::Error + Send + Sync + 'static,
    {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .sql()?;
        let changed = tx
            .prepare_cached(self.update)
            .sql()?
            .execute(params_from_iter(args))
            .sql()?;
        if changed > 0 {
            return tx.commit().sql();
        }
        let stored: Option<String> = tx
            .query_row(self.select, [&self.key], |r| r.get(0))
            .optional()
            .sql()?;
        let Some(stored) = stored else {
            return Err(StateStoreError::NotFound {
                kind: self.kind,
                id: self.id,
            });
        };
        let stored: S = stored
            .parse()
            .map_err(|e| StateStoreError::Backend(Box::new(e)))?;
        check(stored)?;
        // Unreachable unless the row changed under the write lock; report it as a conflict.
        Err(StateStoreError::Conflict {
            kind: self.kind,
            id: self.id,
            expected: expected.to_string(),
            actual: stored.to_string(),
        })
    }
}
