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

use futures::future::join_all;

use crate::event::{EventKind, EventQuery, NewEvent};
use crate::ids::{JobId, Vmid, WorkspaceId};
use crate::model::{Artifact, BootstrapToken, Job, JobOutcome, Lease, Sandbox, Workspace};
use crate::state::{JobState, SandboxState};
use crate::store::{JobFilter, SandboxFilter, StateStore, StateStoreError};
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
    sandboxes(store).await;
    sandbox_listing(store).await;
    sandbox_race(store).await;
    jobs(store).await;
    workspaces(store).await;
    tokens(store).await;
    events(store).await;
    job_log_trimming(store).await;
    artifacts(store).await;
}

async fn sandboxes(store: &dyn StateStore) {
    use SandboxState::*;
    let id = vmid(1001);
    assert_err!(
        store.get_sandbox(id).await,
        StateStoreError::NotFound {
            kind: "sandbox",
            ..
        },
        "get missing sandbox"
    );
    let mut sb = sample_sandbox(id, t0());
    sb.job = Some(JobId::generate());
    sb.workspace = Some(WorkspaceId::generate());
    sb.last_error = Some("previous failure".to_owned());
    ok(store.insert_sandbox(&sb).await, "insert_sandbox");
    assert_eq!(
        ok(store.get_sandbox(id).await, "get_sandbox"),
        sb,
        "sandbox round trip"
    );
    assert_err!(
        store.insert_sandbox(&sb).await,
        StateStoreError::AlreadyExists {
            kind: "sandbox",
            ..
        },
        "insert live duplicate"
    );

    let stale = sb.clone();
    sb.state = Provisioning;
    sb.vm_created = true;
    sb.updated_at = plus_secs(t0(), 1);
    ok(
        store.update_sandbox(&sb, Requested).await,
        "update REQUESTED -> PROVISIONING",
    );
    assert_eq!(
        ok(store.get_sandbox(id).await, "get_sandbox"),
        sb,
        "update writes every field"
    );
    let mut racer = stale.clone();
    racer.state = Provisioning;
    match store.update_sandbox(&racer, Requested).await {
        Err(StateStoreError::Conflict {
            kind: "sandbox",
            expected,
            actual,
            ..
        }) => {
            assert_eq!(
                (expected.as_str(), actual.as_str()),
                ("REQUESTED", "PROVISIONING")
            );
        }
        other => {
            panic!("state store conformance: stale sandbox CAS should conflict, got {other:?}")
        }
    }
    let mut illegal = sb.clone();
    illegal.state = Ready;
    assert_err!(
        store.update_sandbox(&illegal, Provisioning).await,
        StateStoreError::IllegalTransition {
            kind: "sandbox",
            ..
        },
        "PROVISIONING -> READY"
    );
    assert_eq!(
        ok(store.get_sandbox(id).await, "get_sandbox").state,
        Provisioning,
        "illegal step left no trace"
    );
    sb.last_error = None;
    ok(
        store.update_sandbox(&sb, Provisioning).await,
        "same-state update",
    );
    assert_eq!(
        ok(store.get_sandbox(id).await, "get_sandbox").last_error,
        None,
        "same-state update writes"
    );

    let mut missing = sample_sandbox(vmid(1009), t0());
    missing.state = Provisioning;
    assert_err!(
        store.update_sandbox(&missing, Requested).await,
        StateStoreError::NotFound {
            kind: "sandbox",
            ..
        },
        "update missing sandbox"
    );
    missing.state = Running;
    assert_err!(
        store.update_sandbox(&missing, Requested).await,
        StateStoreError::IllegalTransition { .. },
        "legality is checked before existence"
    );

    sb.state = Destroyed;
    ok(
        store.update_sandbox(&sb, Provisioning).await,
        "PROVISIONING -> DESTROYED",
    );
    let mut after = sb.clone();
    after.state = Stopped;
    assert_err!(
        store.update_sandbox(&after, Destroyed).await,
        StateStoreError::IllegalTransition { .. },
        "DESTROYED is terminal"
    );
    let mut reborn = sample_sandbox(id, plus_secs(t0(), 60));
    reborn.profile = "interactive-dev".to_owned();
    ok(
        store.insert_sandbox(&reborn).await,
        "insert over a DESTROYED row",
    );
    assert_eq!(
        ok(store.get_sandbox(id).await, "get_sandbox"),
        reborn,
        "DESTROYED row replaced"
    );
}

async fn sandbox_listing(store: &dyn StateStore) {
    let mine = |list: Vec<Sandbox>| -> Vec<u32> {
        list.iter()
            .map(|s| s.vmid.get())
            .filter(|v| (1200..1300).contains(v))
            .collect()
    };
    for (n, state, profile) in [
        (1203, SandboxState::Destroyed, "a"),
        (1201, SandboxState::Ready, "b"),
        (1202, SandboxState::Requested, "a"),
    ] {
        let mut sb = sample_sandbox(vmid(n), t0());
        sb.state = state;
        sb.profile = profile.to_owned();
        ok(store.insert_sandbox(&sb).await, "insert_sandbox");
    }
    let list = |f: SandboxFilter| async move {
        mine(ok(store.list_sandboxes(&f).await, "list_sandboxes"))
    };
    assert_eq!(
        list(SandboxFilter::default()).await,
        [1201, 1202],
        "default list hides DESTROYED, sorted"
    );
    let all = SandboxFilter {
        include_destroyed: true,
        ..SandboxFilter::default()
    };
    assert_eq!(list(all).await, [1201, 1202, 1203], "include_destroyed");
    let destroyed = SandboxFilter {
        states: vec![SandboxState::Destroyed],
        ..SandboxFilter::default()
    };
    assert_eq!(list(destroyed).await, [1203], "filter by DESTROYED");
    let two = SandboxFilter {
        states: vec![SandboxState::Requested, SandboxState::Ready],
        ..SandboxFilter::default()
    };
    assert_eq!(list(two).await, [1201, 1202], "filter by states");
    let prof = SandboxFilter {
        profile: Some("a".to_owned()),
        ..SandboxFilter::default()
    };
    assert_eq!(list(prof).await, [1202], "filter by profile");
}

async fn sandbox_race(store: &dyn StateStore) {
    let mut sb = sample_sandbox(vmid(1100), t0());
    sb.state = SandboxState::Ready;
    ok(store.insert_sandbox(&sb).await, "insert_sandbox");
    let mut next = sb.clone();
    next.state = SandboxState::Running;
    let results = join_all((0..16).map(|_| store.update_sandbox(&next, SandboxState::Ready))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one concurrent CAS wins: {results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StateStoreError::Conflict { .. }))),
        "losers get Conflict: {results:?}"
    );
}

async fn jobs(store: &dyn StateStore) {
    let mut job = sample_job(t0());
    job.sandbox = Some(vmid(1001));
    job.workspace = Some(WorkspaceId::generate());
    assert_err!(
        store.get_job(&job.id).await,
        StateStoreError::NotFound { kind: "job", .. },
        "get missing job"
    );
    ok(store.insert_job(&job).await, "insert_job");
    assert_eq!(
        ok(store.get_job(&job.id).await, "get_job"),
        job,
        "job round trip (incl. runner_token_hash)"
    );
    assert_err!(
        store.insert_job(&job).await,
        StateStoreError::AlreadyExists { kind: "job", .. },
        "duplicate job"
    );

    let stale = job.clone();
    job.state = JobState::Running;
    job.step = Some("agent".to_owned());
    ok(
        store.update_job(&job, JobState::Queued).await,
        "QUEUED -> RUNNING",
    );
    assert_eq!(
        ok(store.get_job(&job.id).await, "get_job"),
        job,
        "job update writes every field"
    );
    let mut racer = stale;
    racer.state = JobState::Cancelled;
    assert_err!(
        store.update_job(&racer, JobState::Queued).await,
        StateStoreError::Conflict { kind: "job", .. },
        "stale job CAS"
    );
    let mut back = job.clone();
    back.state = JobState::Queued;
    assert_err!(
        store.update_job(&back, JobState::Running).await,
        StateStoreError::IllegalTransition { kind: "job", .. },
        "RUNNING -> QUEUED"
    );
    job.state = JobState::Completed;
    job.ended_at = Some(plus_secs(t0(), 90));
    job.outcome = Some(JobOutcome {
        exit_code: Some(0),
        duration_ms: Some(90_000),
        commit: Some("abc123".to_owned()),
        ..JobOutcome::default()
    });
    ok(
        store.update_job(&job, JobState::Running).await,
        "RUNNING -> COMPLETED",
    );
    assert_eq!(
        ok(store.get_job(&job.id).await, "get_job"),
        job,
        "outcome round trip"
    );
    let mut revive = job.clone();
    revive.state = JobState::Running;
    assert_err!(
        store.update_job(&revive, JobState::Completed).await,
        StateStoreError::IllegalTransition { .. },
        "COMPLETED -> RUNNING"
    );
    let missing = sample_job(t0());
    assert_err!(
        store.update_job(&missing, JobState::Queued).await,
        StateStoreError::NotFound { kind: "job", .. },
        "update missing job"
    );

    let older = sample_job(plus_secs(t0(), -60));
    let newer = sample_job(plus_secs(t0(), 60));
    ok(store.insert_job(&newer).await, "insert_job");
    ok(store.insert_job(&older).await, "insert_job");
    let ours = [&job.id, &older.id, &newer.id];
    let ids = |list: Vec<Job>| -> Vec<JobId> {
        list.into_iter()
            .map(|j| j.id)
            .filter(|id| ours.contains(&id))
            .collect()
    };
    let all = ids(ok(
        store.list_jobs(&JobFilter::default()).await,
        "list_jobs",
    ));
    assert_eq!(
        all,
        [newer.id.clone(), job.id.clone(), older.id.clone()],
        "jobs newest first"
    );
    let queued = JobFilter {
        states: vec![JobState::Queued],
        ..JobFilter::default()
    };
    assert_eq!(
        ids(ok(store.list_jobs(&queued).await, "list_jobs")),
        [newer.id.clone(), older.id.clone()],
        "filter by state"
    );
    let one = JobFilter {
        limit: Some(1),
        ..JobFilter::default()
    };
    assert_eq!(
        ok(store.list_jobs(&one).await, "list_jobs").len(),
        1,
        "limit"
    );
}

async fn workspaces(store: &dyn StateStore) {
    let mut ws = sample_workspace("ws-conf-beta", t0());
    ws.volume = Some("local-lvm:vm-0-disk-ws".to_owned());
    ok(store.insert_workspace(&ws).await, "insert_workspace");
    let alpha = sample_workspace("ws-conf-alpha", t0());
    ok(store.insert_workspace(&alpha).await, "insert_workspace");
    let same_name = sample_workspace("ws-conf-beta", t0());
    assert_err!(
        store.insert_workspace(&same_name).await,
        StateStoreError::AlreadyExists {
            kind: "workspace",
            ..
        },
        "duplicate workspace name"
    );
    let mut same_id = ws.clone();
    same_id.name = "ws-conf-gamma".to_owned();
    assert_err!(
        store.insert_workspace(&same_id).await,
        StateStoreError::AlreadyExists {
            kind: "workspace",
            ..
        },
        "duplicate workspace id"
    );
    assert_eq!(
        ok(
            store.get_workspace(ws.id.as_str()).await,
            "get_workspace by id"
        ),
        ws,
        "workspace round trip"
    );
    assert_eq!(
        ok(
            store.get_workspace("ws-conf-beta").await,
            "get_workspace by name"
        ),
        ws,
        "get by name"
    );
    assert_err!(
        store.get_workspace("ws-conf-nope").await,
        StateStoreError::NotFound {
            kind: "workspace",
            ..
        },
        "get missing workspace"
    );
    let names: Vec<String> = ok(store.list_workspaces().await, "list_workspaces")
        .into_iter()
        .map(|w| w.name)
        .filter(|n| n.starts_with("ws-conf-"))
        .collect();
    assert_eq!(
        names,
        ["ws-conf-alpha", "ws-conf-beta"],
        "workspaces ordered by name"
    );

    let v = vmid(1001);
    ws.attached_to = Some(v);
    ok(store.update_workspace(&ws, None).await, "attach");
    assert_eq!(
        ok(store.get_workspace(ws.id.as_str()).await, "get_workspace").attached_to,
        Some(v),
        "attached"
    );
    let mut other = ws.clone();
    other.attached_to = Some(vmid(1002));
    assert_err!(
        store.update_workspace(&other, None).await,
        StateStoreError::Conflict {
            kind: "workspace",
            ..
        },
        "attach an attached workspace"
    );
    assert_err!(
        store.delete_workspace(&ws.id).await,
        StateStoreError::Conflict {
            kind: "workspace",
            ..
        },
        "delete while attached"
    );
    let mut renamed = alpha.clone();
    renamed.name = "ws-conf-beta".to_owned();
    assert_err!(
        store.update_workspace(&renamed, None).await,
        StateStoreError::AlreadyExists {
            kind: "workspace",
            ..
        },
        "rename onto a taken name"
    );
    ws.attached_to = None;
    ok(store.update_workspace(&ws, Some(v)).await, "detach");
    ok(store.delete_workspace(&ws.id).await, "delete_workspace");
    assert_err!(
        store.delete_workspace(&ws.id).await,
        StateStoreError::NotFound {
            kind: "workspace",
            ..
        },
        "delete twice"
    );
    assert_err!(
        store.update_workspace(&ws, None).await,
        StateStoreError::NotFound {
            kind: "workspace",
            ..
        },
        "update deleted workspace"
    );
    assert_err!(
        store.get_workspace("ws-conf-beta").await,
        StateStoreError::NotFound { .. },
        "deleted workspace is gone"
    );
}

async fn tokens(store: &dyn StateStore) {
    let (a, b) = (vmid(1301), vmid(1302));
    let expires_at = plus_secs(t0(), 600);
    for (vm, secret) in [(a, "tok-a1"), (a, "tok-a2"), (b, "tok-b")] {
        let token = BootstrapToken {
            vmid: vm,
            hash: hash_token(secret),
            expires_at,
        };
        ok(
            store.put_bootstrap_token(&token).await,
            "put_bootstrap_token",
        );
    }
    let nf = |r: Result<(), StateStoreError>, what: &str| match r {
        Err(StateStoreError::NotFound {
            kind: "bootstrap token",
            id,
        }) => {
            assert!(
                id == a.to_string() || id == b.to_string(),
                "{what}: id is the vmid, got {id}"
            );
        }
        other => panic!("state store conformance: {what} should be NotFound, got {other:?}"),
    };
    nf(
        store.consume_bootstrap_token(a, "tok-b", t0()).await,
        "token of another vmid",
    );
    nf(
        store.consume_bootstrap_token(a, "wrong", t0()).await,
        "unknown token",
    );
    nf(
        store.consume_bootstrap_token(a, "tok-a1", expires_at).await,
        "expired token",
    );
    ok(
        store.consume_bootstrap_token(a, "tok-a1", t0()).await,
        "consume",
    );
    nf(
        store.consume_bootstrap_token(a, "tok-a1", t0()).await,
        "consumed token",
    );
    ok(
        store
            .consume_bootstrap_token(a, "tok-a2", plus_secs(expires_at, -1))
            .await,
        "second token of the vmid",
    );
    ok(
        store.delete_bootstrap_tokens(b).await,
        "delete_bootstrap_tokens",
    );
    nf(
        store.consume_bootstrap_token(b, "tok-b", t0()).await,
        "deleted token",
    );
    ok(
        store.delete_bootstrap_tokens(b).await,
        "delete_bootstrap_tokens is idempotent",
    );

    let c = vmid(1303);
    let token = BootstrapToken {
        vmid: c,
        hash: hash_token("tok-c"),
        expires_at,
    };
    ok(
        store.put_bootstrap_token(&token).await,
        "put_bootstrap_token",
    );
    let results = join_all((0..16).map(|_| store.consume_bootstrap_token(c, "tok-c", t0()))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one concurrent consumer wins: {results:?}"
    );
}

async fn events(store: &dyn StateStore) {
    let (s1, s2) = (vmid(1401), vmid(1402));
    let job = JobId::generate();
    let mut appended = Vec::new();
    for i in 0..10_i64 {
        let (sb, kind) = if i % 2 == 0 {
            (s1, EventKind::StateChanged)
        } else {
            (s2, EventKind::JobLog)
        };
        let ev = NewEvent::new(plus_secs(t0(), i), kind, format!("event {i}"))
            .sandbox(sb)
            .job((i >= 5).then(|| job.clone()))
            .payload(serde_json::json!({ "i": i, "nested": { "list": [1, "two", null] } }));
        let stored = ok(store.append_event(ev.clone()).await, "append_event");
        assert_eq!(
            (
                stored.ts,
                stored.kind,
                stored.sandbox,
                &stored.job,
                &stored.message,
                &stored.payload
            ),
            (
                ev.ts,
                ev.kind,
                ev.sandbox,
                &ev.job,
                &ev.message,
                &ev.payload
            ),
            "append returns the event"
        );
        appended.push(stored);
    }
    assert!(
        appended.windows(2).all(|w| w[0].id < w[1].id),
        "event ids strictly increase"
    );
    let ids = |q: EventQuery| async move {
        let got = ok(store.events(&q).await, "events");
        got.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let id = |i: usize| appended[i].id;
    let by_s1 = EventQuery {
        sandbox: Some(s1),
        ..EventQuery::default()
    };
    assert_eq!(
        ok(store.events(&by_s1).await, "events"),
        appended.iter().step_by(2).cloned().collect::<Vec<_>>(),
        "events by sandbox round-trip"
    );
    assert_eq!(
        ids(EventQuery {
            tail: Some(2),
            ..by_s1.clone()
        })
        .await,
        [id(6), id(8)],
        "tail returns the last N ascending"
    );
    assert_eq!(
        ids(EventQuery {
            after: Some(id(4)),
            ..by_s1.clone()
        })
        .await,
        [id(6), id(8)],
        "after"
    );
    assert_eq!(
        ids(EventQuery {
            after: Some(id(0)),
            limit: Some(2),
            ..by_s1.clone()
        })
        .await,
        [id(2), id(4)],
        "after + limit"
    );
    assert_eq!(
        ids(EventQuery {
            tail: Some(3),
            after: Some(id(4)),
            ..by_s1.clone()
        })
        .await,
        [id(6), id(8)],
        "tail larger than the match"
    );
    let by_job = EventQuery {
        job: Some(job.clone()),
        ..EventQuery::default()
    };
    assert_eq!(
        ids(by_job.clone()).await,
        (5..10).map(id).collect::<Vec<_>>(),
        "events by job"
    );
    assert_eq!(
        ids(EventQuery {
            kinds: vec![EventKind::JobLog],
            ..by_job.clone()
        })
        .await,
        [id(5), id(7), id(9)],
        "kinds filter"
    );
    assert_eq!(
        ids(EventQuery {
            sandbox: Some(s1),
            ..by_job
        })
        .await,
        [id(6), id(8)],
        "sandbox and job filters combine"
    );
    let all = ids(EventQuery {
        after: Some(id(0) - 1),
        ..EventQuery::default()
    })
    .await;
    assert!(
        all.windows(2).all(|w| w[0] < w[1]) && all.len() >= 10,
        "unfiltered query ascending"
    );
}

async fn job_log_trimming(store: &dyn StateStore) {
    let (job, other) = (JobId::generate(), JobId::generate());
    for i in 0..5 {
        let ev = NewEvent::new(t0(), EventKind::JobLog, format!("line {i}")).job(Some(job.clone()));
        ok(store.append_event(ev).await, "append_event");
    }
    let step = NewEvent::new(t0(), EventKind::JobStep, "step").job(Some(job.clone()));
    ok(store.append_event(step).await, "append_event");
    let foreign = NewEvent::new(t0(), EventKind::JobLog, "other").job(Some(other.clone()));
    let foreign = ok(store.append_event(foreign).await, "append_event");
    assert_eq!(
        ok(store.trim_job_logs(&job, 2).await, "trim_job_logs"),
        3,
        "trim deletes all but the newest 2"
    );
    let left: Vec<String> = ok(
        store
            .events(&EventQuery {
                job: Some(job.clone()),
                ..EventQuery::default()
            })
            .await,
        "events",
    )
    .into_iter()
    .map(|e| e.message)
    .collect();
    assert_eq!(
        left,
        ["line 3", "line 4", "step"],
        "newest logs and non-log events survive"
    );
    assert_eq!(
        ok(store.trim_job_logs(&job, 2).await, "trim_job_logs"),
        0,
        "trim is idempotent"
    );
    assert_eq!(
        ok(
            store
                .events(&EventQuery {
                    job: Some(other),
                    ..EventQuery::default()
                })
                .await,
            "events"
        )
        .len(),
        1,
        "other jobs untouched"
    );
    let later = ok(
        store
            .append_event(NewEvent::new(t0(), EventKind::Warning, "later"))
            .await,
        "append_event",
    );
    assert!(later.id > foreign.id, "ids keep increasing after a trim");
}

async fn artifacts(store: &dyn StateStore) {
    let job = sample_job(t0());
    let orphan = sample_artifact(&job.id, "a.txt", t0());
    assert_err!(
        store.put_artifact(&orphan).await,
        StateStoreError::NotFound { kind: "job", .. },
        "artifact of an unknown job"
    );
    ok(store.insert_job(&job).await, "insert_job");
    let old = sample_artifact(&job.id, "b.log", plus_secs(t0(), -86_400));
    ok(store.put_artifact(&old).await, "put_artifact");
    ok(store.put_artifact(&orphan).await, "put_artifact");
    let names = |list: Vec<Artifact>| list.into_iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(
        names(ok(store.list_artifacts(&job.id).await, "list_artifacts")),
        ["a.txt", "b.log"],
        "artifacts by name"
    );
    let mut bigger = orphan.clone();
    bigger.size = 4096;
    bigger.sha256 = hash_token("bigger");
    ok(store.put_artifact(&bigger).await, "put_artifact replaces");
    assert_eq!(
        ok(store.list_artifacts(&job.id).await, "list_artifacts"),
        [bigger.clone(), old.clone()],
        "artifact replaced in place"
    );
    let expired: Vec<Artifact> = ok(
        store.artifacts_before(plus_secs(t0(), -60)).await,
        "artifacts_before",
    )
    .into_iter()
    .filter(|a| a.job == job.id)
    .collect();
    assert_eq!(expired.as_slice(), std::slice::from_ref(&old), "artifacts_before");
    ok(
        store.delete_artifact(&job.id, "b.log").await,
        "delete_artifact",
    );
    assert_err!(
        store.delete_artifact(&job.id, "b.log").await,
        StateStoreError::NotFound {
            kind: "artifact",
            ..
        },
        "delete twice"
    );
    assert_eq!(
        ok(store.list_artifacts(&job.id).await, "list_artifacts"),
        [bigger],
        "one left"
    );
}
