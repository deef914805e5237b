//! Shared test setup: a simulator with a template and a backend pointed at it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use agentlab_core::hypervisor::{NetAttachment, Resources, VmSpec};
use agentlab_core::ids::Vmid;
use agentlab_core::secrets::SecretValue;
use agentlab_pve::sim::Schema;
use agentlab_pve::sim::{SeedVm, SimConfig, Simulator, default_schema_path, pve84_schema_path};
use agentlab_pve::{PollOptions, ProxmoxHypervisor, PveOptions};

pub const TEMPLATE: u32 = 9000;

/// The schema path, or `None` (skip) when missing outside CI; panics in CI.
pub fn schema_or_skip() -> Option<std::path::PathBuf> {
    let path = default_schema_path();
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "PVE schema missing at {} (required in CI)",
        path.display()
    );
    eprintln!("SKIP: PVE schema not found at {}", path.display());
    None
}

pub fn fast_poll() -> PollOptions {
    PollOptions {
        task_interval_ms: 2,
        task_max_interval_ms: 10,
        task_fine_interval_ms: 2,
        task_timeout_ms: 20_000,
        agent_interval_ms: 5,
        agent_timeout_ms: 20_000,
        lock_retries: 12,
        lock_backoff_ms: 5,
        request_timeout_ms: 10_000,
        max_inflight: 6,
        ..PollOptions::default()
    }
}

pub fn options(sim: &Simulator) -> PveOptions {
    let cfg = sim.config();
    let mut o = PveOptions::new(
        sim.url(),
        cfg.token_id.clone(),
        SecretValue::new(cfg.token_secret.clone()),
        "local-lvm",
    );
    o.node = "pve1".into();
    o.bridge = Some("vmbr1".into());
    o.ciuser = Some("agent".into());
    o.ssh_public_keys = vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx+/= agentlab@host".into()];
    o.poll = fast_poll();
    o
}

/// Simulator (with template 9000 on pve1 and a foreign VM 100) plus a backend.
pub async fn setup(tune: impl FnOnce(&mut SimConfig)) -> Option<(Simulator, ProxmoxHypervisor)> {
    let path = schema_or_skip()?;
    let mut cfg = SimConfig::new(path);
    tune(&mut cfg);
    let sim = Simulator::start(cfg, "127.0.0.1:0")
        .await
        .expect("simulator starts");
    sim.add_vm(&SeedVm::template(TEMPLATE, "pve1"));
    sim.add_vm(&SeedVm::foreign(100, "pve2"));
    let hv = ProxmoxHypervisor::new(options(&sim)).expect("backend builds");
    Some((sim, hv))
}

pub fn spec(vmid: u32) -> VmSpec {
    let host = u8::try_from(vmid % 200).unwrap() + 2;
    VmSpec {
        vmid: Vmid::new(vmid).unwrap(),
        name: format!("agentlab-{vmid}"),
        template_vmid: TEMPLATE,
        node: None,
        full_clone: false,
        resources: Resources {
            cores: 2,
            memory_mb: 4096,
            cpulimit: Some(1.5),
            balloon_mb: None,
        },
        root_size_gb: Some(20),
        net: NetAttachment {
            bridge: "vmbr1".into(),
            model: "virtio".into(),
            mac: format!("02:00:00:00:{:02x}:{:02x}", vmid / 256 % 256, vmid % 256),
            ip: IpAddr::V4(Ipv4Addr::new(10, 77, 0, host)),
            prefix_len: 16,
            gateway: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
            firewall: true,
        },
        profile: "default".into(),
        ssh_public_keys: Vec::new(),
    }
}

/// Every request validated against 9.1; and against 8.4 when that schema is present.
pub fn assert_schema_clean(sim: &Simulator) {
    sim.assert_all_valid();
    let p84 = pve84_schema_path();
    if p84.exists() {
        let schema = Schema::load(&p84).expect("8.4 schema loads");
        let bad = sim.invalid_against(&schema);
        assert!(
            bad.is_empty(),
            "requests invalid on PVE 8.4:\n{}",
            bad.join("\n")
        );
    }
}
