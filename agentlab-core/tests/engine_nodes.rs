//! Node loss in the engine, over a two-node wrapper of the fake hypervisor that has the
//! optional `NodeHealth` ability: a sandbox on an offline node becomes LOST (event, cause),
//! the other node's sandbox is untouched, LOST refuses start and renewal and outlives its
//! lease, and when the node is back the LOST sandbox is destroyed.
#![cfg(test)]

#[path = "engine/common.rs"]
mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentlab_core::engine::{Lab, LabDeps, LabSettings, SandboxRequest};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::hypervisor::{
    BootstrapData, Hypervisor, HypervisorError, ManagedVm, NodeHealth, NodeStatus, PowerState,
    VmHandle, VmSpec, VolumeId,
};
use agentlab_core::{EventKind, EventQuery, SandboxState, Vmid, WorkspaceId};
use async_trait::async_trait;
use common::{TokenTap, profiles, settings};

/// The fake hypervisor on two nodes: even vmids on `n1`, odd ones on `n2`.
#[derive(Debug)]
struct TwoNodes {
    inner: Arc<FakeHypervisor>,
    offline: Mutex<HashSet<String>>,
}

fn node_of(vmid: Vmid) -> String {
    if vmid.get().is_multiple_of(2) {
        "n1"
    } else {
        "n2"
    }
    .to_owned()
}

#[async_trait]
impl NodeHealth for TwoNodes {
    async fn node_status(&self) -> Result<Vec<NodeStatus>, HypervisorError> {
        let off = self.offline.lock().unwrap().clone();
        Ok(["n1", "n2"]
            .iter()
            .map(|n| NodeStatus {
                name: (*n).to_owned(),
                online: !off.contains(*n),
                mem_total: 64 << 30,
                mem_free: 32 << 30,
                clone_tasks: 0,
                clone_limit: 3,
            })
            .collect())
    }
}

#[async_trait]
impl Hypervisor for TwoNodes {
    fn name(&self) -> &'static str {
        "two-nodes"
    }
    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        let mut h = self.inner.create(spec).await?;
        h.node = node_of(spec.vmid);
        Ok(h)
    }
    async fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        self.inner.configure(spec).await
    }
    async fn start(&self, v: Vmid, b: Option<&BootstrapData>) -> Result<(), HypervisorError> {
        self.inner.start(v, b).await
    }
    async fn stop(&self, v: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        self.inner.stop(v, grace).await
    }
    async fn destroy(&self, v: Vmid) -> Result<(), HypervisorError> {
        if self.offline.lock().unwrap().contains(&node_of(v)) {
            return Err(HypervisorError::Unavailable("node offline".into()));
        }
        self.inner.destroy(v).await
    }
    async fn status(&self, v: Vmid) -> Result<PowerState, HypervisorError> {
        self.inner.status(v).await
    }
    async fn guest_address(&self, v: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        self.inner.guest_address(v).await
    }
    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        self.inner.list_managed().await
    }
    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        self.inner.used_ids().await
    }
    async fn create_volume(&self, ws: &WorkspaceId, gb: u32) -> Result<VolumeId, HypervisorError> {
        self.inner.create_volume(ws, gb).await
    }
    async fn delete_volume(&self, v: &VolumeId) -> Result<(), HypervisorError> {
        self.inner.delete_volume(v).await
    }
    async fn attach_volume(&self, vm: Vmid, v: &VolumeId) -> Result<(), HypervisorError> {
        self.inner.attach_volume(vm, v).await
    }
    async fn detach_volume(&self, vm: Vmid, v: &VolumeId) -> Result<(), HypervisorError> {
        self.inner.detach_volume(vm, v).await
    }
    fn node_health(&self) -> Option<&dyn NodeHealth> {
        Some(self)
    }
}

#[tokio::test]
async fn an_offline_node_loses_only_its_sandboxes_which_go_when_it_returns() {
    let fake = Arc::new(FakeHypervisor::new());
    fake.set_boot_hook(Arc::new(TokenTap::default()));
    let hv = Arc::new(TwoNodes {
        inner: Arc::clone(&fake),
        offline: Mutex::default(),
    });
    let clock = Arc::new(ManualClock::at_epoch());
    let deps = LabDeps {
        hypervisor: hv.clone(),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: clock.clone(),
    };
    let lab = Lab::new(
        deps,
        LabSettings {
            node_check_interval: Duration::ZERO,
            ..settings()
        },
        profiles(),
    );
    lab.reconcile().await.unwrap();
    let profile = profiles().iter().next().unwrap().name.clone();
    let req = || SandboxRequest {
        profile: profile.clone(),
        keepalive: Some(true),
        ..SandboxRequest::default()
    };
    let a = lab.create_sandbox(req()).await.unwrap().vmid;
    let b = lab.create_sandbox(req()).await.unwrap().vmid;
    lab.wait_idle().await;
    let (on_n1, on_n2) = if node_of(a) == "n1" { (a, b) } else { (b, a) };
    assert_eq!(node_of(on_n2), "n2", "one sandbox per node");
    for v in [a, b] {
        assert_eq!(lab.sandbox(v).await.unwrap().state, SandboxState::Ready);
    }

    hv.offline.lock().unwrap().insert("n2".into());
    lab.tick().await.unwrap();
    let lost = lab.sandbox(on_n2).await.unwrap();
    assert_eq!(lost.state, SandboxState::Lost);
    assert!(
        lost.last_error
            .as_deref()
            .is_some_and(|e| e.contains("node n2 went offline")),
        "{lost:?}"
    );
    let q = EventQuery {
        sandbox: Some(on_n2),
        kinds: vec![EventKind::SandboxLost],
        ..EventQuery::default()
    };
    let events = lab.events(&q).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].payload["node"], "n2");
    assert_eq!(
        lab.sandbox(on_n1).await.unwrap().state,
        SandboxState::Ready,
        "the other node's sandbox is untouched"
    );
    assert!(lab.start_sandbox(on_n2).await.is_err());
    assert!(lab.renew_lease(on_n2, None).await.is_err());

    // Its lease ends while the node is away: it waits for the node, LOST.
    clock.advance(Duration::from_secs(48 * 3600));
    lab.tick().await.unwrap();
    lab.wait_idle().await;
    assert_eq!(lab.sandbox(on_n2).await.unwrap().state, SandboxState::Lost);
    assert!(fake.vms().iter().any(|vm| vm.vmid == on_n2));

    // The node is back: the lost VM is destroyed.
    hv.offline.lock().unwrap().clear();
    lab.tick().await.unwrap();
    lab.wait_idle().await;
    let gone = lab.sandbox(on_n2).await.unwrap();
    assert_eq!(gone.state, SandboxState::Destroyed, "{gone:?}");
    assert!(!fake.vms().iter().any(|vm| vm.vmid == on_n2));
}
