//! Node loss. Backends spanning several nodes report node health
//! ([`crate::hypervisor::NodeHealth`]); [`Lab::tick`] looks at it every
//! `LabSettings::node_check_interval`:
//!
//! - A node that is offline: every sandbox with a VM on it becomes LOST (a `sandbox_lost`
//!   event names the node; `last_error` says what happens next), its bootstrap tokens are
//!   deleted and its unfinished job FAILED with the cause (`failed_step: node`). Sandboxes on
//!   other nodes are not touched. A provisioning task working on a LOST sandbox stops at its
//!   next step.
//! - A node that is back online: its LOST sandboxes are destroyed (DESTROYING, retried with
//!   backoff like every destroy, then DESTROYED), so the VMs that come back stopped with the
//!   node are removed.
//!
//! Backends without the ability (one host) are never asked.

use std::collections::HashSet;
use std::sync::PoisonError;
use std::time::Duration;

use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};
use crate::ids::Vmid;
use crate::model::JobOutcome;
use crate::state::{JobState, SandboxState};
use crate::store::SandboxFilter;
use crate::time::Timestamp;

impl Lab {
    /// Marks sandboxes on offline nodes LOST and destroys LOST sandboxes whose node is back,
    /// when a check is due.
    pub(crate) async fn watch_nodes(&self, now: Timestamp) -> Result<(), EngineError> {
        let Some(health) = self.deps.hypervisor.node_health() else {
            return Ok(());
        };
        {
            let mut last = self
                .node_checked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let every =
                chrono::Duration::from_std(self.settings.node_check_interval).unwrap_or_default();
            if last.is_some_and(|t| t + every > now) {
                return Ok(());
            }
            *last = Some(now);
        }
        let nodes = match health.node_status().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "cannot read node health; next check retries");
                return Ok(());
            }
        };
        let offline: HashSet<&str> = nodes
            .iter()
            .filter(|n| !n.online)
            .map(|n| n.name.as_str())
            .collect();
        let online: HashSet<&str> = nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.as_str())
            .collect();
        let live = self
            .deps
            .store
            .list_sandboxes(&SandboxFilter::default())
            .await?;
        for sb in live {
            let Some(node) = sb.node.as_deref() else {
                continue;
            };
            if offline.contains(node)
                && sb.vm_created
                && sb.state.can_transition_to(SandboxState::Lost)
            {
                if let Err(e) = self.mark_node_lost(sb.vmid, node).await {
                    tracing::warn!(sandbox = %sb.vmid, error = %chain(&e), "could not mark sandbox lost");
                }
            } else if sb.state == SandboxState::Lost && online.contains(node) {
                let why = format!("node {node} is back online; removing the lost sandbox's VM");
                if let Err(e) = self.schedule_destroy(sb.vmid, Duration::ZERO, &why).await {
                    tracing::warn!(sandbox = %sb.vmid, error = %chain(&e), "could not begin destroying a lost sandbox");
                }
            }
        }
        Ok(())
    }

    /// LOST under the sandbox's lock (skipped when busy: the next check retries), then its
    /// job FAILED.
    async fn mark_node_lost(&self, vmid: Vmid, node: &str) -> Result<(), EngineError> {
        let lock = self.lock_for(vmid);
        let Ok(_g) = lock.try_lock() else {
            self.node_checked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return Ok(());
        };
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if sb.node.as_deref() != Some(node)
            || !sb.vm_created
            || !sb.state.can_transition_to(SandboxState::Lost)
        {
            return Ok(());
        }
        let from = sb.state;
        tracing::warn!(sandbox = %vmid, node, from = %from, "node offline: sandbox lost");
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::SandboxLost,
                format!("sandbox {vmid} lost: node {node} went offline (was {from})"),
            )
            .sandbox(vmid)
            .job(sb.job.clone())
            .payload(serde_json::json!({"node": node, "from": from})),
        )
        .await;
        sb.last_error = Some(format!(
            "node {node} went offline; the sandbox is lost and its VM is destroyed when the node is back"
        ));
        self.transition(&mut sb, SandboxState::Lost, &format!("node {node} offline"))
            .await?;
        if let Err(e) = self.deps.store.delete_bootstrap_tokens(vmid).await {
            tracing::warn!(sandbox = %vmid, error = %chain(&e), "could not delete bootstrap tokens");
        }
        drop(_g);
        if let Some(job) = sb.job.clone() {
            let outcome = JobOutcome {
                failed_step: Some("node".into()),
                error: Some(format!("node {node} went offline; sandbox {vmid} lost")),
                ..JobOutcome::default()
            };
            self.finish_job_by_daemon(&job, JobState::Failed, outcome)
                .await;
        }
        Ok(())
    }
}
