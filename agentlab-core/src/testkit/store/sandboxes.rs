//! Conformance checks for sandboxes: round trip, compare-and-set, legality, DESTROYED
//! replacement, listing filters and a concurrent CAS race.

use futures::future::join_all;

use super::{ok, plus_secs, sample_sandbox, t0, vmid};
use crate::ids::{JobId, WorkspaceId};
use crate::model::Sandbox;
use crate::state::SandboxState;
use crate::store::{SandboxFilter, StateStore, StateStoreError};

pub(super) async fn sandboxes(store: &dyn StateStore) {
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

pub(super) async fn sandbox_listing(store: &dyn StateStore) {
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

pub(super) async fn sandbox_race(store: &dyn StateStore) {
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
