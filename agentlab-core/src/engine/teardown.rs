//! Failure handling and teardown: what AgentLab created is removed, nothing else.
//!
//! `teardown` removes, in the reverse order of provisioning, the bootstrap tokens, the VM's
//! power (stop), the workspace attachment, the VM (when `vm_created` is set, or — for a create
//! that may have begun — the half-made VM the hypervisor has at that id, see `half_made`) and
//! last the firewall entries. Each removal records a `teardown` event; a failed removal is
//! recorded and leaves the flag set so a destroy retries it (see `destroy.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::engine::provision::StepFailure;
use crate::event::{EventKind, NewEvent};
use crate::hypervisor::HypervisorError;
use crate::ids::Vmid;
use crate::model::{JobOutcome, Sandbox};
use crate::state::{JobState, SandboxState};

impl Lab {
    /// Marks provisioning failed: event, teardown, FAILED/TIMEOUT, and the job FAILED.
    /// Returns the failure text.
    pub(crate) async fn fail_provisioning(self: &Arc<Self>, vmid: Vmid, f: StepFailure) -> String {
        let text = f.to_string();
        tracing::warn!(sandbox = %vmid, step = f.step, call = f.call, error = %text, "provisioning failed");
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let Ok(mut sb) = self.deps.store.get_sandbox(vmid).await else {
            return text;
        };
        if sb.state.is_finished() || sb.state == SandboxState::Stopped {
            return text;
        }
        self.event(
            NewEvent::new(self.now(), EventKind::ProvisionFailed, text.clone())
                .sandbox(vmid)
                .job(sb.job.clone())
                .payload(
                    serde_json::json!({"step": f.step, "call": f.call, "error": chain(&f.error)}),
                ),
        )
        .await;
        sb.last_error = Some(text.clone());
        self.teardown(&mut sb, Duration::ZERO).await;
        if let Err(e) = self.transition(&mut sb, f.final_state, f.step).await {
            tracing::error!(sandbox = %vmid, error = %chain(&e), "could not record failure state");
        }
        if let Some(job) = sb.job.clone() {
            let outcome = JobOutcome {
                failed_step: Some(format!("provision:{}", f.step)),
                error: Some(text.clone()),
                ..JobOutcome::default()
            };
            self.finish_job_by_daemon(&job, JobState::Failed, outcome)
                .await;
        }
        text
    }

    /// Removes everything AgentLab created for `sb`, in the reverse order of provisioning:
    /// bootstrap tokens (nothing can fetch any more), the VM is stopped (its port goes quiet),
    /// the workspace is detached, the VM destroyed (its port unplugged) and only then its
    /// firewall entries removed, so the port is never on the bridge without its bindings. A VM
    /// that could not be destroyed keeps its entries. Returns true when nothing is left.
    pub(crate) async fn teardown(&self, sb: &mut Sandbox, grace: Duration) -> bool {
        self.teardown_report(sb, grace).await.is_empty()
    }

    /// Like [`Lab::teardown`], returning what could not be removed (`what (call): cause`).
    pub(crate) async fn teardown_report(&self, sb: &mut Sandbox, grace: Duration) -> Vec<String> {
        let vmid = sb.vmid;
        let mut left = Vec::new();
        let r = self.deps.store.delete_bootstrap_tokens(vmid).await;
        self.teardown_event(
            sb,
            "tokens",
            "delete_bootstrap_tokens",
            r.map_err(|e| chain(&e)),
            &mut left,
        )
        .await;
        if sb.vm_created
            && let Err(e) = self.stop_vm(vmid, grace).await
        {
            self.teardown_event(sb, "vm", "stop", Err(chain(&e)), &mut left)
                .await;
        }
        if let Some(ws) = sb.workspace.clone() {
            crate::fail_point!("destroy:workspace");
            let r = self
                .release_workspace(vmid, ws.as_str(), sb.vm_created)
                .await;
            if self
                .teardown_event(
                    sb,
                    "workspace",
                    "detach_volume",
                    r.map_err(|e| chain(&e)),
                    &mut left,
                )
                .await
            {
                sb.workspace = None;
            }
        }
        if sb.vm_created {
            crate::fail_point!("destroy:vm");
            let r = self.destroy_vm(vmid, grace).await;
            if self
                .teardown_event(sb, "vm", "destroy", r.map_err(|e| chain(&e)), &mut left)
                .await
            {
                sb.vm_created = false;
            }
        } else if crate::engine::half_made::create_may_have_begun(sb.state)
            && !self.destroy_half_made(sb).await
        {
            left.push(format!(
                "vm (destroy): a half-made VM {vmid} is still there"
            ));
        }
        if self.settings.manage_firewall && sb.ip.is_some() && !sb.vm_created {
            crate::fail_point!("destroy:firewall");
            let r = self.deps.firewall.remove(vmid).await;
            self.teardown_event(
                sb,
                "firewall",
                "remove",
                r.map_err(|e| chain(&e)),
                &mut left,
            )
            .await;
        }
        if let Err(e) = self.save(sb).await {
            tracing::error!(sandbox = %vmid, error = %chain(&e), "could not save teardown result");
            left.push(format!("state (update_sandbox): {}", chain(&e)));
        }
        left
    }

    /// Stops the VM if it runs; a VM that is gone counts as stopped.
    async fn stop_vm(&self, vmid: Vmid, grace: Duration) -> Result<(), EngineError> {
        let h = &self.deps.hypervisor;
        match h.status(vmid).await {
            Ok(crate::hypervisor::PowerState::Stopped) | Err(HypervisorError::NotFound(_)) => {
                Ok(())
            }
            Ok(_) => h
                .stop(vmid, grace)
                .await
                .map_err(|source| EngineError::Hypervisor {
                    call: "stop",
                    source,
                }),
            Err(source) => Err(EngineError::Hypervisor {
                call: "status",
                source,
            }),
        }
    }

    pub(crate) async fn destroy_vm(&self, vmid: Vmid, grace: Duration) -> Result<(), EngineError> {
        let h = &self.deps.hypervisor;
        match h.status(vmid).await {
            Ok(crate::hypervisor::PowerState::Stopped) => {}
            Ok(_) => {
                h.stop(vmid, grace)
                    .await
                    .map_err(|source| EngineError::Hypervisor {
                        call: "stop",
                        source,
                    })?;
            }
            Err(HypervisorError::NotFound(_)) => return Ok(()),
            Err(source) => {
                return Err(EngineError::Hypervisor {
                    call: "status",
                    source,
                });
            }
        }
        crate::fail_point!("destroy:vm:stopped");
        match h.destroy(vmid).await {
            Ok(()) | Err(HypervisorError::NotFound(_)) => Ok(()),
            Err(source) => Err(EngineError::Hypervisor {
                call: "destroy",
                source,
            }),
        }
    }

    async fn teardown_event(
        &self,
        sb: &Sandbox,
        what: &str,
        call: &str,
        r: Result<(), String>,
        left: &mut Vec<String>,
    ) -> bool {
        let (ok, msg) = match &r {
            Ok(()) => (true, format!("removed {what}")),
            Err(e) => (false, format!("could not remove {what} ({call}): {e}")),
        };
        if let Err(e) = &r {
            tracing::warn!(sandbox = %sb.vmid, what, error = %msg, "teardown step failed");
            left.push(format!("{what} ({call}): {e}"));
        }
        self.event(
            NewEvent::new(
                self.now(),
                if ok {
                    EventKind::Teardown
                } else {
                    EventKind::Warning
                },
                msg,
            )
            .sandbox(sb.vmid)
            .job(sb.job.clone())
            .payload(serde_json::json!({"what": what, "call": call, "ok": ok, "error": r.err()})),
        )
        .await;
        ok
    }

    /// Moves a sandbox whose vmid turned out to be taken to a fresh id: the old record becomes
    /// DESTROYED (nothing was created for it), a new REQUESTED record takes over (and the job).
    pub(crate) async fn rekey(self: &Arc<Self>, old: Vmid) -> Result<Vmid, EngineError> {
        let external = self.external_ids().await?;
        let _alloc = self.alloc_lock.lock().await;
        let lock = self.lock_for(old);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(old).await?;
        let new = self.allocate_vmid(&[old], &external).await?;
        let mut moved = sb.clone();
        moved.vmid = new;
        moved.name = if sb.name == format!("agentlab-{old}") {
            format!("agentlab-{new}")
        } else {
            sb.name.clone()
        };
        moved.state = SandboxState::Requested;
        moved.vm_created = false;
        moved.updated_at = self.now();
        // The provisioning task continues with it: in flight before it is visible.
        self.set_inflight(new, true);
        if let Err(e) = self.deps.store.insert_sandbox(&moved).await {
            self.set_inflight(new, false);
            return Err(e.into());
        }
        self.move_pin(old, new);
        sb.last_error = Some(format!(
            "VM id {old} is taken outside AgentLab; continuing as sandbox {new}"
        ));
        let why = sb.last_error.clone().unwrap_or_default();
        // On the old id's stream, so a client following it can switch to the new sandbox.
        self.event(
            NewEvent::new(self.now(), EventKind::SandboxRequested, why.clone())
                .sandbox(old)
                .job(sb.job.clone())
                .payload(serde_json::json!({"replaced_by": new.get()})),
        )
        .await;
        self.transition(&mut sb, SandboxState::Destroyed, &why)
            .await?;
        if let Some(job_id) = &sb.job {
            let mut job = self.deps.store.get_job(job_id).await?;
            job.sandbox = Some(new);
            job.updated_at = self.now();
            self.deps.store.update_job(&job, job.state).await?;
        }
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::SandboxRequested,
                format!("sandbox {new} requested (replaces {old})"),
            )
            .sandbox(new)
            .job(moved.job.clone()),
        )
        .await;
        Ok(new)
    }
}
