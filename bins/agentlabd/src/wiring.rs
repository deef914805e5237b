//! Backend wiring: the only place that names concrete backends. Builds the four trait
//! objects and the clock from the daemon config.

use std::sync::Arc;

use anyhow::Context;

use agentlab_core::api_token::ApiTokenStore;
use agentlab_core::config::{BackendKind, Config};
use agentlab_core::engine::{LabDeps, LabSettings};
use agentlab_core::fake::boot::ProcessBootHook;
use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
use agentlab_core::fake::{FakeFirewall, FakeHypervisor};
use agentlab_core::profile::Profiles;
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::{Firewall, Hypervisor, SystemClock};

/// Builds the backends for `cfg`, and the API token store (the same state database).
pub async fn build(
    cfg: &Config,
    profiles: &Profiles,
) -> anyhow::Result<(LabDeps, Arc<dyn ApiTokenStore>)> {
    let store = SqliteStore::open(&cfg.db_path())
        .await
        .with_context(|| format!("opening state database {}", cfg.db_path().display()))?;
    let (hypervisor, firewall): (Arc<dyn Hypervisor>, Arc<dyn Firewall>) = match cfg.backend {
        BackendKind::Fake => (fake_hypervisor(cfg)?, Arc::new(FakeFirewall::new())),
        BackendKind::Pve => {
            let mut templates: Vec<u32> = profiles.iter().map(|p| p.template_vmid).collect();
            templates.sort_unstable();
            templates.dedup();
            (
                crate::wiring_pve::hypervisor(cfg, &templates).await?,
                net_firewall(cfg)?,
            )
        }
        BackendKind::Local => {
            let local = agentlab_local::LocalHypervisor::from_config(cfg)
                .await
                .context("setting up the local backend")?;
            (Arc::new(local), net_firewall(cfg)?)
        }
        BackendKind::Qemu => {
            let qemu = agentlab_qemu::QemuHypervisor::from_config(cfg)
                .await
                .context("setting up the qemu backend")?;
            (Arc::new(qemu), net_firewall(cfg)?)
        }
    };
    let secrets = Arc::new(agentlab_secrets::AgeSecretStore::new(
        &cfg.secrets.dir,
        &cfg.secrets.identity,
    ));
    let tokens: Arc<dyn ApiTokenStore> = Arc::new(store.clone());
    let deps = LabDeps {
        hypervisor,
        firewall,
        secrets,
        store: Arc::new(store),
        clock: Arc::new(SystemClock),
    };
    Ok((deps, tokens))
}

/// The fake backend keeps its VMs in `<work_dir>/fake-state.json` so a restarted daemon finds
/// what it created; its boot hook runs `agent-runner` (or `boot_command`) as a local process.
fn fake_hypervisor(cfg: &Config) -> anyhow::Result<Arc<dyn Hypervisor>> {
    let work = cfg
        .fake
        .work_dir
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("fake-vms"));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let state = work.join("fake-state.json");
    let fake = FakeHypervisor::persistent(&state)
        .with_context(|| format!("loading {}", state.display()))?;
    let hook = match (&cfg.fake.boot_command, &cfg.fake.runner_path) {
        (Some(argv), _) if !argv.is_empty() => Some(ProcessBootHook::new(
            work,
            argv[0].clone(),
            argv[1..].to_vec(),
        )),
        (_, Some(runner)) => Some(ProcessBootHook::agent_runner(
            work,
            runner.display().to_string(),
        )),
        _ => None,
    };
    if let Some(h) = hook {
        fake.set_boot_hook(Arc::new(h));
    }
    for (op, msg) in &cfg.fake.faults {
        fake.fail_always(fake_op(op)?, Fault::new(FaultKind::Backend, msg.clone()));
    }
    for (op, ms) in &cfg.fake.latency_ms {
        fake.set_latency(fake_op(op)?, std::time::Duration::from_millis(*ms));
    }
    Ok(Arc::new(fake))
}

/// Maps a config operation name (`create`, `guest_address`, …) to the fake's operation.
fn fake_op(name: &str) -> anyhow::Result<FakeOp> {
    FakeOp::ALL
        .into_iter()
        .find(|op| {
            let debug = format!("{op:?}");
            let snake: String = debug
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let lower = c.to_ascii_lowercase();
                    if c.is_ascii_uppercase() && i > 0 {
                        vec!['_', lower]
                    } else {
                        vec![lower]
                    }
                })
                .collect();
            snake == name
        })
        .with_context(|| format!("fake.faults/latency_ms: unknown operation {name:?}"))
}

fn net_firewall(cfg: &Config) -> anyhow::Result<Arc<dyn Firewall>> {
    if !cfg.network.manage_firewall {
        return Ok(Arc::new(FakeFirewall::new()));
    }
    let net = agentlab_net::NetConfig::from_daemon(cfg).context("mapping the network config")?;
    Ok(Arc::new(
        agentlab_net::NftFirewall::new(net).context("building the nftables firewall")?,
    ))
}

/// Engine settings from the config.
pub fn settings(cfg: &Config) -> LabSettings {
    LabSettings {
        vmid_start: cfg.vmid_range.start,
        vmid_end: cfg.vmid_range.end,
        subnet_base: cfg.network.subnet.network(),
        subnet_prefix: cfg.network.subnet.prefix_len(),
        gateway: cfg.network.gateway,
        controller_url: cfg.guest.controller_url(),
        token_ttl: std::time::Duration::from_secs(cfg.guest.token_ttl_secs),
        job_log_max_lines: cfg.retention.job_log_max_lines,
        manage_firewall: cfg.network.manage_firewall,
        vmid_quarantine: std::time::Duration::from_secs(cfg.vmid_range.quarantine_secs),
        // Guests of a loopback listener are host processes (fake backend, simulator).
        bind_bootstrap_address: !cfg.guest.listen.ip().is_loopback(),
        guest_poll_interval: std::time::Duration::from_millis(
            if cfg.backend == BackendKind::Fake {
                50
            } else {
                2000
            },
        ),
        ssh_public_keys: agentlab_core::ssh_key::merge(&cfg.ssh_public_keys, &[]),
        quotas: cfg.quotas.clone(),
        ..LabSettings::default()
    }
}
