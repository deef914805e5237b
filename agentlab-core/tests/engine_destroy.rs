#![cfg(test)]
//! Engine: a destroy that has begun reaches DESTROYED — through failed attempts retried with
//! backoff, and through a daemon killed in the middle of the stop — and start-up recovery
//! running beside new requests leaves them alone.

#[path = "engine/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use agentlab_core::engine::{JobRequest, SandboxRequest};
use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
use agentlab_core::fake::{FakeHypervisor, ManualClock, MemoryStore};
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::{EventKind, EventQuery, JobState, SandboxState, StateStore, Vmid};
use common::{Rig, rig, rig_with};

async fn ready(r: &Rig, profile: &str) -> Vmid {
    let sb = r
        .lab
        .create_sandbox(SandboxRequest {
            profile: profile.into(),
            ..SandboxRequest::default()
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    assert_eq!(r.state(sb.vmid).await, SandboxState::Ready);
    sb.vmid
}

async fn attempts(r: &Rig, vmid: Vmid) -> Vec<serde_json::Value> {
    let q = EventQuery {
        sandbox: Some(vmid),
        kinds: vec![EventKind::DestroyAttempt],
        ..EventQuery::default()
    };
    r.lab
        .events(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

#[tokio::test]
async fn failed_destroy_is_retried_with_backoff_until_destroyed() {
    let r = rig().await;
    let vmid = ready(&r, "interactive-dev").await;
    for i in 1..=3 {
        r.hv.fail_once(
            FakeOp::Destroy,
            Fault::new(FaultKind::Unavailable, format!("node busy {i}")),
        );
    }
    let sb = r.lab.destroy_sandbox(vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Destroying, "the destroy has begun");
    let err = sb.last_error.clone().unwrap();
    assert!(
        err.contains("attempt 1") && err.contains("node busy 1") && err.contains("retrying in 2s"),
        "{err}"
    );
    // `sandbox show` reads the stored record: the cause is there too.
    assert_eq!(r.lab.sandbox(vmid).await.unwrap().last_error, Some(err));
    assert!(r.hv.owned_vm_ids().contains(&vmid));

    // Not due yet: a tick makes no attempt.
    r.lab.tick().await.unwrap();
    assert_eq!(attempts(&r, vmid).await.len(), 1);

    // Backoff doubles: 2 s, 4 s, then the fourth attempt succeeds.
    for (wait, n) in [(2, 2), (4, 3), (8, 4)] {
        r.clock.advance(Duration::from_secs(wait));
        r.lab.tick().await.unwrap();
        assert_eq!(attempts(&r, vmid).await.len(), n, "after {wait}s");
    }
    let sb = r.lab.sandbox(vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Destroyed);
    assert!(!sb.vm_created);
    assert!(!r.hv.owned_vm_ids().contains(&vmid));
    assert!(!r.fw.is_allowed(vmid));
    let all = attempts(&r, vmid).await;
    let oks: Vec<bool> = all.iter().map(|p| p["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [false, false, false, true]);
    assert!(all[2]["error"].as_str().unwrap().contains("node busy 3"));
    assert_eq!(all[1]["retry_in_secs"], 4);
    assert_eq!(all[3]["attempt"], 4);
}

#[tokio::test]
async fn a_begun_destroy_cancels_the_job_and_never_goes_back_to_ready() {
    let r = rig().await;
    let job = r
        .lab
        .run_job(JobRequest {
            repo: "file:///r".into(),
            task: "t".into(),
            profile: "yolo-ephemeral".into(),
            ..JobRequest::default()
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    let vmid = job.sandbox.unwrap();
    r.hv.fail_always(FakeOp::Stop, Fault::new(FaultKind::Timeout, "stop hangs"));
    let sb = r.lab.destroy_sandbox(vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Destroying);
    assert_eq!(r.lab.job(&job.id).await.unwrap().state, JobState::Cancelled);
    // Start, stop and renew refuse a sandbox being destroyed.
    assert!(r.lab.start_sandbox(vmid).await.is_err());
    assert!(r.lab.stop_sandbox(vmid).await.is_err());
    // A second request makes another attempt at once (and still reports DESTROYING).
    let again = r.lab.destroy_sandbox(vmid).await.unwrap();
    assert_eq!(again.state, SandboxState::Destroying);
    assert_eq!(attempts(&r, vmid).await.len(), 2);
    r.hv.clear_faults();
    r.clock.advance(Duration::from_secs(600));
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
    assert!(r.hv.owned_vm_ids().is_empty());
}

#[tokio::test]
async fn lease_expiry_destroys_through_destroying_and_retries() {
    let r = rig().await;
    let vmid = ready(&r, "interactive-dev").await;
    r.hv.fail_once(
        FakeOp::Destroy,
        Fault::new(FaultKind::Backend, "disk locked"),
    );
    r.advance_min(24 * 60);
    r.lab.tick().await.unwrap();
    let sb = r.lab.sandbox(vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Destroying);
    assert!(sb.last_error.unwrap().contains("disk locked"));
    r.clock.advance(Duration::from_secs(2));
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
    assert!(r.hv.owned_vm_ids().is_empty());
}

/// The daemon dies while the VM is being stopped (its runtime dropped, so no cleanup code
/// runs); the restarted one finishes the destroy instead of leaving the sandbox FAILED or
/// READY with its VM.
#[test]
fn kill_during_destroy_stop_then_restart_finishes_the_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let hv = Arc::new(FakeHypervisor::new());
    let clock = Arc::new(ManualClock::at_epoch());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let vmid = rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        let r = rig_with(store, hv.clone(), clock.clone()).await;
        let vmid = ready(&r, "interactive-dev").await;
        hv.set_latency(FakeOp::Stop, Duration::from_secs(30));
        let lab = r.lab.clone();
        tokio::spawn(async move { lab.destroy_sandbox(vmid).await });
        for _ in 0..2000 {
            if hv.calls_for(vmid).iter().any(|c| c.op == FakeOp::Stop) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(hv.calls_for(vmid).iter().any(|c| c.op == FakeOp::Stop));
        vmid
    });
    rt.shutdown_background();
    hv.set_latency(FakeOp::Stop, Duration::ZERO);
    assert!(hv.owned_vm_ids().contains(&vmid), "the VM is still there");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        // Before the restart's reconcile the intent is on disk.
        assert_eq!(
            store.get_sandbox(vmid).await.unwrap().state,
            SandboxState::Destroying
        );
        let r = rig_with(store, hv.clone(), clock.clone()).await;
        r.lab.wait_idle().await;
        let sb = r.lab.sandbox(vmid).await.unwrap();
        assert_eq!(sb.state, SandboxState::Destroyed);
        assert!(hv.owned_vm_ids().is_empty(), "{:?}", hv.owned_vm_ids());
        assert!(!r.fw.is_allowed(vmid));
        assert_eq!(attempts(&r, vmid).await.len(), 1);
    });
}

/// Recovery runs in the background beside requests: a sandbox requested while the start-up
/// reconcile is still listing is provisioned by its own task, not cleaned up as a leftover,
/// and the previous process's half-made sandbox is.
#[test]
fn requests_during_background_recovery_are_left_alone() {
    let hv = Arc::new(FakeHypervisor::new());
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::at_epoch());
    // A previous process died leaving a sandbox PROVISIONING with its VM.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let old = rt.block_on(async {
        let r = rig_with(store.clone(), hv.clone(), clock.clone()).await;
        hv.set_latency(FakeOp::Configure, Duration::from_secs(30));
        let sb = r
            .lab
            .create_sandbox(SandboxRequest {
                profile: "interactive-dev".into(),
                ..SandboxRequest::default()
            })
            .await
            .unwrap();
        while !hv
            .calls_for(sb.vmid)
            .iter()
            .any(|c| c.op == FakeOp::Configure)
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sb.vmid
    });
    rt.shutdown_background();
    hv.set_latency(FakeOp::Configure, Duration::from_millis(300));
    hv.set_latency(FakeOp::ListManaged, Duration::from_millis(200));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let deps = agentlab_core::engine::LabDeps {
            hypervisor: hv.clone(),
            firewall: Arc::new(agentlab_core::fake::FakeFirewall::new()),
            secrets: Arc::new(agentlab_core::fake::MemorySecretStore::new()),
            store: store.clone(),
            clock: clock.clone(),
        };
        let lab = agentlab_core::engine::Lab::new(deps, common::settings(), common::profiles());
        lab.spawn_recovery(Duration::from_secs(3600));
        // Arrives while recovery is listing the hypervisor's VMs.
        let new = lab
            .create_sandbox(SandboxRequest {
                profile: "interactive-dev".into(),
                ..SandboxRequest::default()
            })
            .await
            .unwrap();
        for _ in 0..500 {
            let a = lab.sandbox(old).await.unwrap().state;
            let b = lab.sandbox(new.vmid).await.unwrap().state;
            if a == SandboxState::Failed && b == SandboxState::Ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(lab.sandbox(old).await.unwrap().state, SandboxState::Failed);
        assert_eq!(
            lab.sandbox(new.vmid).await.unwrap().state,
            SandboxState::Ready
        );
        let q = EventQuery {
            sandbox: Some(new.vmid),
            kinds: vec![EventKind::Reconciled],
            ..EventQuery::default()
        };
        assert!(lab.events(&q).await.unwrap().is_empty());
        assert_eq!(hv.owned_vm_ids(), vec![new.vmid]);
        lab.shutdown().await;
    });
}
