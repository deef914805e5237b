//! Backend wiring: the only place that names concrete backends. Builds the four trait
//! objects and the clock from a daemon config ([`build`]) and the engine settings
//! ([`settings`]). A backend is available when its cargo feature is on (`fake`, `pve`,
//! `local`, `qemu`); a config naming another is refused with [`WiringError::BackendDisabled`].

use std::path::PathBuf;
use std::sync::Arc;

use agentlab_core::api_token::ApiTokenStore;
use agentlab_core::config::{BackendKind, Config};
use agentlab_core::engine::{LabDeps, LabSettings};
use agentlab_core::profile::Profiles;
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::{Firewall, Hypervisor, StateStoreError, SystemClock};

/// Why the backends could not be built; each names the part and its cause.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The state database could not be opened.
    #[error("opening state database {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: StateStoreError,
    },
    /// The config names a backend this build does not include.
    #[error("backend {backend} is not compiled in: enable the agentlab-host feature \"{backend}\"")]
    BackendDisabled {
        /// The backend's config name.
        backend: String,
    },
    /// The backend refused its config or could not start.
    #[error("setting up the {backend} backend: {message}")]
    Backend {
        /// The backend's config name.
        backend: &'static str,
        /// What failed, with its cause chain.
        message: String,
    },
    /// The network isolation could not be set up.
    #[error("setting up network isolation: {0}")]
    Network(String),
}

#[cfg(any(feature = "pve", feature = "local", feature = "qemu"))]
fn backend_err(backend: &'static str, e: impl std::fmt::Display) -> WiringError {
    WiringError::Backend {
        backend,
        message: e.to_string(),
    }
}

/// Builds the backends for `cfg`, and the API token store (the same state database).
pub async fn build(
    cfg: &Config,
    profiles: &Profiles,
) -> Result<(LabDeps, Arc<dyn ApiTokenStore>), WiringError> {
    let path = cfg.db_path();
    let store = SqliteStore::open(&path)
        .await
        .map_err(|source| WiringError::Store { path, source })?;
    let (hypervisor, firewall) = backends(cfg, profiles).await?;
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

type Backends = (Arc<dyn Hypervisor>, Arc<dyn Firewall>);

#[allow(unused_variables)]
async fn backends(cfg: &Config, profiles: &Profiles) -> Result<Backends, WiringError> {
    let disabled = || WiringError::BackendDisabled {
        backend: cfg.backend.to_string(),
    };
    match cfg.backend {
        #[cfg(feature = "fake")]
        BackendKind::Fake => Ok((
            crate::wiring_fake::hypervisor(cfg)?,
            Arc::new(agentlab_core::fake::FakeFirewall::new()),
        )),
        #[cfg(feature = "pve")]
        BackendKind::Pve => {
            let mut templates: Vec<u32> = profiles.iter().map(|p| p.template_vmid).collect();
            templates.sort_unstable();
            templates.dedup();
            Ok((pve_hypervisor(cfg, &templates).await?, net_firewall(cfg)?))
        }
        #[cfg(feature = "local")]
        BackendKind::Local => {
            let local = agentlab_local::LocalHypervisor::from_config(cfg)
                .await
                .map_err(|e| backend_err("local", e))?;
            Ok((Arc::new(local), net_firewall(cfg)?))
        }
        #[cfg(feature = "qemu")]
        BackendKind::Qemu => {
            let qemu = agentlab_qemu::QemuHypervisor::from_config(cfg)
                .await
                .map_err(|e| backend_err("qemu", e))?;
            Ok((Arc::new(qemu), net_firewall(cfg)?))
        }
        #[allow(unreachable_patterns)]
        _ => Err(disabled()),
    }
}

/// Builds the Proxmox hypervisor from the `pve:` and `network:` sections, runs the start-up
/// doctor (logging every failed check with its fix).
#[cfg(feature = "pve")]
async fn pve_hypervisor(
    cfg: &Config,
    template_vmids: &[u32],
) -> Result<Arc<dyn Hypervisor>, WiringError> {
    let opts = agentlab_pve::PveOptions::from_config(cfg).map_err(|e| backend_err("pve", e))?;
    for template in template_vmids {
        for check in agentlab_pve::doctor(&opts, *template).await {
            if check.ok {
                tracing::debug!(check = %check.name, detail = %check.detail, "doctor ok");
            } else {
                tracing::warn!(check = %check.name, detail = %check.detail, fix = check.fix.as_deref().unwrap_or(""), "doctor check failed");
            }
        }
    }
    let hv = agentlab_pve::ProxmoxHypervisor::new(opts).map_err(|e| backend_err("pve", e))?;
    Ok(Arc::new(hv))
}

#[cfg(any(feature = "pve", feature = "local", feature = "qemu"))]
fn net_firewall(cfg: &Config) -> Result<Arc<dyn Firewall>, WiringError> {
    if !cfg.network.manage_firewall {
        return Ok(Arc::new(crate::unmanaged::Unmanaged));
    }
    let net = agentlab_net::NetConfig::from_daemon(cfg)
        .map_err(|e| WiringError::Network(format!("mapping the network config: {e}")))?;
    Ok(Arc::new(agentlab_net::NftFirewall::new(net).map_err(
        |e| WiringError::Network(format!("building the nftables firewall: {e}")),
    )?))
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
