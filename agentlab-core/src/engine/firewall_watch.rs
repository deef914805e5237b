//! Keeping the network policy in place: [`Lab::enforce_firewall`] asks the firewall whether
//! its live policy is still what it installed and has it re-applied when something else (an
//! operator's `nft`, `agentlab net delete --force`, another tool) changed it. The daemon calls
//! it every `network.watch_interval_secs`.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};

impl Lab {
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
