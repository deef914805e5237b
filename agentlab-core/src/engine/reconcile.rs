//! Startup reconciliation of the store with the hypervisor.
//!
//! - REQUESTED: nothing was created yet; provisioning resumes.
//! - PROVISIONING / BOOTING: the daemon stopped mid-way. What was created is torn down (a VM
//!   counts as ours when `vm_created` is set or the hypervisor lists it among the VMs carrying
//!   AgentLab's marker: ids are only ever handed to AgentLab's own clones) and the sandbox
//!   becomes FAILED. A QUEUED job whose deadline has not passed gets a new sandbox.
//! - DESTROYING: a destroy had begun; [`Lab::tick`] (run last) finishes it.
//! - FAILED / TIMEOUT without `vm_created` whose id the hypervisor reports in use: a create
//!   that never reported back may have left a half-made VM; it is destroyed if it is ours.
//! - Any other live state whose VM the hypervisor no longer has becomes DESTROYED, with an
//!   event; its unfinished job FAILED.
//! - Finally [`Lab::tick`] fires whatever expired while the daemon was down.
//!
//! The daemon serves requests while this runs ([`Lab::spawn_recovery`]), so work this
//! process started itself is skipped: sandboxes it provisions or boots are marked in flight
//! before they are written, and every record is read again under its lock before it is
//! touched.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::engine::provision::SandboxRequest;
use crate::event::{EventKind, NewEvent};
use crate::ids::Vmid;
use crate::model::{JobOutcome, Sandbox};
use crate::state::{JobState, SandboxState};
use crate::store::SandboxFilter;

impl Lab {
    /// Brings the store and the hypervisor back in line after a (re)start.
    pub async fn reconcile(self: &Arc<Self>) -> Result<(), EngineError> {
        let managed = self.managed_ids().await?;
        let used: HashSet<u32> = self
            .external_ids()
            .await?
            .into_iter()
            .map(|v| v.get())
            .collect();
        if self.settings.manage_firewall {
            self.firewall_base().await?;
        }
        let live = self
            .deps
            .store
            .list_sandboxes(&SandboxFilter::default())
            .await?;
        for sb in live {
            if self.is_inflight(sb.vmid) {
                // Requested after this process started: its own task is provisioning it.
                continue;
            }
            match sb.state {
                SandboxState::Destroyed | SandboxState::Destroying => {}
                SandboxState::Requested => self.resume(sb.vmid).await,
                SandboxState::Provisioning | SandboxState::Booting => {
                    self.clean_in_flight(sb.vmid, managed.contains(&sb.vmid.get()))
                        .await?;
                }
                SandboxState::Failed | SandboxState::Timeout
                    if !sb.vm_created && used.contains(&sb.vmid.get()) =>
                {
                    // A create that never reported back may have left a VM at this id.
                    let lock = self.lock_for(sb.vmid);
                    let _g = lock.lock().await;
                    let mut sb = self.deps.store.get_sandbox(sb.vmid).await?;
                    if sb.vm_created || self.destroy_half_made(&mut sb).await {
                        continue;
                    }
                    self.save(&mut sb).await?;
                }
                _ if sb.vm_created && !managed.contains(&sb.vmid.get()) => {
                    self.mark_lost(sb.vmid).await?;
                }
                // Its firewall entries went in with the base policy (`firewall_base`).
                _ => {}
            }
        }
        self.tick().await
    }

    /// Start-up recovery in the background, so the caller can serve at once: reconciles,
    /// retrying with backoff (1 s doubling to 60 s) while the hypervisor or firewall does not
    /// answer, then runs [`Lab::tick`] every `tick_every`. Ends at [`Lab::shutdown`], which
    /// may interrupt a reconcile half-way; that is safe: the next start resumes it.
    pub fn spawn_recovery(self: &Arc<Self>, tick_every: Duration) {
        let lab = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                let r = tokio::select! {
                    () = lab.cancel.cancelled() => return,
                    r = lab.reconcile() => r,
                };
                match r {
                    Ok(()) => {
                        tracing::info!("reconciled state with the hypervisor");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %chain(&e), retry_in = ?wait, "reconcile failed");
                    }
                }
                tokio::select! {
                    () = lab.cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(60));
            }
            lab.spawn_ticker(tick_every);
        });
    }

    /// Resumes provisioning of a REQUESTED sandbox no task of this process owns.
    async fn resume(self: &Arc<Self>, vmid: Vmid) {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        match self.deps.store.get_sandbox(vmid).await {
            Ok(sb) if sb.state == SandboxState::Requested && !self.is_inflight(vmid) => {
                self.note(&sb, "resuming provisioning after restart").await;
                self.spawn_provision(vmid, None);
            }
            _ => {}
        }
    }

    async fn clean_in_flight(
        self: &Arc<Self>,
        vmid: Vmid,
        listed: bool,
    ) -> Result<(), EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if self.is_inflight(vmid)
            || !matches!(sb.state, SandboxState::Provisioning | SandboxState::Booting)
        {
            return Ok(());
        }
        if listed {
            sb.vm_created = true;
        }
        if listed && self.keep_reported(&mut sb).await? {
            return Ok(());
        }
        let step = sb.state;
        crate::fail_point!("reconcile:teardown");
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
        if job.state == JobState::Running {
            let outcome = JobOutcome {
                failed_step: Some("restart".into()),
                error: Some(format!(
                    "agentlabd restarted while sandbox {vmid} was {step}; it was cleaned up"
                )),
                ..JobOutcome::default()
            };
            self.finish_job_by_daemon(&job_id, JobState::Failed, outcome)
                .await;
            return Ok(());
        }
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

    /// A BOOTING sandbox whose guest already reported (its job RUNNING or ended: the daemon
    /// died between the job's and the sandbox's update) is up: it is kept and moved to the
    /// state its job implies instead of being torn down. Called under the sandbox's lock.
    async fn keep_reported(&self, sb: &mut Sandbox) -> Result<bool, EngineError> {
        let Some(job_id) = sb.job.clone() else {
            return Ok(false);
        };
        if sb.state != SandboxState::Booting {
            return Ok(false);
        }
        let job = self.deps.store.get_job(&job_id).await?;
        let to = match job.state {
            JobState::Queued => return Ok(false),
            JobState::Running => SandboxState::Running,
            JobState::Completed => SandboxState::Completed,
            JobState::Timeout => SandboxState::Timeout,
            JobState::Failed | JobState::Cancelled => SandboxState::Failed,
        };
        self.note(
            sb,
            &format!(
                "agentlabd restarted while BOOTING, but job {job_id} is {}; sandbox kept",
                job.state
            ),
        )
        .await;
        self.transition(sb, SandboxState::Ready, "guest reported before the restart")
            .await?;
        if to == SandboxState::Failed {
            sb.last_error = Some(format!("job {job_id} ended {}", job.state));
        }
        self.transition(sb, to, "guest reported before the restart")
            .await?;
        Ok(true)
    }

    async fn mark_lost(&self, vmid: Vmid) -> Result<(), EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if !sb.vm_created || sb.state.is_terminal() || sb.state == SandboxState::Destroying {
            return Ok(());
        }
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

    pub(crate) async fn note(&self, sb: &Sandbox, msg: &str) {
        self.event(
            NewEvent::new(self.now(), EventKind::Reconciled, msg.to_owned())
                .sandbox(sb.vmid)
                .job(sb.job.clone()),
        )
        .await;
    }
}
