//! Mapping of rusqlite errors to [`StateStoreError`]; rusqlite types stop here.

use rusqlite::ErrorCode;

use crate::store::StateStoreError;

/// Converts a rusqlite result into a store result.
pub(super) trait SqlResultExt<T> {
    /// Maps the error with [`map_err`].
    fn sql(self) -> Result<T, StateStoreError>;
}

impl<T> SqlResultExt<T> for rusqlite::Result<T> {
    fn sql(self) -> Result<T, StateStoreError> {
        self.map_err(map_err)
    }
}

/// Busy, locked, unopenable, read-only or full databases are `Unavailable`; everything else
/// is `Backend`. Constraint violations with a known record are mapped by [`map_insert_err`].
pub(super) fn map_err(e: rusqlite::Error) -> StateStoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::PermissionDenied,
        ) => StateStoreError::Unavailable(Box::new(e)),
        _ => StateStoreError::Backend(Box::new(e)),
    }
}

/// Like [`map_err`], but a unique/primary-key violation becomes `AlreadyExists{kind, id}`.
pub(super) fn map_insert_err(e: rusqlite::Error, kind: &'static str, id: &str) -> StateStoreError {
    if is_unique_violation(&e) {
        StateStoreError::AlreadyExists {
            kind,
            id: id.to_owned(),
        }
    } else {
        map_err(e)
    }
}

/// Whether `e` is a UNIQUE or PRIMARY KEY constraint violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(err) if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Whether `e` is a FOREIGN KEY constraint violation.
pub(super) fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(err) if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// Error for a `spawn_blocking` task that panicked or was cancelled.
pub(super) fn join_err(e: tokio::task::JoinError) -> StateStoreError {
    StateStoreError::Backend(Box::new(e))
}
