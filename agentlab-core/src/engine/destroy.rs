//! Destruction that finishes.
//!
//! A destroy first persists its intent: the sandbox moves to DESTROYING (its unfinished job
//! becomes CANCELLED) before anything is removed. Then attempts run [`Lab::teardown_report`]
//! until nothing AgentLab created is left, and only then the sandbox becomes DESTROYED. Every
//! attempt records a `destroy_attempt` event (attempt number, result, error, when the next
//! one is due) and a failed one stores its cause in `last_error`. Failed attempts are retried
//! by [`Lab::tick`] with exponential backoff (`destroy_retry_min` doubling up to
//! `destroy_retry_max`); a restarted daemon finds DESTROYING in the store and its first tick
//! retries at once. The first attempt uses the requested grace period; retries stop forcibly.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};
use crate::ids::Vmid;
use crate::model::{JobOutcome, Sandbox};
use crate::state::{JobState, SandboxState};
use crate::time::Timestamp;

/// Progress of a destroy in this process.
#[derive(Debug, Clone)]
pub(crate) struct DestroyRetry {
    /// Attempts made so far by this process.
    attempts: u32,
    /// When the next attempt is due.
    next_at: Timestamp,
    /// Grace period for the next attempt's stop.
    grace: Duration,
}

impl Lab {
    /// Destroys a sandbox: DESTROYING (persisted; a running job is cancelled), then one
    /// attempt to remove everything AgentLab created. Returns the sandbox DESTROYED, or still
    /// DESTROYING with `last_error` when the attempt failed: the daemon retries it with
    /// backoff (and after a restart) until it is DESTROYED.
    pub async fn destroy_sandbox(self: &Arc<Self>, vmid: Vmid) -> Result<Sandbox, EngineError> {
        self.destroy_with(vmid, self.settings.shutdown_grace, "destroyed by request")
            .await
    }

    /// [`Lab::destroy_sandbox`] with an explicit grace period and reason.
    pub(crate) async fn destroy_with(
        &self,
        vmid: Vmid,
        grace: Duration,
        why: &str,
    ) -> Result<Sandbox, EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        match sb.state {
            SandboxState::Destroyed => return Ok(sb),
            // Asked again while retries are pending: try now.
            SandboxState::Destroying => {}
            _ => self.begin_destroy(&mut sb, why).await?,
        }
        self.destroy_attempt(&mut sb, grace).await?;
        Ok(sb)
    }

    /// Persists the intent (DESTROYING) and schedules the first attempt for the next tick.
    pub(crate) async fn schedule_destroy(
        &self,
        vmid: Vmid,
        grace: Duration,
        why: &str,
    ) -> Result<(), EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if sb.state.is_terminal() || sb.state == SandboxState::Destroying {
            return Ok(());
        }
        self.begin_destroy(&mut sb, why).await?;
        self.retries().insert(
            vmid,
            DestroyRetry {
                attempts: 0,
                next_at: self.now(),
                grace,
            },
        );
        Ok(())
    }

    async fn begin_destroy(&self, sb: &mut Sandbox, why: &str) -> Result<(), EngineError> {
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::SandboxAction,
                format!("destroy: {why}"),
            )
            .sandbox(sb.vmid)
            .job(sb.job.clone()),
        )
        .await;
        self.transition(sb, SandboxState::Destroying, why).await?;
        if let Some(job) = sb.job.clone() {
            let outcome = JobOutcome {
                error: Some(format!("sandbox destroyed: {why}")),
                ..JobOutcome::default()
            };
            self.finish_job_by_daemon(&job, JobState::Cancelled, outcome)
                .await;
        }
        crate::fail_point!("destroy:begin");
        Ok(())
    }

    /// One attempt on a DESTROYING sandbox; the caller holds its lock.
    async fn destroy_attempt(&self, sb: &mut Sandbox, grace: Duration) -> Result<(), EngineError> {
        let vmid = sb.vmid;
        let attempt = self
            .retries()
            .get(&vmid)
            .map_or(1, |r| r.attempts.saturating_add(1));
        let left = self.teardown_report(sb, grace).await;
        if left.is_empty() {
            self.retries().remove(&vmid);
            self.activity.forget(vmid);
            self.attempt_event(sb, attempt, None, None).await;
            crate::fail_point!("destroy:done");
            return self
                .transition(sb, SandboxState::Destroyed, "destroyed")
                .await;
        }
        let error = left.join("; ");
        let wait = self.backoff(attempt);
        self.retries().insert(
            vmid,
            DestroyRetry {
                attempts: attempt,
                next_at: self.now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                grace: Duration::ZERO,
            },
        );
        sb.last_error = Some(format!(
            "destroy attempt {attempt} failed: {error}; retrying in {}s",
            wait.as_secs()
        ));
        self.save(sb).await?;
        self.attempt_event(sb, attempt, Some(&error), Some(wait))
            .await;
        Ok(())
    }

    /// Retries every DESTROYING sandbox whose next attempt is due (all of them at once: one
    /// slow stop does not hold up the others).
    pub(crate) async fn retry_destroys(&self, now: Timestamp) -> Result<(), EngineError> {
        let filter = crate::store::SandboxFilter {
            states: vec![SandboxState::Destroying],
            ..crate::store::SandboxFilter::default()
        };
        let live = self.deps.store.list_sandboxes(&filter).await?;
        let due: Vec<Vmid> = live
            .iter()
            .filter(|s| s.state == SandboxState::Destroying && self.destroy_due(s.vmid, now))
            .map(|s| s.vmid)
            .collect();
        futures::future::join_all(due.into_iter().map(|v| self.retry_destroy(v, now))).await;
        Ok(())
    }

    async fn retry_destroy(&self, vmid: Vmid, now: Timestamp) {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        // Someone else (another tick, a request) may have made the attempt meanwhile.
        if !self.destroy_due(vmid, now) {
            return;
        }
        let mut sb = match self.deps.store.get_sandbox(vmid).await {
            Ok(sb) if sb.state == SandboxState::Destroying => sb,
            Ok(_) => {
                self.retries().remove(&vmid);
                return;
            }
            Err(e) => {
                tracing::warn!(sandbox = %vmid, error = %chain(&e), "cannot read sandbox to destroy");
                return;
            }
        };
        let grace = self
            .retries()
            .get(&vmid)
            .map_or(Duration::ZERO, |r| r.grace);
        if let Err(e) = self.destroy_attempt(&mut sb, grace).await {
            tracing::warn!(sandbox = %vmid, error = %chain(&e), "destroy attempt not recorded");
        }
    }

    fn destroy_due(&self, vmid: Vmid, now: Timestamp) -> bool {
        self.retries().get(&vmid).is_none_or(|r| r.next_at <= now)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let min = self.settings.destroy_retry_min;
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        min.saturating_mul(factor)
            .min(self.settings.destroy_retry_max)
    }

    async fn attempt_event(
        &self,
        sb: &Sandbox,
        attempt: u32,
        error: Option<&str>,
        retry_in: Option<Duration>,
    ) {
        let msg = match (error, retry_in) {
            (None, _) => format!("destroy attempt {attempt} ok"),
            (Some(e), Some(w)) => format!(
                "destroy attempt {attempt} failed: {e}; retrying in {}s",
                w.as_secs()
            ),
            (Some(e), None) => format!("destroy attempt {attempt} failed: {e}"),
        };
        self.event(
            NewEvent::new(self.now(), EventKind::DestroyAttempt, msg)
                .sandbox(sb.vmid)
                .job(sb.job.clone())
                .payload(serde_json::json!({
                    "attempt": attempt,
                    "ok": error.is_none(),
                    "error": error,
                    "retry_in_secs": retry_in.map(|w| w.as_secs()),
                })),
        )
        .await;
    }

    fn retries(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Vmid, DestroyRetry>> {
        self.destroys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
