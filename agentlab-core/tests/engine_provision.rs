#![cfg(test)]
//! Engine: provisioning, failure handling, VMID allocation and teardown, against the fakes.

#[path = "engine/common.rs"]
mod common;

use agentlab_core::SandboxState;
use agentlab_core::engine::SandboxRequest;
use agentlab_core::fake::FakeFirewall;
use agentlab_core::fake::firewall::{FirewallFault, FirewallFaultKind, FirewallOp};
use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
use agentlab_core::{EventKind, Vmid};
use common::rig;

fn req(profile: &str) -> SandboxRequest {
    SandboxRequest {
        profile: profile.into(),
        ..SandboxRequest::default()
    }
}

#[tokio::test]
async fn sandbox_provisions_to_ready_with_an_event_per_step() {
    let r = rig().await;
    let sb = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    assert_eq!(sb.state, SandboxState::Requested);
    assert_eq!(sb.vmid.get(), 9100);
    r.lab.wait_idle().await;
    let sb = r.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Ready);
    assert!(sb.vm_created);
    assert_eq!(sb.ip.unwrap().to_string(), "10.77.0.2");
    let steps = r.messages(sb.vmid, EventKind::ProvisionStep).await;
    for step in ["clone", "configure", "firewall", "token", "start", "guest"] {
        assert!(
            steps.iter().any(|m| m.starts_with(step)),
            "missing step {step}: {steps:?}"
        );
    }
    assert!(r.fw.is_allowed(sb.vmid));
    let vm = r.hv.vm(sb.vmid).unwrap();
    assert_eq!(
        vm.spec.as_ref().unwrap().resources.cores,
        r.lab
            .profiles()
            .get("yolo-ephemeral")
            .unwrap()
            .resources
            .cores
    );

    let gone = r.lab.destroy_sandbox(sb.vmid).await.unwrap();
    assert_eq!(gone.state, SandboxState::Destroyed);
    assert!(r.hv.owned_vm_ids().is_empty());
    assert!(!r.fw.is_allowed(sb.vmid));
}

async fn fault_case(op: FakeOp, step: &str, call: &str) {
    let r = rig().await;
    let ws = r.lab.create_workspace("ws1", 5).await.unwrap();
    r.hv.fail_always(
        op,
        Fault::new(FaultKind::Backend, format!("injected {call} failure")),
    );
    let mut rq = req("yolo-ephemeral");
    rq.workspace = Some("ws1".into());
    let sb = r.lab.create_sandbox(rq).await.unwrap();
    r.lab.wait_idle().await;
    let sb = r.lab.sandbox(sb.vmid).await.unwrap();
    let expected = if op == FakeOp::GuestAddress {
        [SandboxState::Failed, SandboxState::Failed]
    } else {
        [SandboxState::Failed; 2]
    };
    assert!(expected.contains(&sb.state), "{op:?}: {}", sb.state);
    let err = sb.last_error.clone().unwrap();
    assert!(
        err.contains(step)
            && err.contains(call)
            && err.contains(&format!("injected {call} failure")),
        "{op:?}: {err}"
    );
    let failed = r.messages(sb.vmid, EventKind::ProvisionFailed).await;
    assert_eq!(failed.len(), 1, "{op:?}");
    assert!(failed[0].contains(call));
    r.hv.clear_faults();
    assert!(r.hv.owned_vm_ids().is_empty(), "{op:?} leaked a VM");
    assert!(!r.fw.is_allowed(sb.vmid), "{op:?} leaked firewall entries");
    let ws = r.lab.workspace(ws.id.as_str()).await.unwrap();
    assert_eq!(ws.attached_to, None, "{op:?} left the workspace attached");
    assert!(r.hv.volumes().iter().all(|v| v.attached_to.is_none()));
}

#[tokio::test]
async fn each_provisioning_fault_fails_cleanly() {
    fault_case(FakeOp::Create, "clone", "create").await;
    fault_case(FakeOp::Configure, "configure", "configure").await;
    fault_case(FakeOp::AttachVolume, "workspace", "attach_volume").await;
    fault_case(FakeOp::Start, "start", "start").await;
    fault_case(FakeOp::GuestAddress, "guest", "guest_address").await;
}

#[tokio::test]
async fn firewall_fault_fails_cleanly() {
    let r = rig().await;
    r.fw.fail_once(
        FirewallOp::Allow,
        FirewallFault::new(FirewallFaultKind::Rejected, "nft said no"),
    );
    let sb = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    r.lab.wait_idle().await;
    let sb = r.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Failed);
    assert!(sb.last_error.unwrap().contains("nft said no"));
    assert!(r.hv.owned_vm_ids().is_empty());
    let _ = FakeFirewall::new();
}

/// A FAILED sandbox with no VM left stays FAILED for `failed_keep` (10 minutes), then is
/// destroyed by the ticker instead of holding its lease for hours; one whose VM is still
/// there is left to its lease.
#[tokio::test]
async fn a_failed_sandbox_with_nothing_left_is_destroyed_after_the_keep_window() {
    let r = rig().await;
    r.hv.fail_always(
        FakeOp::Start,
        Fault::new(FaultKind::Backend, "injected start failure"),
    );
    let sb = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    r.lab.wait_idle().await;
    let sb = r.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Failed);
    assert!(!sb.vm_created);
    r.advance_min(9);
    r.lab.tick().await.unwrap();
    r.lab.wait_idle().await;
    assert_eq!(
        r.state(sb.vmid).await,
        SandboxState::Failed,
        "kept for inspection"
    );
    r.advance_min(2);
    r.lab.tick().await.unwrap();
    r.lab.wait_idle().await;
    let gone = r.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(gone.state, SandboxState::Destroyed);
    assert!(
        gone.last_error
            .unwrap_or_default()
            .contains("injected start failure"),
        "the cause stays on the record"
    );
}

/// An unknown profile is `profile_not_found`, with the closest profile name as a hint.
#[tokio::test]
async fn an_unknown_profile_names_the_closest_one() {
    let r = rig().await;
    let e = r
        .lab
        .create_sandbox(req("yolo-ephemeal"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "profile_not_found");
    assert_eq!(
        e.to_string(),
        "profile yolo-ephemeal not found; did you mean yolo-ephemeral?"
    );
    let e = r.lab.create_sandbox(req("zzz")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "profile zzz not found",
        "no hint when nothing is close"
    );
}

#[tokio::test]
async fn foreign_vm_is_skipped_and_never_touched() {
    let r = rig().await;
    let foreign = Vmid::new(9100).unwrap();
    r.hv.seed_foreign_vm(foreign);
    let sb = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    assert_eq!(sb.vmid.get(), 9101);
    r.lab.wait_idle().await;
    r.lab.destroy_sandbox(sb.vmid).await.unwrap();
    assert!(r.hv.vm(foreign).is_some());
    assert!(
        r.hv.calls_for(foreign).iter().all(|c| !c.op.is_mutating()),
        "{:?}",
        r.hv.calls_for(foreign)
    );
}

#[tokio::test]
async fn clone_already_exists_retries_with_the_next_id() {
    let r = rig().await;
    r.hv.fail_once(
        FakeOp::Create,
        Fault::new(FaultKind::AlreadyExists, "VM 9100 already exists"),
    );
    let sb = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    r.lab.wait_idle().await;
    let old = r.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(old.state, SandboxState::Destroyed);
    assert!(
        old.last_error
            .unwrap()
            .contains("continuing as sandbox 9101")
    );
    let new = r.lab.sandbox(Vmid::new(9101).unwrap()).await.unwrap();
    assert_eq!(new.state, SandboxState::Ready);
    assert_eq!(r.hv.owned_vm_ids(), vec![new.vmid]);
    // A client following the old id learns where the request went.
    let events = r
        .lab
        .events(&agentlab_core::EventQuery {
            sandbox: Some(sb.vmid),
            ..agentlab_core::EventQuery::default()
        })
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.payload.get("replaced_by").and_then(|v| v.as_u64()) == Some(9101)),
        "{events:#?}"
    );
}

#[tokio::test]
async fn boot_timeout_ends_in_timeout_and_cleans_up() {
    let r = rig().await;
    r.hv.set_guest_address_delay_polls(u32::MAX);
    let sb = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    r.lab.wait_idle().await;
    let sb = r.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Timeout);
    assert!(
        sb.last_error
            .unwrap()
            .contains("guest did not report an address")
    );
    assert!(r.hv.owned_vm_ids().is_empty());
}

#[tokio::test]
async fn never_used_ids_come_before_reusing_destroyed_ones() {
    let r = rig().await;
    let settings = agentlab_core::engine::LabSettings {
        vmid_end: 9101,
        ..common::settings()
    };
    let lab = agentlab_core::engine::Lab::new(r.lab.deps().clone(), settings, common::profiles());
    let a = lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    lab.wait_idle().await;
    lab.destroy_sandbox(a.vmid).await.unwrap();
    let b = lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    assert_eq!((a.vmid.get(), b.vmid.get()), (9100, 9101));
    lab.wait_idle().await;
    // 9101 is live, 9100 destroyed a moment ago: it rests in quarantine first.
    match lab.create_sandbox(req("yolo-ephemeral")).await {
        Err(agentlab_core::engine::EngineError::Exhausted { quarantined, .. }) => {
            assert_eq!(quarantined, 1);
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    r.clock.advance(std::time::Duration::from_secs(59));
    assert!(
        lab.create_sandbox(req("yolo-ephemeral")).await.is_err(),
        "59 s < 60 s"
    );
    r.clock.advance(std::time::Duration::from_secs(1));
    let c = lab.create_sandbox(req("yolo-ephemeral")).await;
    assert_eq!(c.unwrap().vmid.get(), 9100, "reused after its quarantine");
    lab.wait_idle().await;
    assert!(matches!(
        lab.create_sandbox(req("yolo-ephemeral")).await,
        Err(agentlab_core::engine::EngineError::Exhausted { .. })
    ));
}

/// The hypervisor's `used_ids` is asked outside the allocation lock: five creates against a
/// backend that takes 10 s (virtual time) to list its ids cost about one call, not five in a
/// row.
#[tokio::test(start_paused = true)]
async fn a_slow_id_listing_does_not_serialize_unrelated_creates() {
    use agentlab_core::fake::hypervisor::FakeOp;
    let r = common::rig().await;
    r.hv.set_latency(FakeOp::UsedIds, std::time::Duration::from_secs(10));
    let t0 = tokio::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let lab = r.lab.clone();
        set.spawn(async move {
            lab.create_sandbox(agentlab_core::engine::SandboxRequest {
                profile: "yolo-ephemeral".into(),
                ..Default::default()
            })
            .await
            .map(|s| s.vmid)
        });
    }
    let mut vmids = Vec::new();
    while let Some(r) = set.join_next().await {
        vmids.push(r.unwrap().unwrap());
    }
    let took = t0.elapsed();
    vmids.sort();
    vmids.dedup();
    assert_eq!(vmids.len(), 5, "distinct ids");
    assert!(
        took < std::time::Duration::from_secs(25),
        "5 creates took {took:?} of virtual time: the id listing ran under the lock"
    );
}
