//! SqliteStore specifics: migrations from a version-1 file, durability across reopen, online
//! backup, pragmas, concurrency across connections and error mapping.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

use std::sync::Arc;

use agentlab_core::event::{EventKind, EventQuery, NewEvent};
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::testkit::store::{plus_secs, sample_job, sample_sandbox, t0, vmid};
use agentlab_core::token::hash_token;
use agentlab_core::{BootstrapToken, JobId, JobState, SandboxState, StateStore, StateStoreError};

const V1_FIXTURE: &str = include_str!("fixtures/state-v1.sql");

fn millis(ms: i64) -> agentlab_core::Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

#[tokio::test]
async fn opens_a_version_1_file_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(V1_FIXTURE).unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        SqliteStore::SCHEMA_VERSION
    );
    const { assert!(SqliteStore::SCHEMA_VERSION >= 2) };

    let sb = store.get_sandbox(vmid(9001)).await.unwrap();
    assert_eq!(sb.state, SandboxState::Ready);
    assert_eq!(sb.ip.unwrap().to_string(), "10.77.0.9");
    assert!(sb.vm_created);
    assert_eq!(sb.lease.expires_at, millis(1_767_229_200_123));
    assert_eq!(sb.updated_at, millis(1_767_225_660_456));

    let job_id: JobId = "job-00000000000000a1".parse().unwrap();
    let job = store.get_job(&job_id).await.unwrap();
    assert_eq!(job.state, JobState::Running);
    assert_eq!(
        job.runner_token_hash.as_deref(),
        Some(hash_token("fixture-runner-token").as_str())
    );
    assert_eq!(job.sandbox, Some(vmid(9001)));

    let ws = store.get_workspace("fixture-ws").await.unwrap();
    assert_eq!(ws.attached_to, Some(vmid(9001)));

    // Migration 3 counted the rows that were already there.
    let all = agentlab_core::SandboxFilter {
        include_destroyed: true,
        ..Default::default()
    };
    let mut expected = agentlab_core::StateCounts::default();
    for sb in store.list_sandboxes(&all).await.unwrap() {
        *expected.sandboxes.entry(sb.state).or_insert(0) += 1;
    }
    for job in store.list_jobs(&Default::default()).await.unwrap() {
        *expected.jobs.entry(job.state).or_insert(0) += 1;
    }
    assert!(!expected.jobs.is_empty() && !expected.sandboxes.is_empty());
    assert_eq!(store.counts().await.unwrap(), expected);

    let events = store
        .events(&EventQuery {
            sandbox: Some(vmid(9001)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].payload,
        serde_json::json!({"from": "BOOTING", "to": "READY"})
    );
    let next = store
        .append_event(NewEvent::new(t0(), EventKind::Warning, "after upgrade"))
        .await
        .unwrap();
    assert!(next.id > events[1].id);

    let arts = store.list_artifacts(&job_id).await.unwrap();
    assert_eq!(arts.len(), 1);
    assert_eq!(arts[0].size, 1234);

    // The consumed token stays consumed; the open one works once (and v2's consumed_at column
    // is written for it).
    let used = store
        .consume_bootstrap_token(vmid(9001), "fixture-used-token", t0())
        .await;
    assert!(
        matches!(used, Err(StateStoreError::NotFound { .. })),
        "{used:?}"
    );
    store
        .consume_bootstrap_token(vmid(9001), "fixture-bootstrap-token", t0())
        .await
        .unwrap();
    assert!(
        store
            .consume_bootstrap_token(vmid(9001), "fixture-bootstrap-token", t0())
            .await
            .is_err()
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let consumed_at: Option<i64> = conn
        .query_row("SELECT consumed_at FROM bootstrap_tokens WHERE consumed = 1 AND consumed_at IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(consumed_at, Some(t0().timestamp_millis()));

    // The DESTROYED row of the old file can be replaced by a new sandbox.
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .insert_sandbox(&sample_sandbox(vmid(9002), t0()))
        .await
        .unwrap();
    assert_eq!(
        store.get_sandbox(vmid(9002)).await.unwrap().state,
        SandboxState::Requested
    );
}

#[tokio::test]
async fn opening_sets_wal_foreign_keys_and_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.path(), path);
    assert_eq!(
        store.schema_version().await.unwrap(),
        SqliteStore::SCHEMA_VERSION
    );
    // WAL is persistent in the file; another connection sees it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);
    // Foreign keys are enforced by the store's connection: an orphan artifact is refused.
    let orphan = agentlab_core::testkit::store::sample_artifact(&JobId::generate(), "x", t0());
    let err = store.put_artifact(&orphan).await.unwrap_err();
    assert!(
        matches!(err, StateStoreError::NotFound { kind: "job", .. }),
        "{err:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn database_and_backup_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .insert_sandbox(&sample_sandbox(vmid(600), t0()))
        .await
        .unwrap();
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).await.unwrap();
    for p in [path.clone(), dir.path().join("state.db-wal"), backup] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let job = sample_job(t0());
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.insert_job(&job).await.unwrap();
        store
            .insert_sandbox(&sample_sandbox(vmid(500), t0()))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_job(&job.id).await.unwrap(), job);
    assert_eq!(
        store.get_sandbox(vmid(500)).await.unwrap(),
        sample_sandbox(vmid(500), t0())
    );
}

#[tokio::test]
async fn online_backup_is_a_consistent_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    for n in 0..50 {
        store
            .insert_sandbox(&sample_sandbox(vmid(1000 + n), t0()))
            .await
            .unwrap();
    }
    let job = sample_job(t0());
    store.insert_job(&job).await.unwrap();
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).await.unwrap();
    // The source keeps working and later writes do not reach the copy.
    store
        .insert_sandbox(&sample_sandbox(vmid(2000), t0()))
        .await
        .unwrap();

    let copy = SqliteStore::open(&backup).await.unwrap();
    assert_eq!(
        copy.schema_version().await.unwrap(),
        SqliteStore::SCHEMA_VERSION
    );
    let all = copy.list_sandboxes(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 50);
    assert_eq!(copy.get_job(&job.id).await.unwrap(), job);
    assert!(matches!(
        copy.get_sandbox(vmid(2000)).await,
        Err(StateStoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn backup_to_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    let err = store
        .backup_to(&dir.path().join("nope/backup.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StateStoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn open_in_a_missing_directory_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("missing/state.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StateStoreError::Unavailable(_)), "{err:?}");
    assert_eq!(err.to_string(), "State store unavailable");
}

#[tokio::test]
async fn a_file_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SqliteStore::SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StateStoreError::Backend(_)), "{err:?}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("newer than supported"), "{source}");
}

#[tokio::test]
async fn a_locked_database_is_unavailable_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).await.unwrap();
    // Another process holds the write lock for longer than the busy timeout would allow us to
    // wait in a test, so use a zero-wait foreign lock: an EXCLUSIVE transaction in WAL mode
    // blocks writers. The store waits its busy timeout, then reports Unavailable.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = store
        .insert_sandbox(&sample_sandbox(vmid(777), t0()))
        .await
        .unwrap_err();
    assert!(matches!(err, StateStoreError::Unavailable(_)), "{err:?}");
    blocker.execute_batch("ROLLBACK").unwrap();
    store
        .insert_sandbox(&sample_sandbox(vmid(777), t0()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_token_consumption_has_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // Two stores = two connections on one file, as with two daemons racing.
    let a = Arc::new(SqliteStore::open(&path).await.unwrap());
    let b = Arc::new(SqliteStore::open(&path).await.unwrap());
    for round in 0..5_u32 {
        let vm = vmid(3000 + round);
        let secret = format!("token-{round}");
        let token = BootstrapToken {
            vmid: vm,
            hash: hash_token(&secret),
            expires_at: plus_secs(t0(), 60),
        };
        a.put_bootstrap_token(&token).await.unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let store = if i % 2 == 0 {
                    Arc::clone(&a)
                } else {
                    Arc::clone(&b)
                };
                let secret = secret.clone();
                tokio::spawn(async move { store.consume_bootstrap_token(vm, &secret, t0()).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => wins += 1,
                Err(StateStoreError::NotFound {
                    kind: "bootstrap token",
                    id,
                }) => assert_eq!(id, vm.to_string()),
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_across_connections_has_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = Arc::new(SqliteStore::open(&path).await.unwrap());
    let b = Arc::new(SqliteStore::open(&path).await.unwrap());
    let mut sb = sample_sandbox(vmid(4000), t0());
    sb.state = SandboxState::Ready;
    a.insert_sandbox(&sb).await.unwrap();
    let tasks: Vec<_> = [
        SandboxState::Running,
        SandboxState::Suspended,
        SandboxState::Stopped,
        SandboxState::Destroyed,
    ]
    .into_iter()
    .cycle()
    .take(24)
    .enumerate()
    .map(|(i, next)| {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let mut sb = sb.clone();
        sb.state = next;
        tokio::spawn(async move { (next, store.update_sandbox(&sb, SandboxState::Ready).await) })
    })
    .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (next, r) = t.await.unwrap();
        match r {
            Ok(()) => winners.push(next),
            Err(StateStoreError::Conflict { expected, .. }) => assert_eq!(expected, "READY"),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(b.get_sandbox(vmid(4000)).await.unwrap().state, winners[0]);
}
