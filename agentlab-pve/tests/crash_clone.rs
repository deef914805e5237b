//! A daemon crash during the clone task: the engine over the PVE backend, its runtime shut
//! down mid-clone (the clone task keeps running in PVE), then a new engine on the same store.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentlab_core::engine::{Lab, LabDeps, LabSettings, SandboxRequest};
use agentlab_core::fake::{FakeFirewall, MemorySecretStore, MemoryStore};
use agentlab_core::profile::Profiles;
use agentlab_core::{EventQuery, SandboxState, StateStore, SystemClock};
use agentlab_pve::ProxmoxHypervisor;
use agentlab_pve::sim::Simulator;

fn lab(sim: &Simulator, store: Arc<dyn StateStore>) -> Arc<Lab> {
    let hv = Arc::new(ProxmoxHypervisor::new(common::options(sim)).unwrap());
    let deps = LabDeps {
        hypervisor: hv,
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store,
        clock: Arc::new(SystemClock),
    };
    let settings = LabSettings {
        guest_poll_interval: Duration::from_millis(5),
        boot_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::ZERO,
        ..LabSettings::default()
    };
    let profiles =
        Profiles::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles"))
            .unwrap();
    Lab::new(deps, settings, profiles)
}

fn request() -> SandboxRequest {
    SandboxRequest {
        profile: "yolo-ephemeral".into(),
        name: None,
        ttl_minutes: None,
        keepalive: None,
        workspace: None,
        job: None,
    }
}

/// Starts a sandbox on its own runtime and "crashes" that runtime while the clone task runs.
async fn crash_mid_clone(sim: &Simulator, store: Arc<dyn StateStore>) -> u32 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lab1 = lab(sim, Arc::clone(&store));
    let created = rt
        .spawn(async move { lab1.create_sandbox(request()).await.unwrap() })
        .await
        .unwrap();
    let vmid = created.vmid.get();
    for _ in 0..400 {
        if sim
            .vm_config(vmid)
            .is_some_and(|c| c.get("lock").is_some_and(|l| l == "clone"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sim.vm_config(vmid).is_some(), "clone task started");
    rt.shutdown_background();
    vmid
}

#[tokio::test]
async fn restart_removes_the_vm_a_crashed_clone_left() {
    let Some((sim, _)) = common::setup(|c| c.clone_duration = Duration::from_millis(800)).await
    else {
        return;
    };
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let vmid = crash_mid_clone(&sim, Arc::clone(&store)).await;
    // The clone task finishes in PVE after the crash: AgentLab's description, no tag.
    let lab2 = lab(&sim, Arc::clone(&store));
    lab2.reconcile().await.unwrap();
    lab2.wait_idle().await;
    assert!(
        sim.vm_config(vmid).is_none(),
        "restart destroyed the half-made VM: {:?}",
        sim.vm_config(vmid)
    );
    assert!(
        sim.volumes().values().all(|o| *o != vmid),
        "{:?}",
        sim.volumes()
    );
    let sb = lab2
        .sandbox(agentlab_core::Vmid::new(vmid).unwrap())
        .await
        .unwrap();
    assert_eq!(sb.state, SandboxState::Failed);
    let events = lab2
        .events(&EventQuery {
            sandbox: Some(sb.vmid),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("removed half-made VM")),
        "{events:#?}"
    );
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path == format!("/nodes/pve1/qemu/{vmid}")),
        "a Proxmox destroy was sent"
    );
    common::assert_schema_clean(&sim);
}

#[tokio::test]
async fn destroying_a_failed_sandbox_checks_the_hypervisor() {
    let Some((sim, _)) = common::setup(|c| c.clone_duration = Duration::from_millis(400)).await
    else {
        return;
    };
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let vmid = crash_mid_clone(&sim, Arc::clone(&store)).await;
    // Mark the record FAILED the way the old restart did, without any hypervisor call.
    let mut sb = store
        .get_sandbox(agentlab_core::Vmid::new(vmid).unwrap())
        .await
        .unwrap();
    let from = sb.state;
    sb.state = SandboxState::Failed;
    store.update_sandbox(&sb, from).await.unwrap();
    // Wait for the clone to finish in PVE: a stopped VM with AgentLab's description.
    for _ in 0..400 {
        if sim.vm_config(vmid).is_some_and(|c| !c.contains_key("lock")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cfg = sim.vm_config(vmid).expect("clone finished");
    assert!(cfg["description"].starts_with("Managed by AgentLab") && !cfg.contains_key("tags"));
    let lab2 = lab(&sim, Arc::clone(&store));
    let sb = lab2.destroy_sandbox(sb.vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Destroyed);
    assert!(sim.vm_config(vmid).is_none(), "the VM is gone too");
    common::assert_schema_clean(&sim);
}
