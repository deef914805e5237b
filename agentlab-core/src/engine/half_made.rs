//! Half-made VMs: a create that began but never reported back (the daemon crashed during the
//! clone task, or the create failed part-way) may have left a VM at the sandbox's id without
//! `vm_created` being recorded. The sandbox's id was recorded before the create call, so the
//! engine asks the hypervisor about that id instead of trusting the row; the backend destroys
//! the VM only if it carries AgentLab's marker (waiting for a clone task still running).

use std::time::Duration;

use crate::engine::error::chain;
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};
use crate::hypervisor::HypervisorError;
use crate::model::Sandbox;
use crate::state::SandboxState;

/// States in which a create may have begun without `vm_created` being recorded.
pub(crate) fn create_may_have_begun(state: SandboxState) -> bool {
    matches!(
        state,
        SandboxState::Provisioning
            | SandboxState::Booting
            | SandboxState::Failed
            | SandboxState::Timeout
            | SandboxState::Destroying
    )
}

impl Lab {
    /// Removes a half-made VM at `sb`'s id, if the hypervisor has one of ours. Returns true
    /// when nothing of AgentLab's is left (no VM, removed, or the VM there is not AgentLab's);
    /// otherwise sets `vm_created`, so the VM is treated as AgentLab's until a destroy succeeds.
    pub(crate) async fn destroy_half_made(&self, sb: &mut Sandbox) -> bool {
        let vmid = sb.vmid;
        let (ok, kind, msg) = match self.deps.hypervisor.status(vmid).await {
            Err(HypervisorError::NotFound(_)) => return true,
            Err(e) => (
                false,
                EventKind::Warning,
                format!(
                    "could not check for a half-made VM {vmid} (status): {}",
                    chain(&e)
                ),
            ),
            Ok(_) => match self.destroy_vm(vmid, Duration::ZERO).await {
                Ok(()) => (
                    true,
                    EventKind::Teardown,
                    format!("removed half-made VM {vmid} (its create began but never finished)"),
                ),
                Err(crate::engine::error::EngineError::Hypervisor {
                    source: HypervisorError::Rejected { reason },
                    ..
                }) => (
                    true,
                    EventKind::Warning,
                    format!("left VM {vmid} alone: {reason}"),
                ),
                Err(e) => (
                    false,
                    EventKind::Warning,
                    format!(
                        "could not remove half-made VM {vmid} (destroy): {}",
                        chain(&e)
                    ),
                ),
            },
        };
        self.event(
            NewEvent::new(self.now(), kind, msg)
                .sandbox(vmid)
                .job(sb.job.clone())
                .payload(serde_json::json!({"what": "vm", "call": "destroy", "ok": ok, "half_made": true})),
        )
        .await;
        if !ok {
            sb.vm_created = true;
        }
        ok
    }
}
