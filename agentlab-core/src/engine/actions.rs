//! User actions on a sandbox: stop, start, lease renewal, and read access.

use std::sync::Arc;

use crate::engine::error::EngineError;
use crate::engine::lab::Lab;
use crate::event::{Event, EventKind, EventQuery, NewEvent};
use crate::hypervisor::PowerState;
use crate::ids::Vmid;
use crate::model::{JobOutcome, Sandbox};
use crate::state::{JobState, SandboxState};
use crate::store::SandboxFilter;

impl Lab {
    /// Lists sandboxes.
    pub async fn list_sandboxes(
        &self,
        filter: &SandboxFilter,
    ) -> Result<Vec<Sandbox>, EngineError> {
        Ok(self.deps.store.list_sandboxes(filter).await?)
    }

    /// Reads events.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, EngineError> {
        Ok(self.deps.store.events(query).await?)
    }

    /// Powers a sandbox off (graceful, then forced). A running job is cancelled.
    pub async fn stop_sandbox(self: &Arc<Self>, vmid: Vmid) -> Result<Sandbox, EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if sb.state == SandboxState::Stopped {
            return Ok(sb);
        }
        if !sb.vm_created || !sb.state.can_transition_to(SandboxState::Stopped) {
            return Err(EngineError::InvalidState(format!(
                "Sandbox {vmid} is {} and cannot be stopped",
                sb.state
            )));
        }
        self.deps
            .hypervisor
            .stop(vmid, self.settings.shutdown_grace)
            .await
            .map_err(|source| EngineError::Hypervisor {
                call: "stop",
                source,
            })?;
        self.action_event(&sb, "stopped").await;
        self.transition(&mut sb, SandboxState::Stopped, "stopped")
            .await?;
        if let Some(job) = sb.job.clone() {
            let outcome = JobOutcome {
                error: Some("sandbox stopped".into()),
                ..JobOutcome::default()
            };
            self.finish_job_by_daemon(&job, JobState::Cancelled, outcome)
                .await;
        }
        Ok(sb)
    }

    /// Powers a stopped sandbox on; it goes BOOTING, then READY in the background. On a
    /// finished keepalive sandbox whose VM still runs this is a no-op.
    pub async fn start_sandbox(self: &Arc<Self>, vmid: Vmid) -> Result<Sandbox, EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if matches!(
            sb.state,
            SandboxState::Lost | SandboxState::Destroying | SandboxState::Destroyed
        ) {
            return Err(EngineError::InvalidState(format!(
                "Sandbox {vmid} is {} and cannot be started",
                sb.state
            )));
        }
        if !sb.vm_created {
            return Err(EngineError::InvalidState(format!(
                "Sandbox {vmid} is {} and has no VM",
                sb.state
            )));
        }
        let power =
            self.deps
                .hypervisor
                .status(vmid)
                .await
                .map_err(|source| EngineError::Hypervisor {
                    call: "status",
                    source,
                })?;
        match (sb.state, power) {
            (SandboxState::Stopped, _) => {}
            (s, PowerState::Running) if s != SandboxState::Suspended => return Ok(sb),
            (s, _) if s.can_transition_to(SandboxState::Stopped) => {
                self.transition(&mut sb, SandboxState::Stopped, "VM found powered off")
                    .await?;
            }
            (s, _) => {
                return Err(EngineError::InvalidState(format!(
                    "Sandbox {vmid} is {s} and cannot be started"
                )));
            }
        }
        self.deps
            .hypervisor
            .start(vmid, None)
            .await
            .map_err(|source| EngineError::Hypervisor {
                call: "start",
                source,
            })?;
        self.action_event(&sb, "started").await;
        self.transition(&mut sb, SandboxState::Booting, "started")
            .await?;
        let lab = Arc::clone(self);
        let lock = Arc::clone(&lock);
        self.set_inflight(vmid, true);
        self.tasks.spawn(async move {
            if let Err(Some(f)) = lab.boot_wait(&lock, vmid).await {
                lab.fail_provisioning(vmid, f).await;
            }
            lab.set_inflight(vmid, false);
        });
        Ok(sb)
    }

    /// Extends the lease to now + `ttl_minutes` (the lease's own length when `None`).
    pub async fn renew_lease(
        &self,
        vmid: Vmid,
        ttl_minutes: Option<u32>,
    ) -> Result<Sandbox, EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if sb.state.is_terminal()
            || matches!(sb.state, SandboxState::Destroying | SandboxState::Lost)
        {
            return Err(EngineError::InvalidState(format!(
                "Sandbox {vmid} is {}",
                sb.state
            )));
        }
        if !sb.lease.renewable {
            return Err(EngineError::InvalidState(format!(
                "Sandbox {vmid} has a non-renewable lease"
            )));
        }
        let ttl = ttl_minutes.unwrap_or(sb.lease.ttl_minutes);
        if ttl == 0 {
            return Err(EngineError::Invalid(
                "ttl_minutes must be at least 1".into(),
            ));
        }
        sb.lease.expires_at = self.now() + chrono::Duration::minutes(i64::from(ttl));
        sb.lease.ttl_minutes = ttl;
        self.save(&mut sb).await?;
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::LeaseRenewed,
                format!("lease renewed until {}", sb.lease.expires_at),
            )
            .sandbox(vmid)
            .job(sb.job.clone())
            .payload(serde_json::json!({"expires_at": sb.lease.expires_at, "ttl_minutes": ttl})),
        )
        .await;
        Ok(sb)
    }

    async fn action_event(&self, sb: &Sandbox, what: &str) {
        self.event(
            NewEvent::new(self.now(), EventKind::SandboxAction, what.to_owned())
                .sandbox(sb.vmid)
                .job(sb.job.clone()),
        )
        .await;
    }
}
