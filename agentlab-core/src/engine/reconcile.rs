//! Startup reconciliation of the store with the hypervisor.
//!
//! - REQUESTED: nothing was created yet; provisioning resumes.
//! - PROVISIONING / BOOTING: the daemon stopped mid-way. What was created is torn down (a VM
//!   counts as ours when `vm_created` is set or the hypervisor lists it among the VMs carrying
//!   AgentLab's marker: ids are only ever handed to AgentLab's own clones) and the sandbox
//!   becomes FAILED. A QUEUED job whose deadline has not passed gets a new sandbox.
//! - FAILED / TIMEOUT without `vm_created` whose id the hypervisor reports in use: a create
//!   that never reported back may have left a half-made VM; it is destroyed if it is ours.
//! - Any other live state whose VM the hypervisor no longer has becomes DESTROYED, with an
//!   event; its unfinished job FAILED.
//! - Finally [`Lab::tick`] fires whatever expired while the daemon was down.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::engine::provision::SandboxRequest;
use crate::event::{EventKind, NewEvent};
use crate::model::{JobOutcome, Sandbox};
use crate::state::{JobState, SandboxState};
use crate::store::SandboxFilter;

impl Lab {
    /// Brings the store and the hypervisor back in line after a (re)start.
    pub async fn reconcile(self: &Arc<Self>) -> Result<(), EngineError> {
        let managed: HashSet<u32> = self
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
            .collect();
        let used: HashSet<u32> = self
            .deps
            .hypervisor
            .used_ids()
            .await
            .map_err(|source| EngineError::Hypervisor {
                call: "used_ids",
                source,
            })?
            .into_iter()
            .map(|v| v.get())
            .collect();
        if self.settings.manage_firewall {
            self.deps
                .firewall
                .ensure_base()
                .await
                .map_err(|source| EngineError::Firewall {
                    call: "ensure_base",
                    source,
                })?;
        }
        let live = self
            .deps
            .store
            .list_sandboxes(&SandboxFilter::default())
            .await?;
        for mut sb in live {
            if self.is_inflight(sb.vmid) {
                // Requested after this process started: its own task is provisioning it.
                continue;
            }
            match sb.state {
                SandboxState::Destroyed => {}
                SandboxState::Requested => {
                    self.note(&sb, "resuming provisioning after restart").await;
                    self.spawn_provision(sb.vmid, None);
                }
                SandboxState::Provisioning | SandboxState::Booting => {
                    if managed.contains(&sb.vmid.get()) && !sb.vm_created {
                        sb.vm_created = true;
                    }
                    self.clean_in_flight(sb).await?;
                }
                SandboxState::Failed | SandboxState::Timeout
                    if !sb.vm_created && used.contains(&sb.vmid.get()) =>
                {
                    // A create that never reported back may have left a VM at this id.
                    let lock = self.lock_for(sb.vmid);
                    let _g = lock.lock().await;
                    if self.destroy_half_made(&mut sb).await {
                        continue;
                    }
                    self.save(&mut sb).await?;
                }
                _ if sb.vm_created && !managed.contains(&sb.vmid.get()) => {
                    self.mark_lost(sb).await?;
                }
                _ => {
                    if self.settings.manage_firewall && sb.vm_created {
                        self.reallow(&sb).await;
                    }
                }
            }
        }
        self.tick().await
    }

    async fn clean_in_flight(self: &Arc<Self>, mut sb: Sandbox) -> Result<(), EngineError> {
        let lock = self.lock_for(sb.vmid);
        let _g = lock.lock().await;
        let step = sb.state;
        self.note(
            &sb,
            &format!("agentlabd restarted while {step}; cleaning up"),
        )
        .await;
        self.teardown(&mut sb, Duration::ZERO).await;
        sb.last_error = Some(format!(
            "agentlabd restarted while the sandbox was {step}; cleaned up"
        ));
        self.transition(&mut sb, SandboxState::Failed, "interrupted by restart")
            .await?;
        drop(_g);
        let Some(job_id) = sb.job.clone() else {
            return Ok(());
        };
        let job = self.deps.store.get_job(&job_id).await?;
        let due = job.deadline.is_some_and(|d| d <= self.now());
        if job.state != JobState::Queued || due {
            return Ok(());
        }
        let req = SandboxRequest {
            profile: job.profile.clone(),
            name: None,
            ttl_minutes: Some(job.ttl_minutes),
            keepalive: Some(job.keepalive),
            workspace: job.workspace.as_ref().map(ToString::to_string),
            job: Some(job_id.clone()),
        };
        match self.create_sandbox(req).await {
            Ok(new) => {
                let mut job = self.deps.store.get_job(&job_id).await?;
                job.sandbox = Some(new.vmid);
                job.updated_at = self.now();
                self.deps.store.update_job(&job, job.state).await?;
                self.note(
                    &new,
                    &format!(
                        "job {job_id} continues in sandbox {} after restart",
                        new.vmid
                    ),
                )
                .await;
            }
            Err(e) => {
                let outcome = JobOutcome {
                    failed_step: Some("provision:request".into()),
                    error: Some(chain(&e)),
                    ..JobOutcome::default()
                };
                self.finish_job_by_daemon(&job_id, JobState::Failed, outcome)
                    .await;
            }
        }
        Ok(())
    }

    async fn mark_lost(&self, mut sb: Sandbox) -> Result<(), EngineError> {
        let lock = self.lock_for(sb.vmid);
        let _g = lock.lock().await;
        self.note(
            &sb,
            "VM no longer exists on the hypervisor; marking destroyed",
        )
        .await;
        sb.vm_created = false;
        sb.last_error = Some("VM disappeared from the hypervisor".into());
        if self.settings.manage_firewall {
            let _ = self.deps.firewall.remove(sb.vmid).await;
        }
        if let Some(ws) = sb.workspace.clone() {
            let _ = self.release_workspace(sb.vmid, ws.as_str(), false).await;
            sb.workspace = None;
        }
        self.transition(&mut sb, SandboxState::Destroyed, "VM lost")
            .await?;
        if let Some(job) = sb.job.clone() {
            let outcome = JobOutcome {
                error: Some("VM disappeared".into()),
                ..JobOutcome::default()
            };
            self.finish_job_by_daemon(&job, JobState::Failed, outcome)
                .await;
        }
        Ok(())
    }

    async fn reallow(&self, sb: &Sandbox) {
        let (Some(ip), Some(mac)) = (sb.ip, sb.mac.clone()) else {
            return;
        };
        let Some(profile) = self.profiles.get(&sb.profile) else {
            return;
        };
        let net = crate::firewall::SandboxNet {
            vmid: sb.vmid,
            iface: sb
                .iface
                .clone()
                .unwrap_or_else(|| format!("tap{}i0", sb.vmid)),
            mac,
            ip,
            egress: profile.network.egress(),
        };
        if let Err(e) = self.deps.firewall.allow(&net).await {
            self.note(
                sb,
                &format!("could not restore firewall entries: {}", chain(&e)),
            )
            .await;
        }
    }

    async fn note(&self, sb: &Sandbox, msg: &str) {
        self.event(
            NewEvent::new(self.now(), EventKind::Reconciled, msg.to_owned())
                .sandbox(sb.vmid)
                .job(sb.job.clone()),
        )
        .await;
    }
}
