#![cfg(test)]
//! Engine: the network policy is put back when something else changes it.

#[path = "engine/common.rs"]
mod common;

use agentlab_core::{EventKind, EventQuery};
use common::rig;

#[tokio::test]
async fn a_tampered_policy_is_re_applied_with_an_event() {
    let r = rig().await;
    assert!(
        !r.lab.enforce_firewall().await.unwrap(),
        "nothing to repair"
    );
    r.fw.tamper();
    assert!(!r.fw.state().base_applied, "the policy is gone");
    assert!(r.lab.enforce_firewall().await.unwrap(), "repaired");
    assert!(r.fw.state().base_applied, "the policy is back");
    let q = EventQuery {
        kinds: vec![EventKind::FirewallRepaired],
        ..EventQuery::default()
    };
    let events = r.lab.events(&q).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].message.contains("re-applied"));
    assert!(!r.lab.enforce_firewall().await.unwrap(), "repaired once");
}

mod order {
    use std::sync::{Arc, Mutex};

    use agentlab_core::engine::{Lab, LabDeps, SandboxRequest};
    use agentlab_core::fake::{
        FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
    };
    use agentlab_core::{
        Firewall, FirewallError, FirewallState, Hypervisor, HypervisorError, SandboxNet,
        SandboxState, Vmid,
    };
    use async_trait::async_trait;

    use super::common::{profiles, settings};

    /// Delegates to the fake, and notes whether the VM still existed at each `remove`.
    #[derive(Debug)]
    struct Watching {
        inner: FakeFirewall,
        hv: Arc<FakeHypervisor>,
        vm_existed_at_remove: Mutex<Vec<bool>>,
    }

    #[async_trait]
    impl Firewall for Watching {
        async fn ensure_base(&self) -> Result<(), FirewallError> {
            self.inner.ensure_base().await
        }
        async fn allow(&self, s: &SandboxNet) -> Result<(), FirewallError> {
            self.inner.allow(s).await
        }
        async fn remove(&self, vmid: Vmid) -> Result<(), FirewallError> {
            let exists = !matches!(
                self.hv.status(vmid).await,
                Err(HypervisorError::NotFound(_))
            );
            self.vm_existed_at_remove.lock().unwrap().push(exists);
            self.inner.remove(vmid).await
        }
        async fn describe(&self) -> Result<FirewallState, FirewallError> {
            self.inner.describe().await
        }
    }

    #[tokio::test]
    async fn firewall_entries_go_only_after_the_vm_is_gone() {
        let hv = Arc::new(FakeHypervisor::new());
        let fw = Arc::new(Watching {
            inner: FakeFirewall::new(),
            hv: hv.clone(),
            vm_existed_at_remove: Mutex::new(Vec::new()),
        });
        let deps = LabDeps {
            hypervisor: hv.clone(),
            firewall: fw.clone(),
            secrets: Arc::new(MemorySecretStore::new()),
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(ManualClock::at_epoch()),
        };
        let lab = Lab::new(deps, settings(), profiles());
        lab.reconcile().await.unwrap();
        let req = SandboxRequest {
            profile: "interactive-dev".into(),
            name: None,
            ttl_minutes: None,
            keepalive: None,
            workspace: None,
            job: None,
        };
        let sb = lab.create_sandbox(req).await.unwrap();
        lab.wait_idle().await;
        assert_eq!(
            lab.sandbox(sb.vmid).await.unwrap().state,
            SandboxState::Ready
        );
        let gone = lab.destroy_sandbox(sb.vmid).await.unwrap();
        assert_eq!(gone.state, SandboxState::Destroyed);
        assert_eq!(
            *fw.vm_existed_at_remove.lock().unwrap(),
            [false],
            "entries removed once, after the VM was destroyed"
        );
        assert!(fw.inner.state().sandboxes.is_empty());
    }
}
