//! The guest's first contact: the bootstrap fetch (token use and runner token in one store
//! transaction), its refusals (each an event; a used or expired token fails the sandbox's
//! QUEUED job at once), the runner's give-up, the boot deadline of a job whose sandbox never
//! fetched, and runner-token checks (revoked once the job has ended).

use std::net::IpAddr;

use crate::engine::error::{EngineError, chain};
use crate::engine::jobs::{BootstrapGrant, RUNNER_MARGIN_SECS};
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};
use crate::ids::{JobId, Vmid};
use crate::model::{Job, JobOutcome, Sandbox};
use crate::secrets::SecretBundle;
use crate::state::{JobState, SandboxState};
use crate::store::{JobFilter, RunnerTokenIssue, StateStoreError, TokenCheck};
use crate::token::{generate_token, hash_token, token_matches};

/// Longest abandon reason kept (characters).
const REASON_MAX: usize = 500;

impl Lab {
    /// Uses a bootstrap token and hands out the job of `vmid`, without an address check (for
    /// in-process callers). Network servers use [`Lab::bootstrap_fetch_from`].
    pub async fn bootstrap_fetch(
        &self,
        vmid: Vmid,
        token: &str,
    ) -> Result<BootstrapGrant, EngineError> {
        self.bootstrap_fetch_from(vmid, token, None).await
    }

    /// Uses a bootstrap token presented from `peer` and hands out the job of `vmid`. The
    /// token's use and the new runner token are stored in one transaction. Every refusal is
    /// [`EngineError::Forbidden`] and a `bootstrap_refused` event on the sandbox; a used or
    /// expired token also fails the sandbox's QUEUED job at once, naming the reason. With
    /// [`crate::engine::LabSettings::bind_bootstrap_address`], `peer` must be the sandbox's
    /// address.
    pub async fn bootstrap_fetch_from(
        &self,
        vmid: Vmid,
        token: &str,
        peer: Option<IpAddr>,
    ) -> Result<BootstrapGrant, EngineError> {
        let sb = self.token_sandbox(vmid, peer).await?;
        let runner_token = generate_token();
        let issue = sb.job.clone().map(|job| RunnerTokenIssue {
            job,
            hash: hash_token(runner_token.expose()),
        });
        let check = match self
            .deps
            .store
            .redeem_bootstrap_token(vmid, token, self.now(), issue.as_ref())
            .await
        {
            Ok(c) => c,
            Err(StateStoreError::Conflict { id, actual, .. }) => {
                return Err(EngineError::InvalidState(format!("Job {id} is {actual}")));
            }
            Err(e) => return Err(e.into()),
        };
        if check != TokenCheck::Accepted {
            self.refused(&sb, check.as_str(), peer).await;
            return Err(EngineError::Forbidden);
        }
        crate::fail_point!("job:bootstrap_fetch");
        let Some(job_id) = sb.job.clone() else {
            return Err(EngineError::NoJob(vmid.to_string()));
        };
        let job = self.deps.store.get_job(&job_id).await?;
        let profile = self.profile_of(sb.vmid, &job.profile)?;
        let secrets = match &profile.secrets_bundle {
            Some(name) => match self.deps.secrets.load(name).await {
                Ok(b) => b,
                Err(e) => {
                    let e = EngineError::Secrets(e);
                    self.fail_unstarted_job(&sb, "bootstrap:secrets", chain(&e))
                        .await;
                    return Err(e);
                }
            },
            None => SecretBundle::default(),
        };
        let left = job.deadline.map_or(3600, |d| {
            (d - self.now()).num_seconds() - RUNNER_MARGIN_SECS
        });
        self.event(
            NewEvent::new(self.now(), EventKind::JobStep, "bootstrap fetched by guest")
                .sandbox(vmid)
                .job(Some(job_id)),
        )
        .await;
        Ok(BootstrapGrant {
            job,
            profile: crate::profile::Profile::clone(&profile),
            secrets,
            runner_token,
            timeout_secs: u64::try_from(left.max(1)).unwrap_or(1),
        })
    }

    /// The runner gave up fetching its payload and says so with its (still valid) bootstrap
    /// token: the token is used up, a `bootstrap_abandoned` event records `reason`, and the
    /// sandbox's QUEUED job fails at once. Refusals are handled as in
    /// [`Lab::bootstrap_fetch_from`].
    pub async fn bootstrap_abandon(
        &self,
        vmid: Vmid,
        token: &str,
        reason: &str,
        peer: Option<IpAddr>,
    ) -> Result<(), EngineError> {
        let sb = self.token_sandbox(vmid, peer).await?;
        let check = self
            .deps
            .store
            .redeem_bootstrap_token(vmid, token, self.now(), None)
            .await?;
        if check != TokenCheck::Accepted {
            self.refused(&sb, check.as_str(), peer).await;
            return Err(EngineError::Forbidden);
        }
        // The reason comes from the guest: bounded, one line, without the token.
        let mut reason: String = crate::redact::Redactor::new(&[token])
            .redact(reason)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(REASON_MAX)
            .collect();
        if reason.trim().is_empty() {
            reason = "no reason given".into();
        }
        tracing::warn!(sandbox = %vmid, reason = %reason, "runner gave up its bootstrap fetch");
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::BootstrapAbandoned,
                format!("runner gave up its bootstrap fetch: {reason}"),
            )
            .sandbox(vmid)
            .job(sb.job.clone())
            .payload(serde_json::json!({"reason": reason})),
        )
        .await;
        self.fail_unstarted_job(
            &sb,
            "bootstrap",
            format!("runner gave up its bootstrap fetch: {reason}"),
        )
        .await;
        Ok(())
    }

    /// The sandbox a token is presented for, checking the source address when bound.
    async fn token_sandbox(
        &self,
        vmid: Vmid,
        peer: Option<IpAddr>,
    ) -> Result<Sandbox, EngineError> {
        let Ok(sb) = self.deps.store.get_sandbox(vmid).await else {
            tracing::warn!(sandbox = %vmid, peer = ?peer, "bootstrap token for an unknown sandbox refused");
            return Err(EngineError::Forbidden);
        };
        if let (true, Some(peer), Some(ip)) = (self.settings.bind_bootstrap_address, peer, sb.ip)
            && peer.to_canonical() != ip
        {
            self.refused(&sb, "wrong_address", Some(peer)).await;
            return Err(EngineError::Forbidden);
        }
        Ok(sb)
    }

    /// Records a refusal; a used or expired token also fails the QUEUED job.
    async fn refused(&self, sb: &Sandbox, reason: &str, peer: Option<IpAddr>) {
        tracing::warn!(sandbox = %sb.vmid, reason, peer = ?peer, "bootstrap token refused");
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::BootstrapRefused,
                format!("bootstrap token refused ({reason})"),
            )
            .sandbox(sb.vmid)
            .job(sb.job.clone())
            .payload(serde_json::json!({"reason": reason, "peer": peer})),
        )
        .await;
        if matches!(reason, "used" | "expired") {
            self.fail_unstarted_job(
                sb,
                "bootstrap",
                format!("bootstrap token refused ({reason}): the runner cannot fetch its job"),
            )
            .await;
        }
    }

    /// Fails the sandbox's job if it is still QUEUED, and the sandbox with it (an ephemeral
    /// one is then destroyed by the next tick).
    async fn fail_unstarted_job(&self, sb: &Sandbox, step: &str, cause: String) {
        let Some(job_id) = &sb.job else { return };
        match self.deps.store.get_job(job_id).await {
            Ok(job) if job.state == JobState::Queued => {}
            _ => return,
        }
        let outcome = JobOutcome {
            failed_step: Some(step.to_owned()),
            error: Some(cause),
            ..JobOutcome::default()
        };
        self.finish_job_by_daemon(job_id, JobState::Failed, outcome)
            .await;
        self.sandbox_to(
            sb.vmid,
            &[SandboxState::Booting, SandboxState::Ready],
            SandboxState::Failed,
        )
        .await;
    }

    /// Fails QUEUED jobs whose sandbox never fetched its bootstrap and whose tokens have all
    /// expired unused (the boot deadline), naming that cause.
    pub(crate) async fn fail_unfetched_jobs(&self) -> Result<(), EngineError> {
        let now = self.now();
        let queued = self
            .deps
            .store
            .list_jobs(&JobFilter {
                states: vec![JobState::Queued],
                ..JobFilter::default()
            })
            .await?;
        for job in queued.into_iter().filter(|j| j.runner_token_hash.is_none()) {
            let Some(vmid) = job.sandbox else { continue };
            let tokens = self.deps.store.bootstrap_tokens(vmid).await?;
            let Some(last) = tokens.iter().map(|t| t.expires_at).max() else {
                continue;
            };
            if tokens.iter().any(|t| t.consumed) || last > now {
                continue;
            }
            let Ok(sb) = self.deps.store.get_sandbox(vmid).await else {
                continue;
            };
            self.event(
                NewEvent::new(
                    now,
                    EventKind::BootstrapRefused,
                    format!("bootstrap never fetched (token expired at {last})"),
                )
                .sandbox(vmid)
                .job(Some(job.id.clone()))
                .payload(serde_json::json!({"reason": "never_fetched", "expired_at": last})),
            )
            .await;
            self.fail_unstarted_job(
                &sb,
                "bootstrap",
                format!("bootstrap never fetched: the guest did not fetch its job before the token expired at {last}"),
            )
            .await;
        }
        Ok(())
    }

    /// Checks a runner token against the job's stored hash (constant time). The token is
    /// revoked once the job has ended (report, deadline, cancel or sandbox destroy):
    /// [`EngineError::JobEnded`].
    pub async fn authorize_runner(&self, job: &JobId, token: &str) -> Result<Job, EngineError> {
        let job = self
            .deps
            .store
            .get_job(job)
            .await
            .map_err(|_| EngineError::Forbidden)?;
        match &job.runner_token_hash {
            Some(h) if token_matches(token, h) => {}
            _ => return Err(EngineError::Forbidden),
        }
        if job.state.is_terminal() {
            tracing::warn!(job = %job.id, state = %job.state, "runner call after the job ended refused");
            return Err(EngineError::JobEnded(format!(
                "Job {} ended ({}); its runner token is revoked",
                job.id, job.state
            )));
        }
        Ok(job)
    }
}
