#![cfg(test)]
//! Engine: a daemon killed mid-provisioning (its runtime dropped, so no cleanup code runs)
//! and restarted over the same store and hypervisor ends consistent and leaks nothing.

#[path = "engine/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use agentlab_core::engine::{JobRequest, SandboxRequest};
use agentlab_core::fake::hypervisor::FakeOp;
use agentlab_core::fake::{FakeHypervisor, ManualClock};
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::{EventKind, JobState, SandboxFilter, SandboxState, StateStore};
use common::rig_with;

/// Kills the "daemon" while `op` (made slow) is in flight, restarts, checks consistency.
fn kill_during(op: FakeOp, with_job: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let hv = Arc::new(FakeHypervisor::new());
    let clock = Arc::new(ManualClock::at_epoch());
    hv.set_latency(op, Duration::from_secs(30));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let vmid = rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        let r = rig_with(store, hv.clone(), clock.clone()).await;
        let vmid = if with_job {
            let req = JobRequest {
                repo: "file:///r".into(),
                task: "t".into(),
                profile: "yolo-ephemeral".into(),
                ..JobRequest::default()
            };
            r.lab.run_job(req).await.unwrap().sandbox.unwrap()
        } else {
            r.lab
                .create_sandbox(SandboxRequest {
                    profile: "yolo-ephemeral".into(),
                    ..SandboxRequest::default()
                })
                .await
                .unwrap()
                .vmid
        };
        // Wait until the slow call has started.
        for _ in 0..2000 {
            if hv.calls_for(vmid).iter().any(|c| c.op == op) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            hv.calls_for(vmid).iter().any(|c| c.op == op),
            "{op:?} never started"
        );
        vmid
    });
    // SIGKILL: every task stops at its current await point, nothing else runs.
    rt.shutdown_background();
    hv.clear_faults();
    hv.set_latency(op, Duration::ZERO);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        let r = rig_with(store.clone(), hv.clone(), clock.clone()).await;
        r.lab.wait_idle().await;
        let sb = r.lab.sandbox(vmid).await.unwrap();
        assert!(
            matches!(
                sb.state,
                SandboxState::Failed | SandboxState::Ready | SandboxState::Destroyed
            ),
            "{op:?}: inconsistent state {}",
            sb.state
        );
        let live: Vec<_> = store
            .list_sandboxes(&SandboxFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.vm_created)
            .map(|s| s.vmid)
            .collect();
        let mut owned = hv.owned_vm_ids();
        owned.sort();
        assert_eq!(
            owned, live,
            "{op:?}: the hypervisor holds VMs the store does not account for"
        );
        if sb.state == SandboxState::Failed {
            assert!(!sb.vm_created, "{op:?}: failed sandbox still has a VM");
            assert!(r.kinds(vmid).await.contains(&EventKind::Reconciled));
        }
        if with_job {
            let job_id = sb.job.clone().unwrap();
            let job = r.lab.job(&job_id).await.unwrap();
            assert_eq!(
                job.state,
                JobState::Queued,
                "{op:?}: the job should continue"
            );
            let new = job.sandbox.unwrap();
            assert_ne!(new, vmid, "{op:?}: the job should have a new sandbox");
            assert_eq!(r.state(new).await, SandboxState::Ready);
        }
    });
}

#[test]
fn kill_during_each_provisioning_step_then_restart() {
    for op in [
        FakeOp::Create,
        FakeOp::Configure,
        FakeOp::Start,
        FakeOp::GuestAddress,
    ] {
        kill_during(op, false);
    }
}

#[test]
fn kill_during_job_provisioning_continues_the_job() {
    kill_during(FakeOp::Configure, true);
    kill_during(FakeOp::Start, true);
}

#[tokio::test]
async fn vm_lost_while_daemon_was_down_becomes_destroyed() {
    let hv = Arc::new(FakeHypervisor::new());
    let store: Arc<dyn StateStore> = Arc::new(agentlab_core::fake::MemoryStore::new());
    let clock = Arc::new(ManualClock::at_epoch());
    let r = rig_with(store.clone(), hv.clone(), clock.clone()).await;
    let sb = r
        .lab
        .create_sandbox(SandboxRequest {
            profile: "interactive-dev".into(),
            ..SandboxRequest::default()
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    r.lab.shutdown().await;
    // Someone removed the VM behind our back.
    let fresh = Arc::new(FakeHypervisor::new());
    let r2 = rig_with(store, fresh, clock).await;
    let after = r2.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(after.state, SandboxState::Destroyed);
    assert!(
        r2.messages(sb.vmid, EventKind::Reconciled)
            .await
            .iter()
            .any(|m| m.contains("no longer exists"))
    );
}

#[tokio::test]
async fn reconcile_leaves_this_processs_own_provisioning_alone() {
    let hv = Arc::new(FakeHypervisor::new());
    hv.set_latency(FakeOp::Configure, Duration::from_millis(200));
    let store: Arc<dyn StateStore> = Arc::new(agentlab_core::fake::MemoryStore::new());
    let r = rig_with(store, hv, Arc::new(ManualClock::at_epoch())).await;
    let sb = r
        .lab
        .create_sandbox(SandboxRequest {
            profile: "yolo-ephemeral".into(),
            ..SandboxRequest::default()
        })
        .await
        .unwrap();
    // A second reconcile while the sandbox is being provisioned by this very process.
    r.lab.reconcile().await.unwrap();
    r.lab.wait_idle().await;
    assert_eq!(r.state(sb.vmid).await, SandboxState::Ready);
}

/// The daemon dies after a guest's RUNNING report moved the job but before the sandbox left
/// BOOTING (the state is written directly: the window is two store writes). The guest is up:
/// the restart keeps the sandbox (RUNNING) instead of tearing it down under a RUNNING job.
#[test]
fn killed_between_the_jobs_and_the_sandboxs_update_keeps_the_reporting_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let hv = Arc::new(FakeHypervisor::new());
    let clock = Arc::new(ManualClock::at_epoch());
    // The guest step waits on the address, holding the sandbox's lock.
    hv.set_latency(FakeOp::GuestAddress, Duration::from_secs(30));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (vmid, job_id) = rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        let r = rig_with(store, hv.clone(), clock.clone()).await;
        let req = JobRequest {
            repo: "file:///r".into(),
            task: "t".into(),
            profile: "yolo-ephemeral".into(),
            ..JobRequest::default()
        };
        let job = r.lab.run_job(req).await.unwrap();
        let vmid = job.sandbox.unwrap();
        for _ in 0..2000 {
            if hv
                .calls_for(vmid)
                .iter()
                .any(|c| c.op == FakeOp::GuestAddress)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(r.state(vmid).await, SandboxState::Booting);
        let token = r.tap.token_for(vmid);
        r.lab.bootstrap_fetch(vmid, &token).await.unwrap();
        // The state a kill leaves between `report_status`'s job write and its sandbox write.
        let mut running = r.lab.job(&job.id).await.unwrap();
        running.state = JobState::Running;
        r.store
            .update_job(&running, JobState::Queued)
            .await
            .unwrap();
        assert_eq!(r.lab.job(&job.id).await.unwrap().state, JobState::Running);
        assert_eq!(r.state(vmid).await, SandboxState::Booting);
        (vmid, job.id)
    });
    rt.shutdown_background();
    hv.set_latency(FakeOp::GuestAddress, Duration::ZERO);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        let r = rig_with(store, hv.clone(), clock.clone()).await;
        r.lab.wait_idle().await;
        assert_eq!(r.state(vmid).await, SandboxState::Running);
        assert_eq!(r.lab.job(&job_id).await.unwrap().state, JobState::Running);
        assert_eq!(hv.owned_vm_ids(), vec![vmid], "the VM is kept");
        assert!(
            r.messages(vmid, EventKind::Reconciled)
                .await
                .iter()
                .any(|m| m.contains("sandbox kept")),
        );
    });
}
