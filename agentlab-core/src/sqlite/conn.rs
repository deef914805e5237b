//! The [`SqliteStore`] handle: opening (pragmas and migrations), the blocking-work helper,
//! the schema version and online backup.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::{SqlResultExt as _, join_err};
use super::migrations;
use crate::store::StateStoreError;

/// How long a statement waits for another connection's write lock before `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite-backed [`crate::StateStore`].
///
/// Cloning is cheap and shares the connection. Every operation runs on tokio's blocking pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), agentlab_core::StateStoreError> {
/// use agentlab_core::sqlite::SqliteStore;
/// let store = SqliteStore::open(std::path::Path::new("/var/lib/agentlab/state.db")).await?;
/// store.backup_to(std::path::Path::new("/var/backups/agentlab-state.db")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The schema version this build writes (`PRAGMA user_version` after open).
    pub const SCHEMA_VERSION: u32 = migrations::LATEST;

    /// Opens (creating if missing, mode 0600) the database at `path`: WAL journal, foreign
    /// keys on, a 5 s busy timeout, then every pending migration. The parent directory must
    /// exist (`Unavailable` otherwise).
    /// A file written by a newer AgentLab (higher schema version) is refused with `Backend`.
    pub async fn open(path: &Path) -> Result<Self, StateStoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(join_err)?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StateStoreError> {
        create_private(&path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).sql()?;
        conn.busy_timeout(BUSY_TIMEOUT).sql()?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .sql()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateStoreError::Backend(
                format!("Cannot enable WAL journal mode (got {mode})").into(),
            ));
        }
        conn.pragma_update(None, "foreign_keys", true).sql()?;
        conn.pragma_update(None, "synchronous", "NORMAL").sql()?;
        let before = migrations::migrate_to(&mut conn, migrations::LATEST)?;
        tracing::debug!(
            path = %path.display(),
            from_version = before,
            schema_version = migrations::LATEST,
            "Opened state database"
        );
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        })
    }

    /// The database file this store uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file's schema version (`PRAGMA user_version`).
    pub async fn schema_version(&self) -> Result<u32, StateStoreError> {
        self.run(|conn| migrations::version(conn)).await
    }

    /// Reads the schema version of the database file at `path` without migrating or
    /// changing it (opened read-only). Blocking: call it off async threads. A file that is not
    /// an SQLite database is `Backend`.
    pub fn file_schema_version(path: &Path) -> Result<u32, StateStoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).sql()?;
        migrations::version(&conn)
    }

    /// Copies a consistent snapshot of the database to `dest` with SQLite's online backup API
    /// while the store stays usable. `dest` is created (mode 0600) or overwritten; its
    /// directory must exist (`Unavailable` otherwise). The copy is a normal database that [`SqliteStore::open`] accepts.
    pub async fn backup_to(&self, dest: &Path) -> Result<(), StateStoreError> {
        let dest = dest.to_path_buf();
        self.run(move |conn| {
            create_private(&dest)?;
            conn.backup(rusqlite::MAIN_DB, &dest, None).sql()?;
            tracing::info!(dest = %dest.display(), "Backed up state database");
            Ok(())
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool. The mutex is taken and released
    /// inside the blocking task, never across an `.await`.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, StateStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StateStoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolls back its transaction on unwind, so the connection is
            // still consistent: recover it from the poisoned lock.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(join_err)?
    }
}

/// Creates `path` as an empty file readable only by its owner, unless it exists. SQLite then
/// gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> Result<(), StateStoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StateStoreError::Unavailable(Box::new(e))),
    }
}
