#![allow(dead_code)]
//! Shared set-up for the engine tests: a Lab over the fakes and a manual clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentlab_core::engine::{Lab, LabDeps, LabSettings};
use agentlab_core::fake::boot::{BootEvent, BootHook, BootHookError};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;
use agentlab_core::{EventKind, EventQuery, SandboxState, StateStore, Vmid};

/// Records the bootstrap data the engine hands to the hypervisor.
#[derive(Debug, Default)]
pub struct TokenTap {
    pub seen: Mutex<Vec<BootEvent>>,
}

impl BootHook for TokenTap {
    fn on_start(&self, event: &BootEvent) -> Result<(), BootHookError> {
        self.seen.lock().unwrap().push(event.clone());
        Ok(())
    }
    fn on_stop(&self, _vmid: Vmid, _grace: Duration) {}
}

impl TokenTap {
    pub fn token_for(&self, vmid: Vmid) -> String {
        let seen = self.seen.lock().unwrap();
        let ev = seen
            .iter()
            .rev()
            .find(|e| e.vmid == vmid)
            .expect("VM was started");
        ev.bootstrap
            .as_ref()
            .expect("bootstrap data")
            .token
            .expose()
            .to_owned()
    }
}

pub struct Rig {
    pub lab: Arc<Lab>,
    pub hv: Arc<FakeHypervisor>,
    pub fw: Arc<FakeFirewall>,
    pub secrets: Arc<MemorySecretStore>,
    pub store: Arc<dyn StateStore>,
    pub clock: Arc<ManualClock>,
    pub tap: Arc<TokenTap>,
}

pub fn profiles() -> Profiles {
    Profiles::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles"))
        .unwrap()
}

pub fn settings() -> LabSettings {
    LabSettings {
        guest_poll_interval: Duration::from_millis(1),
        boot_timeout: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(0),
        ..LabSettings::default()
    }
}

pub async fn rig() -> Rig {
    rig_with(
        Arc::new(MemoryStore::new()),
        Arc::new(FakeHypervisor::new()),
        Arc::new(ManualClock::at_epoch()),
    )
    .await
}

pub async fn rig_with(
    store: Arc<dyn StateStore>,
    hv: Arc<FakeHypervisor>,
    clock: Arc<ManualClock>,
) -> Rig {
    let tap = Arc::new(TokenTap::default());
    hv.set_boot_hook(tap.clone());
    let fw = Arc::new(FakeFirewall::new());
    let secrets = Arc::new(MemorySecretStore::new());
    let deps = LabDeps {
        hypervisor: hv.clone(),
        firewall: fw.clone(),
        secrets: secrets.clone(),
        store: store.clone(),
        clock: clock.clone(),
    };
    let lab = Lab::new(deps, settings(), profiles());
    lab.reconcile().await.unwrap();
    Rig {
        lab,
        hv,
        fw,
        secrets,
        store,
        clock,
        tap,
    }
}

impl Rig {
    pub async fn state(&self, vmid: Vmid) -> SandboxState {
        self.lab.sandbox(vmid).await.unwrap().state
    }

    pub async fn kinds(&self, vmid: Vmid) -> Vec<EventKind> {
        let q = EventQuery {
            sandbox: Some(vmid),
            ..EventQuery::default()
        };
        self.lab
            .events(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    pub async fn messages(&self, vmid: Vmid, kind: EventKind) -> Vec<String> {
        let q = EventQuery {
            sandbox: Some(vmid),
            kinds: vec![kind],
            ..EventQuery::default()
        };
        self.lab
            .events(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    pub fn clock_now(&self) -> agentlab_core::Timestamp {
        use agentlab_core::Clock;
        self.clock.now()
    }

    pub fn advance_min(&self, m: u64) {
        self.clock.advance(Duration::from_secs(m * 60));
    }
}
