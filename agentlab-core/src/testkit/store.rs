//! Conformance suite for [`StateStore`] implementations, plus sample records for tests.
//!
//! [`state_store_conformance`] takes a *fresh, empty* store and panics with a message naming
//! the violated rule. Every section uses its own vmids, job ids and names, so the sections do
//! not disturb each other. Both [`crate::fake::store::MemoryStore`] and
//! [`crate::sqlite::SqliteStore`] run it in `agentlab-core/tests/store_conformance.rs`.
//!
//! The `sample_*` builders give valid records with every optional field filled in, with
//! millisecond timestamps (as callers must store them).

use std::net::{IpAddr, Ipv4Addr};

use crate::ids::{JobId, Vmid, WorkspaceId};
use crate::model::{Artifact, Job, JobOutcome, Lease, Sandbox, Workspace};
use crate::state::{JobState, SandboxState};
use crate::store::{SandboxFilter, StateStore, StateStoreError};
use crate::time::Timestamp;
use crate::token::hash_token;

/// 2026-01-01T00:00:00.123Z: a fixed instant with a millisecond part, for reproducible records.
pub fn t0() -> Timestamp {
    chrono::DateTime::from_timestamp_millis(1_767_225_600_123).unwrap_or_default()
}

/// `t` plus `secs` seconds.
pub fn plus_secs(t: Timestamp, secs: i64) -> Timestamp {
    t + chrono::Duration::seconds(secs)
}

/// A [`Vmid`]; panics outside `100..=999_999_999` (test helper).
pub fn vmid(n: u32) -> Vmid {
    Vmid::new(n).expect("test vmid out of range")
}

/// A REQUESTED sandbox named `agentlab-<vmid>` (profile `yolo-ephemeral`, 60-minute renewable
/// lease from `now`) with node, ip, mac and iface set; no job or workspace.
pub fn sample_sandbox(vmid: Vmid, now: Timestamp) -> Sandbox {
    Sandbox {
        vmid,
        name: format!("agentlab-{vmid}"),
        profile: "yolo-ephemeral".to_owned(),
        state: SandboxState::Requested,
        node: Some("pve1".to_owned()),
        ip: Some(IpAddr::V4(Ipv4Addr::new(
            10,
            77,
            0,
            (vmid.get() % 250) as u8 + 2,
        ))),
        mac: Some("bc:24:11:00:00:01".to_owned()),
        iface: Some(format!("tap{vmid}i0")),
        vm_created: false,
        job: None,
        workspace: None,
        lease: Lease {
            expires_at: plus_secs(now, 3600),
            keepalive: false,
            renewable: true,
            ttl_minutes: 60,
        },
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

/// A QUEUED job with a fresh random id, created at `now`, with a deadline, a runner token
/// hash and an (empty-ish) outcome so that every column round-trips.
pub fn sample_job(now: Timestamp) -> Job {
    Job {
        id: JobId::generate(),
        repo: "https://git.example.com/acme/widgets.git".to_owned(),
        git_ref: Some("main".to_owned()),
        task: "Fix the flaky test in widgets/src/lib.rs".to_owned(),
        profile: "yolo-ephemeral".to_owned(),
        agent: Some("claude".to_owned()),
        state: JobState::Queued,
        sandbox: None,
        keepalive: false,
        ttl_minutes: 60,
        workspace: None,
        deadline: Some(plus_secs(now, 1800)),
        runner_token_hash: Some(hash_token("runner-token-for-tests")),
        step: None,
        outcome: Some(JobOutcome {
            summary: Some("queued".to_owned()),
            ..JobOutcome::default()
        }),
        created_at: now,
        updated_at: now,
        ended_at: None,
        result: None,
        pushed: None,
    }
}

/// A detached 10 GiB workspace called `name` with a fresh random id and no volume.
pub fn sample_workspace(name: &str, now: Timestamp) -> Workspace {
    Workspace {
        id: WorkspaceId::generate(),
        name: name.to_owned(),
        size_gb: 10,
        volume: None,
        attached_to: None,
        created_at: now,
        updated_at: now,
    }
}

/// An artifact record of `job` called `name` (42 bytes, a fixed sha256).
pub fn sample_artifact(job: &JobId, name: &str, now: Timestamp) -> Artifact {
    Artifact {
        job: job.clone(),
        name: name.to_owned(),
        size: 42,
        sha256: hash_token(name),
        created_at: now,
    }
}

/// Unwraps a store result, panicking with the operation and the error chain.
fn ok<T>(r: Result<T, StateStoreError>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            let source = std::error::Error::source(&e).map(ToString::to_string);
            panic!("state store conformance: {what} failed: {e} ({source:?})")
        }
    }
}

macro_rules! assert_err {
    ($r:expr, $pat:pat, $what:expr) => {{
        let r = $r;
        assert!(
            matches!(r, Err($pat)),
            "state store conformance: {} should fail with {}, got {:?}",
            $what,
            stringify!($pat),
            r
        );
    }};
}

mod events;
mod jobs;
mod pages;
mod redeem;
mod retention;
mod sandboxes;
mod workspaces;

/// Runs every check against `store`, which must be fresh and empty. Panics on the first
/// violation.
///
/// ```no_run
/// # async fn demo() {
/// let store = agentlab_core::fake::store::MemoryStore::new();
/// agentlab_core::testkit::store::state_store_conformance(&store).await;
/// # }
/// ```
pub async fn state_store_conformance(store: &dyn StateStore) {
    let all = SandboxFilter {
        include_destroyed: true,
        ..SandboxFilter::default()
    };
    assert!(
        ok(store.list_sandboxes(&all).await, "list_sandboxes").is_empty(),
        "store not empty"
    );
    assert!(
        ok(store.list_workspaces().await, "list_workspaces").is_empty(),
        "store not empty"
    );
    pages::job_pages(store).await;
    pages::counts(store).await;
    sandboxes::sandboxes(store).await;
    sandboxes::sandbox_listing(store).await;
    sandboxes::sandbox_race(store).await;
    jobs::jobs(store).await;
    workspaces::workspaces(store).await;
    workspaces::tokens(store).await;
    redeem::redeem(store).await;
    events::events(store).await;
    events::job_log_trimming(store).await;
    jobs::artifacts(store).await;
    pages::sandbox_pages(store).await;
    retention::retention(store).await;
    pages::counts_match_records(store).await;
}
