//! Time-driven work: job deadlines, lease expiry, destruction of finished ephemeral
//! sandboxes, retries of begun destroys (DESTROYING) and idle stop. [`Lab::tick`] reads the injected clock once and acts on what is
//! due; the daemon calls it periodically, tests call it after advancing a manual clock.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::activity::Idleness;
use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};
use crate::model::{JobOutcome, Sandbox};
use crate::state::{JobState, SandboxState};
use crate::store::{JobFilter, SandboxFilter};

impl Lab {
    /// Performs every time-driven action that is due now.
    pub async fn tick(self: &Arc<Self>) -> Result<(), EngineError> {
        let now = self.now();
        self.watch_nodes(now).await?;
        self.fail_unfetched_jobs().await?;
        let jobs = self
            .deps
            .store
            .list_jobs(&JobFilter {
                states: vec![JobState::Queued, JobState::Running],
                ..JobFilter::default()
            })
            .await?;
        for job in jobs
            .into_iter()
            .filter(|j| j.deadline.is_some_and(|d| d <= now))
        {
            let never_fetched = job.state == JobState::Queued && job.runner_token_hash.is_none();
            let outcome = JobOutcome {
                error: Some(if never_fetched {
                    "deadline passed; bootstrap never fetched by the guest".into()
                } else {
                    "deadline passed".into()
                }),
                failed_step: never_fetched.then(|| "bootstrap".into()),
                ..JobOutcome::default()
            };
            self.finish_job_by_daemon(&job.id, JobState::Timeout, outcome)
                .await;
            if let Some(v) = job.sandbox {
                let sb = self.deps.store.get_sandbox(v).await?;
                if matches!(
                    sb.state,
                    SandboxState::Requested | SandboxState::Provisioning
                ) {
                    self.report(
                        self.destroy_with(
                            v,
                            Duration::ZERO,
                            "job deadline passed during provisioning",
                        )
                        .await,
                    );
                } else {
                    self.sandbox_to(
                        v,
                        &[
                            SandboxState::Booting,
                            SandboxState::Ready,
                            SandboxState::Running,
                        ],
                        SandboxState::Timeout,
                    )
                    .await;
                }
            }
        }
        // Only rows that can still be due (an index range on `state`), never the whole table.
        let live = SandboxFilter {
            states: SandboxState::ALL
                .into_iter()
                .filter(|s| !s.is_terminal() && *s != SandboxState::Destroying)
                .collect(),
            ..SandboxFilter::default()
        };
        let live = self.deps.store.list_sandboxes(&live).await?;
        for sb in live {
            // LOST ones wait for their node (`watch_nodes`), DESTROYING ones for their retry.
            if sb.state.is_terminal()
                || matches!(sb.state, SandboxState::Destroying | SandboxState::Lost)
            {
                continue;
            }
            if sb.lease.expires_at <= now {
                self.event(
                    NewEvent::new(
                        now,
                        EventKind::LeaseExpired,
                        format!("lease expired at {}", sb.lease.expires_at),
                    )
                    .sandbox(sb.vmid)
                    .job(sb.job.clone()),
                )
                .await;
                self.report_scheduled(
                    self.schedule_destroy(sb.vmid, self.settings.shutdown_grace, "lease expired")
                        .await,
                );
            } else if self.finished_ephemeral_due(&sb, now).await {
                self.report_scheduled(
                    self.schedule_destroy(
                        sb.vmid,
                        self.settings.shutdown_grace,
                        "job finished (ephemeral)",
                    )
                    .await,
                );
            } else if self.failed_with_nothing_left_due(&sb, now) {
                self.report_scheduled(
                    self.schedule_destroy(
                        sb.vmid,
                        Duration::ZERO,
                        "failed with no VM left (kept for inspection until now)",
                    )
                    .await,
                );
            } else if let Some(since) = self.idle_due(&sb, now).await {
                self.idle_event(&sb, since, now).await;
                self.report(self.stop_sandbox(sb.vmid).await);
            }
        }
        // Begun destroys (just scheduled, failed earlier, or found after a restart).
        self.retry_destroys(now).await
    }

    fn report_scheduled(&self, r: Result<(), EngineError>) {
        if let Err(e) = r {
            tracing::warn!(error = %chain(&e), "could not begin a destroy; next tick retries");
        }
    }

    /// A job sandbox that is not kept alive and whose job ended (after the report grace when
    /// the deadline ended it and no final report came).
    async fn finished_ephemeral_due(&self, sb: &Sandbox, now: crate::time::Timestamp) -> bool {
        let Some(job_id) = &sb.job else { return false };
        if sb.lease.keepalive {
            return false;
        }
        let Ok(job) = self.deps.store.get_job(job_id).await else {
            return false;
        };
        let Some(ended) = job.ended_at.filter(|_| job.state.is_terminal()) else {
            return false;
        };
        let waiting_for_report = job.state == JobState::Timeout
            && job
                .outcome
                .as_ref()
                .is_none_or(|o| o.exit_code.is_none() && o.failed_step.is_none());
        let grace = if waiting_for_report {
            self.settings.report_grace
        } else {
            Duration::ZERO
        };
        ended + chrono::Duration::from_std(grace).unwrap_or_default() <= now
    }

    /// A FAILED sandbox whose VM is gone holds nothing but its lease: it is destroyed once
    /// `failed_keep` has passed since it failed, not when its lease ends hours later.
    fn failed_with_nothing_left_due(&self, sb: &Sandbox, now: crate::time::Timestamp) -> bool {
        sb.state == SandboxState::Failed
            && !sb.vm_created
            && sb.updated_at
                + chrono::Duration::from_std(self.settings.failed_keep).unwrap_or_default()
                <= now
    }

    /// When the sandbox has been idle for its profile's `idle_stop_minutes`: since when.
    /// Activity is measured, not inferred from state changes (see
    /// [`activity`](crate::engine::activity)).
    async fn idle_due(
        &self,
        sb: &Sandbox,
        now: crate::time::Timestamp,
    ) -> Option<crate::time::Timestamp> {
        let idle_states = [
            SandboxState::Ready,
            SandboxState::Completed,
            SandboxState::Failed,
            SandboxState::Timeout,
        ];
        if !sb.vm_created || !idle_states.contains(&sb.state) {
            return None;
        }
        let profile = self.sandbox_profile(sb.vmid, &sb.profile)?;
        let minutes = profile.behavior.idle_stop_minutes?;
        let cpu = self.sandbox_usage(sb.vmid).await.map(|u| u.cpu_seconds);
        match self.activity.idleness(
            sb.vmid,
            now,
            sb.updated_at,
            cpu,
            profile.behavior.idle_cpu_percent,
        ) {
            Idleness::Busy => None,
            Idleness::Since(since) => {
                (since + chrono::Duration::minutes(i64::from(minutes)) <= now).then_some(since)
            }
        }
    }

    /// Records why idle stop is about to stop a sandbox.
    async fn idle_event(
        &self,
        sb: &Sandbox,
        since: crate::time::Timestamp,
        now: crate::time::Timestamp,
    ) {
        let minutes = (now - since).num_minutes();
        self.event(
            NewEvent::new(
                now,
                EventKind::SandboxAction,
                format!(
                    "idle for {minutes} min (no open exec, shell, copy or forward stream, no \
                     log output, guest CPU below the profile's idle_cpu_percent); stopping"
                ),
            )
            .sandbox(sb.vmid)
            .payload(serde_json::json!({
                "action": "idle_stop",
                "idle_since": since,
                "idle_minutes": minutes,
            })),
        )
        .await;
    }

    fn report(&self, r: Result<Sandbox, EngineError>) {
        if let Err(e) = r {
            tracing::warn!(error = %chain(&e), "scheduled action failed; will retry");
        }
    }

    /// Runs [`Lab::tick`] every `every` until shutdown.
    pub fn spawn_ticker(self: &Arc<Self>, every: Duration) {
        let lab = Arc::clone(self);
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = lab.cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(e) = lab.tick().await {
                    tracing::warn!(error = %chain(&e), "tick failed");
                }
            }
        });
    }
}
