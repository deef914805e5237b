//! Keeping the network policy in place: [`Lab::enforce_firewall`] asks the firewall whether
//! its live policy is still what it installed and has it re-applied when something else (an
//! operator's `nft`, `agentlab net delete --force`, another tool) changed it. The daemon calls
//! it every `network.watch_interval_secs`.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashSet;

use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};
use crate::firewall::SandboxNet;
use crate::model::Sandbox;
use crate::state::SandboxState;
use crate::store::SandboxFilter;

impl Lab {
    /// Installs the base policy with every surviving sandbox's entries (a sandbox with a VM the
    /// hypervisor still lists, past provisioning and not being destroyed) in one step, so no
    /// sandbox is ever on the bridge unregistered while the daemon starts. Runs once per
    /// process, before any sandbox's own rules (see `Lab::firewall_base`).
    pub(crate) async fn restore_firewall(&self) -> Result<(), EngineError> {
        let managed = self.managed_ids().await?;
        let live = self
            .deps
            .store
            .list_sandboxes(&SandboxFilter::default())
            .await?;
        let survivors: Vec<(&Sandbox, SandboxNet)> = live
            .iter()
            .filter(|sb| sb.vm_created && managed.contains(&sb.vmid.get()))
            .filter(|sb| {
                !matches!(
                    sb.state,
                    SandboxState::Destroyed
                        | SandboxState::Requested
                        | SandboxState::Provisioning
                        | SandboxState::Booting
                )
            })
            .filter_map(|sb| Some((sb, self.sandbox_net(sb)?)))
            .collect();
        let nets: Vec<SandboxNet> = survivors.iter().map(|(_, n)| n.clone()).collect();
        if let Err(e) = self.deps.firewall.restore(&nets).await {
            // One bad entry must not keep the others out: base first (fatal if that fails),
            // then each sandbox on its own, failures noted on the sandbox.
            tracing::warn!(error = %chain(&e), "restoring the network policy in one batch failed");
            self.deps
                .firewall
                .ensure_base()
                .await
                .map_err(|source| EngineError::Firewall {
                    call: "ensure_base",
                    source,
                })?;
            for (sb, net) in &survivors {
                if let Err(e) = self.deps.firewall.allow(net).await {
                    let msg = format!("could not restore firewall entries: {}", chain(&e));
                    self.note(sb, &msg).await;
                }
            }
        }
        Ok(())
    }

    /// The ids of the VMs the hypervisor lists as AgentLab's.
    pub(crate) async fn managed_ids(&self) -> Result<HashSet<u32>, EngineError> {
        Ok(self
            .deps
            .hypervisor
            .list_managed()
            .await
            .map_err(|source| EngineError::Hypervisor {
                call: "list_managed",
                source,
            })?
            .into_iter()
            .map(|m| m.vmid.get())
            .collect())
    }

    /// The firewall identity of a sandbox with a VM, as provisioning allowed it.
    fn sandbox_net(&self, sb: &Sandbox) -> Option<SandboxNet> {
        let (Some(ip), Some(mac)) = (sb.ip, sb.mac.clone()) else {
            return None;
        };
        let profile = self.sandbox_profile(sb.vmid, &sb.profile)?;
        Some(SandboxNet {
            vmid: sb.vmid,
            iface: sb
                .iface
                .clone()
                .unwrap_or_else(|| format!("tap{}i0", sb.vmid)),
            mac,
            ip,
            egress: profile.network.egress(),
        })
    }

    /// Re-applies the network policy if it was changed behind the engine's back and records a
    /// `firewall_repaired` event. Returns whether it had to. A no-op without
    /// `manage_firewall`.
    pub async fn enforce_firewall(&self) -> Result<bool, EngineError> {
        if !self.settings.manage_firewall {
            return Ok(false);
        }
        let repaired =
            self.deps
                .firewall
                .enforce()
                .await
                .map_err(|source| EngineError::Firewall {
                    call: "enforce",
                    source,
                })?;
        if repaired {
            tracing::warn!("network policy changed outside agentlabd; re-applied");
            self.event(NewEvent::new(
                self.now(),
                EventKind::FirewallRepaired,
                "network policy was changed outside agentlabd; base ruleset and every \
                 sandbox's entries re-applied"
                    .to_owned(),
            ))
            .await;
        }
        Ok(repaired)
    }

    /// Runs [`Lab::enforce_firewall`] every `every` until the lab is shut down.
    pub fn spawn_firewall_watch(self: &Arc<Self>, every: Duration) {
        let lab = Arc::clone(self);
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = lab.cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(e) = lab.enforce_firewall().await {
                    tracing::warn!(error = %chain(&e), "checking the network policy failed");
                }
            }
        });
    }
}
