//! Schema migrations, tracked with `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` moves the schema from version `i` to `i + 1`. Migrations are append-only:
//! never edit a released one (old files were created by it); add a new one instead and keep a
//! fixture of the previous version under `agentlab-core/tests/fixtures/`.

use rusqlite::{Connection, TransactionBehavior};

use super::error::SqlResultExt as _;
use crate::store::StateStoreError;

/// Version 1: the base schema.
const V1: &str = r"
CREATE TABLE sandboxes (
    vmid              INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    profile           TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    node              TEXT,
    ip                TEXT,
    mac               TEXT,
    iface             TEXT,
    vm_created        INTEGER NOT NULL,
    job               TEXT,
    workspace         TEXT,
    lease_expires_at  INTEGER NOT NULL,
    lease_keepalive   INTEGER NOT NULL,
    lease_renewable   INTEGER NOT NULL,
    lease_ttl_minutes INTEGER NOT NULL,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE TABLE jobs (
    id                TEXT    PRIMARY KEY,
    repo              TEXT    NOT NULL,
    git_ref           TEXT,
    task              TEXT    NOT NULL,
    profile           TEXT    NOT NULL,
    agent             TEXT,
    state             TEXT    NOT NULL,
    sandbox           INTEGER,
    keepalive         INTEGER NOT NULL,
    ttl_minutes       INTEGER NOT NULL,
    workspace         TEXT,
    deadline          INTEGER,
    runner_token_hash TEXT,
    step              TEXT,
    outcome           TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    ended_at          INTEGER
);
CREATE TABLE workspaces (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    size_gb     INTEGER NOT NULL,
    volume      TEXT,
    attached_to INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE bootstrap_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    vmid       INTEGER NOT NULL,
    hash       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX bootstrap_tokens_vmid ON bootstrap_tokens (vmid);
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    sandbox INTEGER,
    job     TEXT,
    message TEXT    NOT NULL,
    payload TEXT    NOT NULL
);
CREATE INDEX events_sandbox ON events (sandbox, id);
CREATE INDEX events_job ON events (job, id);
CREATE TABLE artifacts (
    job        TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job, name)
);
";

/// Version 2: when a bootstrap token was consumed, and indexes for job-log trimming,
/// artifact retention and state listings.
const V2: &str = r"
ALTER TABLE bootstrap_tokens ADD COLUMN consumed_at INTEGER;
CREATE INDEX events_job_kind ON events (job, kind, id);
CREATE INDEX artifacts_created ON artifacts (created_at);
CREATE INDEX sandboxes_state ON sandboxes (state);
";

/// Version 3: per-state counts kept by triggers (O(1) `GET /v1/status`) and indexes for the
/// newest-first job listing, overall and per state (pages are index ranges).
const V3: &str = r"
CREATE TABLE state_counts (
    kind  TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (kind, state)
) WITHOUT ROWID;
INSERT INTO state_counts (kind, state, n)
    SELECT 'sandbox', state, COUNT(*) FROM sandboxes GROUP BY state;
INSERT INTO state_counts (kind, state, n)
    SELECT 'job', state, COUNT(*) FROM jobs GROUP BY state;
CREATE TRIGGER sandboxes_count_insert AFTER INSERT ON sandboxes BEGIN
    INSERT INTO state_counts (kind, state, n) VALUES ('sandbox', NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER sandboxes_count_update AFTER UPDATE OF state ON sandboxes
    WHEN OLD.state <> NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE kind = 'sandbox' AND state = OLD.state;
    INSERT INTO state_counts (kind, state, n) VALUES ('sandbox', NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER sandboxes_count_delete AFTER DELETE ON sandboxes BEGIN
    UPDATE state_counts SET n = n - 1 WHERE kind = 'sandbox' AND state = OLD.state;
END;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO state_counts (kind, state, n) VALUES ('job', NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
    WHEN OLD.state <> NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE kind = 'job' AND state = OLD.state;
    INSERT INTO state_counts (kind, state, n) VALUES ('job', NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE state_counts SET n = n - 1 WHERE kind = 'job' AND state = OLD.state;
END;
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_state_created ON jobs (state, created_at);
";

/// Version 4: API tokens of the remote control API (hashes only). A name is unique among
/// the tokens not revoked.
const V4: &str = r"
CREATE TABLE api_tokens (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    profiles     TEXT    NOT NULL,
    hash         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;
";

/// Version 5: results back to git. `result_spec` is the job's resolved `result` (JSON);
/// `pushed_branch`, `pushed_commit` and `pr_url` are what the runner reported pushing.
const V5: &str = r"
ALTER TABLE jobs ADD COLUMN result_spec TEXT;
ALTER TABLE jobs ADD COLUMN pushed_branch TEXT;
ALTER TABLE jobs ADD COLUMN pushed_commit TEXT;
ALTER TABLE jobs ADD COLUMN pr_url TEXT;
";

/// Version 6: retention. Pruning old events walks `events_ts`; pruning ended jobs walks
/// `jobs_ended`.
const V6: &str = r"
CREATE INDEX events_ts ON events (ts);
CREATE INDEX jobs_ended ON jobs (ended_at);
";

/// Every migration, in order.
const MIGRATIONS: [&str; 6] = [V1, V2, V3, V4, V5, V6];

/// The schema version this code writes.
pub(super) const LATEST: u32 = MIGRATIONS.len() as u32;

/// Reads `PRAGMA user_version`.
pub(super) fn version(conn: &Connection) -> Result<u32, StateStoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .sql()
}

/// Applies every pending migration up to `target`, each in its own immediate transaction.
/// Returns the version the file had before. Refuses files newer than [`LATEST`].
pub(super) fn migrate_to(conn: &mut Connection, target: u32) -> Result<u32, StateStoreError> {
    let before = version(conn)?;
    if before > LATEST {
        return Err(StateStoreError::Backend(
            format!("Database schema version {before} is newer than supported version {LATEST}")
                .into(),
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target as usize) {
        let to = index as u32 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .sql()?;
        // Re-read inside the write lock: another process may have migrated meanwhile.
        if version(&tx)? >= to {
            continue;
        }
        tx.execute_batch(sql).sql()?;
        tx.pragma_update(None, "user_version", to).sql()?;
        tx.commit().sql()?;
        tracing::info!(schema_version = to, "Migrated state database");
    }
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn migrates_empty_file_to_latest_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("s.db")).unwrap();
        assert_eq!(migrate_to(&mut conn, LATEST).unwrap(), 0);
        assert_eq!(version(&conn).unwrap(), LATEST);
        let first = schema(&conn);
        assert_eq!(migrate_to(&mut conn, LATEST).unwrap(), LATEST);
        assert_eq!(schema(&conn), first);
    }

    #[test]
    fn checked_in_v1_fixture_matches_migration_1() {
        let dir = tempfile::tempdir().unwrap();
        let mut ours = Connection::open(dir.path().join("a.db")).unwrap();
        migrate_to(&mut ours, 1).unwrap();
        assert_eq!(version(&ours).unwrap(), 1);
        let fixture = Connection::open(dir.path().join("b.db")).unwrap();
        fixture
            .execute_batch(include_str!("../../tests/fixtures/state-v1.sql"))
            .unwrap();
        assert_eq!(version(&fixture).unwrap(), 1);
        let fixture_schema: Vec<String> = schema(&fixture)
            .into_iter()
            .filter(|s| !s.contains("sqlite_sequence"))
            .collect();
        let our_schema: Vec<String> = schema(&ours)
            .into_iter()
            .filter(|s| !s.contains("sqlite_sequence"))
            .collect();
        assert_eq!(fixture_schema, our_schema);
    }

    #[test]
    fn refuses_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("s.db")).unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let err = migrate_to(&mut conn, LATEST).unwrap_err();
        assert!(
            err.source_text().contains("newer than supported"),
            "{err:?}"
        );
    }

    trait SourceText {
        fn source_text(&self) -> String;
    }
    impl SourceText for StateStoreError {
        fn source_text(&self) -> String {
            std::error::Error::source(self)
                .map(ToString::to_string)
                .unwrap_or_default()
        }
    }
}
