//! Jobs: creation, the guest-facing methods (bootstrap, status, logs, artifacts) and ends.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::after_report::AfterReport;
use crate::engine::error::EngineError;
use crate::engine::job_events::{finished_payload, summary};
use crate::engine::lab::Lab;
use crate::engine::provision::SandboxRequest;
use crate::event::{EventKind, NewEvent};
use crate::ids::{JobId, Vmid};
use crate::model::{Artifact, Job, JobOutcome};
use crate::profile::{Profile, ResultContext, resolve_result};
use crate::secrets::{SecretBundle, SecretValue};
use crate::state::{JobState, SandboxState};
use crate::store::JobFilter;

/// A job request (engine-level form of the API request).
#[derive(Debug, Clone, Default)]
pub struct JobRequest {
    /// Repository URL.
    pub repo: String,
    /// Ref to check out.
    pub git_ref: Option<String>,
    /// Task text.
    pub task: String,
    /// Profile name.
    pub profile: String,
    /// Agent command or preset override.
    pub agent: Option<String>,
    /// Lease override in minutes.
    pub ttl_minutes: Option<u32>,
    /// Keepalive override.
    pub keepalive: Option<bool>,
    /// Workspace id or name.
    pub workspace: Option<String>,
    /// Per-job override of the profile's `result:`.
    pub result: Option<crate::profile::ResultOverride>,
}

/// What a successful bootstrap fetch hands to the guest listener.
#[derive(Debug)]
pub struct BootstrapGrant {
    /// The job.
    pub job: Job,
    /// Its profile.
    pub profile: Profile,
    /// The profile's secret bundle (empty when the profile names none).
    pub secrets: SecretBundle,
    /// The per-job runner token (only its hash is stored).
    pub runner_token: SecretValue,
    /// Seconds the agent may run before the runner must stop it.
    pub timeout_secs: u64,
}

/// A status report from the guest (engine-level form).
#[derive(Debug, Clone)]
pub struct GuestReport {
    /// RUNNING or a final state.
    pub state: JobState,
    /// Step name for RUNNING reports.
    pub step: Option<String>,
    /// Outcome for final reports.
    pub outcome: JobOutcome,
    /// What the runner pushed back to git (final reports).
    pub pushed: Option<crate::model::JobPushed>,
}

/// Seconds kept between the runner's own timeout and the daemon's deadline.
pub(crate) const RUNNER_MARGIN_SECS: i64 = 20;

impl Lab {
    /// Creates a job (QUEUED) and its sandbox; the job ends from the guest's final report or
    /// the deadline.
    pub async fn run_job(self: &Arc<Self>, req: JobRequest) -> Result<Job, EngineError> {
        if req.repo.trim().is_empty() {
            return Err(EngineError::Invalid("repo must not be empty".into()));
        }
        if req.task.trim().is_empty() {
            return Err(EngineError::Invalid("task must not be empty".into()));
        }
        let profile = self.profile(&req.profile)?;
        let ttl = req
            .ttl_minutes
            .unwrap_or(profile.behavior.ttl_minutes_default);
        if ttl < 2 {
            return Err(EngineError::Invalid(
                "ttl_minutes must be at least 2 for a job".into(),
            ));
        }
        // The profile's job timeout, but always before a (possibly shorter) lease ends.
        let timeout = match profile.behavior.job_timeout_minutes {
            Some(t) => t,
            None => ttl.saturating_sub(5),
        }
        .clamp(1, ttl - 1);
        // An early answer without a job record; creation checks again under its lock.
        self.check_sandbox_quota(&profile.name, None).await?;
        let now = self.now();
        let id = JobId::generate();
        let git_ref = req.git_ref.clone().filter(|r| !r.is_empty());
        let rctx = ResultContext {
            job: id.as_str(),
            profile: &profile.name,
            repo: req.repo.trim(),
            git_ref: git_ref.as_deref(),
        };
        let result = resolve_result(&profile.result, req.result.as_ref(), rctx)
            .map_err(EngineError::Invalid)?;
        let mut job = Job {
            id,
            repo: req.repo.trim().to_owned(),
            git_ref,
            task: req.task.clone(),
            profile: profile.name.clone(),
            agent: req.agent.clone().filter(|a| !a.is_empty()),
            state: JobState::Queued,
            sandbox: None,
            keepalive: req.keepalive.unwrap_or(profile.behavior.keepalive_default),
            ttl_minutes: ttl,
            workspace: None,
            deadline: Some(now + chrono::Duration::minutes(i64::from(timeout))),
            runner_token_hash: None,
            step: None,
            outcome: None,
            created_at: now,
            updated_at: now,
            ended_at: None,
            result,
            pushed: None,
        };
        self.deps.store.insert_job(&job).await?;
        self.event(
            NewEvent::new(
                now,
                EventKind::JobQueued,
                format!("job queued ({} on {})", job.profile, job.repo),
            )
            .job(Some(job.id.clone()))
            .payload(serde_json::json!({
                "deadline": job.deadline,
                "timeout_minutes": timeout,
                "result": job.result,
            })),
        )
        .await;
        let sreq = SandboxRequest {
            profile: job.profile.clone(),
            name: None,
            ttl_minutes: Some(ttl),
            keepalive: Some(job.keepalive),
            workspace: req.workspace.clone(),
            job: Some(job.id.clone()),
        };
        match self.create_sandbox(sreq).await {
            Ok(sb) => {
                job.sandbox = Some(sb.vmid);
                job.workspace = sb.workspace.clone();
                job.updated_at = self.now();
                self.deps.store.update_job(&job, job.state).await?;
                Ok(self.deps.store.get_job(&job.id).await?)
            }
            Err(e) => {
                let outcome = JobOutcome {
                    failed_step: Some("provision:request".into()),
                    error: Some(crate::engine::error::chain(&e)),
                    ..JobOutcome::default()
                };
                self.finish_job_by_daemon(&job.id, JobState::Failed, outcome)
                    .await;
                Err(e)
            }
        }
    }

    /// Lists jobs.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, EngineError> {
        Ok(self.deps.store.list_jobs(filter).await?)
    }

    /// One page of jobs, newest first, with the next page's cursor.
    pub async fn list_jobs_page(
        &self,
        filter: &JobFilter,
    ) -> Result<crate::store::JobPage, EngineError> {
        Ok(self.deps.store.list_jobs_page(filter).await?)
    }

    /// Sandboxes and jobs per state (kept by the store on every write).
    pub async fn counts(&self) -> Result<crate::store::StateCounts, EngineError> {
        Ok(self.deps.store.counts().await?)
    }

    /// Cancels a job and destroys its sandbox unless it is kept alive.
    pub async fn cancel_job(self: &Arc<Self>, id: &JobId) -> Result<Job, EngineError> {
        let job = self.deps.store.get_job(id).await?;
        if job.state.is_terminal() {
            return Err(EngineError::InvalidState(format!(
                "Job {id} already ended ({})",
                job.state
            )));
        }
        let outcome = JobOutcome {
            error: Some("cancelled by request".into()),
            ..JobOutcome::default()
        };
        self.finish_job_by_daemon(id, JobState::Cancelled, outcome)
            .await;
        if let Some(vmid) = job.sandbox
            && !job.keepalive
        {
            self.destroy_with(vmid, Duration::ZERO, "job cancelled")
                .await?;
        }
        Ok(self.deps.store.get_job(id).await?)
    }

    /// Applies a guest status report: RUNNING steps, or the final outcome. The sandbox of a
    /// finished job that is not kept alive is destroyed right away; a server answering the
    /// guest over a connection uses [`Lab::report_status_deferred`] instead.
    pub async fn report_status(
        self: &Arc<Self>,
        id: &JobId,
        token: &str,
        report: GuestReport,
    ) -> Result<Job, EngineError> {
        let (job, after) = self.report_status_deferred(id, token, report).await?;
        drop(after);
        Ok(job)
    }

    /// [`Lab::report_status`], but the ephemeral destroy a final report triggers begins only
    /// when the returned [`AfterReport`] is dropped: a server keeps it until its answer to the
    /// guest is written, so teardown never races the runner's read of that answer. If it is
    /// never dropped in a runtime (or the process dies), `tick` destroys the sandbox anyway.
    pub async fn report_status_deferred(
        self: &Arc<Self>,
        id: &JobId,
        token: &str,
        report: GuestReport,
    ) -> Result<(Job, Option<AfterReport>), EngineError> {
        let mut job = self.authorize_runner(id, token).await?;
        crate::fail_point!(if report.state.is_terminal() {
            "job:finish"
        } else {
            "job:status"
        });
        let vmid = job.sandbox;
        if report.state == JobState::Running {
            let step = report.step.clone().unwrap_or_else(|| "running".into());
            if job.state == JobState::Queued {
                self.job_transition(&mut job, JobState::Running).await?;
                if let Some(v) = vmid {
                    self.sandbox_to(v, &[SandboxState::Booting], SandboxState::Ready)
                        .await;
                    self.sandbox_to(v, &[SandboxState::Ready], SandboxState::Running)
                        .await;
                }
            }
            if !job.state.is_terminal() {
                job.step = Some(step.clone());
                job.updated_at = self.now();
                self.deps.store.update_job(&job, job.state).await?;
            }
            self.event(
                NewEvent::new(self.now(), EventKind::JobStep, step)
                    .job(Some(id.clone()))
                    .payload(serde_json::json!({"vmid": vmid})),
            )
            .await;
            return Ok((job, None));
        }
        if !report.state.is_terminal() || report.state == JobState::Cancelled {
            return Err(EngineError::Invalid(format!(
                "A guest cannot report {}",
                report.state
            )));
        }
        // `authorize_runner` refused an ended job, so this is the one final report.
        job.outcome = Some(report.outcome.clone());
        job.pushed = report.pushed.clone();
        self.job_transition(&mut job, report.state).await?;
        if let Some(v) = vmid {
            let to = match report.state {
                JobState::Completed => SandboxState::Completed,
                JobState::Timeout => SandboxState::Timeout,
                _ => SandboxState::Failed,
            };
            self.sandbox_to(v, &[SandboxState::Booting], SandboxState::Ready)
                .await;
            self.sandbox_to(v, &[SandboxState::Ready, SandboxState::Running], to)
                .await;
        }
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::JobFinished,
                format!("job {} ({})", job.state, summary(&report.outcome)),
            )
            .job(Some(id.clone()))
            .payload(finished_payload(&report)),
        )
        .await;
        let after = match (vmid, job.keepalive) {
            (Some(vmid), false) => Some(AfterReport {
                lab: Arc::clone(self),
                vmid,
            }),
            _ => None,
        };
        Ok((job, after))
    }

    /// Appends agent output lines to the job's log (bounded per job).
    pub async fn append_logs(
        &self,
        id: &JobId,
        token: &str,
        lines: Vec<String>,
    ) -> Result<(), EngineError> {
        let job = self.authorize_runner(id, token).await?;
        crate::fail_point!("job:logs");
        if let Some(vmid) = job.sandbox.filter(|_| !lines.is_empty()) {
            self.activity.touch(vmid, self.now());
        }
        for line in lines {
            self.deps
                .store
                .append_event(
                    NewEvent::new(self.now(), EventKind::JobLog, line)
                        .job(Some(job.id.clone()))
                        .sandbox_opt(job.sandbox),
                )
                .await?;
        }
        self.deps
            .store
            .trim_job_logs(id, self.settings.job_log_max_lines)
            .await?;
        Ok(())
    }

    /// Records an artifact the daemon has stored and verified.
    pub async fn record_artifact(&self, artifact: &Artifact) -> Result<(), EngineError> {
        crate::fail_point!("artifact:record");
        self.deps.store.put_artifact(artifact).await?;
        self.event(
            NewEvent::new(self.now(), EventKind::ArtifactStored, format!("artifact {} ({} bytes)", artifact.name, artifact.size))
                .job(Some(artifact.job.clone()))
                .payload(serde_json::json!({"name": artifact.name, "size": artifact.size, "sha256": artifact.sha256})),
        )
        .await;
        Ok(())
    }

    /// Ends a job on the daemon's side (deadline, failure, cancel) if it has not ended.
    pub(crate) async fn finish_job_by_daemon(
        &self,
        id: &JobId,
        state: JobState,
        outcome: JobOutcome,
    ) {
        let Ok(mut job) = self.deps.store.get_job(id).await else {
            return;
        };
        if job.state.is_terminal() {
            return;
        }
        job.outcome = Some(outcome.clone());
        if let Err(e) = self.job_transition(&mut job, state).await {
            tracing::warn!(job = %id, error = %crate::engine::error::chain(&e), "could not end job");
            return;
        }
        let kind = if state == JobState::Timeout {
            EventKind::JobTimeout
        } else {
            EventKind::JobFinished
        };
        self.event(
            NewEvent::new(
                self.now(),
                kind,
                format!("job {state} ({})", summary(&outcome)),
            )
            .job(Some(id.clone()))
            .sandbox_opt(job.sandbox)
            .payload(serde_json::to_value(&outcome).unwrap_or_default()),
        )
        .await;
    }

    /// Moves sandbox `vmid` to `to` if it is in one of `from` (best effort, under its lock).
    pub(crate) async fn sandbox_to(&self, vmid: Vmid, from: &[SandboxState], to: SandboxState) {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        if let Ok(mut sb) = self.deps.store.get_sandbox(vmid).await
            && from.contains(&sb.state)
            && let Err(e) = self.transition(&mut sb, to, "").await
        {
            tracing::warn!(sandbox = %vmid, error = %crate::engine::error::chain(&e), "state change lost");
        }
    }
}
