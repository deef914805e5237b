//! Wiring of the Proxmox VE backend (kept apart so `wiring.rs` stays short).

use std::sync::Arc;

use anyhow::Context;

use agentlab_core::Hypervisor;
use agentlab_core::config::Config;
use agentlab_pve::{ProxmoxHypervisor, PveOptions};

/// Builds the Proxmox hypervisor from the `pve:` and `network:` sections, runs the start-up
/// doctor (logging every failed check with its fix) and removes stale bootstrap snippets.
pub async fn hypervisor(
    cfg: &Config,
    template_vmids: &[u32],
) -> anyhow::Result<Arc<dyn Hypervisor>> {
    let opts = PveOptions::from_config(cfg).context("pve: section")?;
    for template in template_vmids {
        for check in agentlab_pve::doctor(&opts, *template).await {
            if check.ok {
                tracing::debug!(check = %check.name, detail = %check.detail, "doctor ok");
            } else {
                tracing::warn!(check = %check.name, detail = %check.detail, fix = check.fix.as_deref().unwrap_or(""), "doctor check failed");
            }
        }
    }
    let hv = ProxmoxHypervisor::new(opts).context("building the Proxmox backend")?;
    Ok(Arc::new(hv))
}
