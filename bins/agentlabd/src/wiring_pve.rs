//! Wiring of the Proxmox VE backend (kept apart so `wiring.rs` stays short).

use std::sync::Arc;

use agentlab_core::Hypervisor;
use agentlab_core::config::Config;

/// Builds the Proxmox hypervisor from the `pve:` section.
pub fn hypervisor(cfg: &Config) -> anyhow::Result<Arc<dyn Hypervisor>> {
    let _pve = cfg
        .pve
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("backend pve needs a pve: section"))?;
    anyhow::bail!("backend pve is being wired; use backend: fake for now")
}
