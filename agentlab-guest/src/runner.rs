//! [`run`]: one job from bootstrap file to final report.
//!
//! Order: prepare the secrets dir (refusing a non-tmpfs one before the token is spent) →
//! cached payload, or bootstrap file (moved into the secrets tmpfs and deleted) + fetch →
//! `RUNNING bootstrap` (bundle files) → `RUNNING clone` → `RUNNING agent` → (with a `result`
//! and a successful agent: `RUNNING push`, `RUNNING open_pr`) → commit and diff
//! stat → `report.json` → log flush → bundle and upload `artifacts.tar.gz` (retried with
//! backoff) → final report (`COMPLETED`/`FAILED`/`TIMEOUT`) → wipe the secrets dir. The final report always goes out once a runner token exists, naming
//! the failed step and its (redacted) cause. Artifacts are uploaded before the final report so
//! the daemon may destroy the sandbox as soon as that report arrives.
//!
//! The runner does not commit for the agent unless the job's `result` asks it to commit
//! leftovers before a push; the report carries `git rev-parse HEAD` and a diff stat and notes
//! uncommitted changes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use agentlab_core::api::guest::{BootstrapPayload, GuestJobState, StatusReport};
use agentlab_core::redact::Redactor;
use tokio_util::sync::CancellationToken;

use crate::agent::AgentPaths;
use crate::client::{self, Backoff, RunnerClient};
use crate::config::RunnerConfig;
use crate::error::GuestError;
use crate::git::Git;
use crate::logs::{LogHandle, LogShipper};
use crate::outcome::{describe_checkout, verdict, write_report};
use crate::secrets_dir::SecretsDir;
use crate::steps::{StepCtx, steps};
use crate::{artifacts, bootstrap};

/// Name of the uploaded bundle.
pub const BUNDLE_NAME: &str = "artifacts.tar.gz";

/// How a run ended (errors are [`GuestError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The job ran and its final state was reported.
    Reported(GuestJobState),
    /// The controller has no job for this sandbox.
    NoJob,
}

/// Runs one job. See the module docs for the sequence.
///
/// ```no_run
/// # async fn demo() -> Result<(), agentlab_guest::GuestError> {
/// use std::path::PathBuf;
///
/// let config = agentlab_guest::RunnerConfig {
///     bootstrap_paths: vec![PathBuf::from("/tmp/job/bootstrap.json")],
///     secrets_dir: PathBuf::from("/tmp/job/secrets"),
///     allow_non_tmpfs: true,
///     work_dir: PathBuf::from("/tmp/job/work"),
///     ..Default::default()
/// };
/// let outcome = agentlab_guest::run(&config).await?;
/// println!("{outcome:?}");
/// # Ok(())
/// # }
/// ```
pub async fn run(config: &RunnerConfig) -> Result<RunOutcome, GuestError> {
    run_until_stopped(config, &CancellationToken::new()).await
}

/// Like [`run`], but `cancel` stops the run early (the binary cancels on SIGTERM/SIGINT): before
/// the payload is fetched the runner returns [`GuestError::Stopped`]; during a job, the running
/// step's process group is stopped (SIGTERM, grace, SIGKILL), no further step starts, and the
/// outcome is still bundled and reported as `FAILED`.
pub async fn run_until_stopped(
    config: &RunnerConfig,
    cancel: &CancellationToken,
) -> Result<RunOutcome, GuestError> {
    let secrets = SecretsDir::prepare(&config.secrets_dir, config.allow_non_tmpfs)?;
    let payload = tokio::select! {
        p = obtain_payload(config, &secrets) => p?,
        () = cancel.cancelled() => return Err(GuestError::Stopped),
    };
    let Some(payload) = payload else {
        return Ok(RunOutcome::NoJob);
    };
    let result = run_job(config, &secrets, &payload, cancel).await;
    match &result {
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, "keeping the cached payload for a restart");
        }
        _ => secrets.wipe(),
    }
    result
}

/// The cached payload, or the bootstrap data + fetch; `None` when there is no job.
///
/// The delivered bootstrap file is removed as soon as it is read; its data lives on only in
/// the runner-private part of the secrets tmpfs, and only while the fetch may still succeed
/// (a restart after an unreachable controller retries with it). When the runner gives up for
/// any other reason it tells the controller (`/v1/bootstrap/abandon`, unless the token was
/// refused, which the controller already recorded) and forgets the token.
async fn obtain_payload(
    config: &RunnerConfig,
    secrets: &SecretsDir,
) -> Result<Option<BootstrapPayload>, GuestError> {
    if let Some(p) = secrets.load_cached_payload()? {
        tracing::info!(job = %p.job.job_id, "resuming with the cached payload");
        secrets.forget_bootstrap();
        return Ok(Some(p));
    }
    let data = match secrets.load_cached_bootstrap()? {
        Some(d) => {
            tracing::info!(sandbox = %d.vmid, "retrying the bootstrap fetch with the kept token");
            d
        }
        None => {
            let (path, data) = match bootstrap::wait_for_file(
                &config.bootstrap_paths,
                config.bootstrap_wait,
                config.bootstrap_poll,
            )
            .await
            {
                Ok(found) => found,
                Err(e) => {
                    // An unusable file is of no further use; it may still hold a token.
                    if let GuestError::BootstrapFile { path, .. } = &e {
                        bootstrap::remove_file(path);
                    }
                    return Err(e);
                }
            };
            if let Some(file) = &config.channel_file
                && let Err(e) = crate::channel::write_channel_file(file, &data)
            {
                tracing::warn!(error = %e, "cannot hand the channel key on; no channel");
            }
            crate::ssh_keys::install_for(config, &data.ssh_public_keys);
            secrets.cache_bootstrap(&data)?;
            bootstrap::remove_file(&path);
            tracing::info!(path = %path.display(), sandbox = %data.vmid, "fetching bootstrap payload");
            data
        }
    };
    let backoff = Backoff {
        attempts: config.fetch_attempts,
        initial: config.backoff_initial,
        max: config.backoff_max,
    };
    match client::fetch_payload(&data, backoff).await {
        Ok(Some(p)) => {
            if let Err(e) = secrets.cache_payload(&p) {
                tracing::warn!(error = %e, "cannot cache the payload; a restart will not resume");
            }
            secrets.forget_bootstrap();
            Ok(Some(p))
        }
        Ok(None) => {
            tracing::info!(sandbox = %data.vmid, "controller has no job for this sandbox");
            secrets.forget_bootstrap();
            Ok(None)
        }
        Err(e) if e.is_retryable() => Err(e),
        Err(GuestError::Forbidden) => {
            secrets.forget_bootstrap();
            Err(GuestError::Forbidden)
        }
        Err(e) => {
            let reason = e.to_string();
            if let Err(report) = client::abandon(&data, &reason).await {
                tracing::warn!(error = %report, "cannot tell the controller that the fetch was given up");
            }
            secrets.forget_bootstrap();
            Err(e)
        }
    }
}

fn recreate_dir(dir: &Path) -> Result<(), GuestError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| GuestError::io(format!("Cannot clear {}", dir.display()), e))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| GuestError::io(format!("Cannot create {}", dir.display()), e))
}

/// Work dir, empty artifacts dir and the log shipper.
async fn setup_work(
    config: &RunnerConfig,
    client: &RunnerClient,
    redactor: &Redactor,
) -> Result<(PathBuf, LogHandle, LogShipper), GuestError> {
    std::fs::create_dir_all(&config.work_dir)
        .map_err(|e| GuestError::io(format!("Cannot create {}", config.work_dir.display()), e))?;
    let artifacts_dir = config.work_dir.join("artifacts");
    recreate_dir(&artifacts_dir)?;
    // Nothing from an earlier job may end up in this job's bundle.
    for stale in ["report.json", "changes.patch", BUNDLE_NAME] {
        let path = config.work_dir.join(stale);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(GuestError::io(
                    format!("Cannot remove {}", path.display()),
                    e,
                ));
            }
        }
    }
    let (logs, shipper) = LogShipper::spawn(
        Some(client.clone()),
        &config.work_dir.join("runner.log"),
        redactor.clone(),
        config.log_batch_lines,
        config.log_flush_interval,
    )
    .await?;
    Ok((artifacts_dir, logs, shipper))
}

async fn run_job(
    config: &RunnerConfig,
    secrets: &SecretsDir,
    payload: &BootstrapPayload,
    cancel: &CancellationToken,
) -> Result<RunOutcome, GuestError> {
    let started = Instant::now();
    let job = &payload.job;
    let client = RunnerClient::new(payload)?;
    let mut values = payload.secrets.values();
    values.push(payload.runner_token.expose());
    let redactor = Redactor::new(&values);

    let final_backoff = Backoff {
        attempts: config.fetch_attempts,
        initial: config.backoff_initial,
        max: config.backoff_max,
    };
    let (artifacts_dir, logs, shipper) = match setup_work(config, &client, &redactor).await {
        Ok(v) => v,
        Err(e) => {
            // Nothing to log to or bundle, but the controller must still hear about it.
            let mut report = StatusReport::new(GuestJobState::Failed);
            report.failed_step = Some("bootstrap".to_owned());
            report.error = Some(redactor.redact(&e.to_string()));
            client.status(&report, final_backoff).await?;
            return Ok(RunOutcome::Reported(GuestJobState::Failed));
        }
    };
    logs.runner(&format!(
        "agent-runner {} starting job {}",
        env!("CARGO_PKG_VERSION"),
        job.job_id
    ))
    .await;

    let paths = AgentPaths {
        repo: PathBuf::from(&job.clone_path),
        artifacts: artifacts_dir.clone(),
        secrets: secrets.path().to_owned(),
        home: config
            .agent_home
            .clone()
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/root")),
        claude_config: payload
            .secrets
            .claude_settings
            .as_ref()
            .map(|_| secrets.path().join("claude")),
    };
    let mut checkout: Option<(Git, String)> = None;
    let ctx = StepCtx {
        config,
        secrets,
        payload,
        paths: &paths,
        client: &client,
        logs: &logs,
        cancel,
    };
    let result = steps(&ctx, &mut checkout).await;
    let (result, pushed) =
        crate::push::after_agent(&ctx, result, checkout.as_ref(), &redactor).await;

    let mut report = verdict(result, job.timeout_secs, &redactor);
    report.pushed = pushed;
    if let Some((git, base)) = &checkout {
        describe_checkout(
            git,
            base,
            &job.work_branch,
            &config.work_dir,
            &redactor,
            &logs,
            &mut report,
        )
        .await;
    }
    report.duration_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    logs.runner(&format!(
        "job finished: {:?}{}{}",
        report.state,
        report
            .exit_code
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default(),
        report
            .error
            .as_deref()
            .map(|e| format!(", {e}"))
            .unwrap_or_default(),
    ))
    .await;
    let base = checkout.as_ref().map(|(_, b)| b.as_str());
    if let Err(e) = write_report(&config.work_dir, job, base, &report) {
        logs.runner(&format!("cannot write report.json: {e}")).await;
    }
    drop(logs);
    let stats = shipper.finish().await;
    tracing::info!(
        lines = stats.lines,
        dropped = stats.dropped,
        "log shipping done"
    );

    if payload.artifacts.upload
        && let Err(e) = upload_bundle(config, payload, &client, &redactor, &artifacts_dir).await
    {
        tracing::warn!(error = %e, "artifact upload failed");
        let note = redactor.redact(&format!("artifact upload failed: {e}"));
        report.summary = Some(match report.summary.take() {
            Some(s) => format!("{s}; {note}"),
            None => note,
        });
    }
    client.status(&report, final_backoff).await?;
    tracing::info!(job = %job.job_id, state = ?report.state, "final report sent");
    Ok(RunOutcome::Reported(report.state))
}

async fn upload_bundle(
    config: &RunnerConfig,
    payload: &BootstrapPayload,
    client: &RunnerClient,
    redactor: &Redactor,
    artifacts_dir: &Path,
) -> Result<(), GuestError> {
    let out = config.work_dir.join(BUNDLE_NAME);
    let work = config.work_dir.clone();
    let (redactor, artifacts_dir, max_bytes) = (
        redactor.clone(),
        artifacts_dir.to_owned(),
        payload.artifacts.max_bytes,
    );
    let out2 = out.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let files = ["report.json", "runner.log", "changes.patch"]
            .into_iter()
            .map(|n| (n.to_owned(), work.join(n)))
            .collect();
        artifacts::bundle(&artifacts::BundleSpec {
            out: &out2,
            max_bytes,
            redactor: &redactor,
            files,
            truncatable: Some("runner.log".to_owned()),
            artifacts_dir: &artifacts_dir,
        })
    })
    .await
    .map_err(|e| GuestError::step("artifacts", format!("bundling task failed: {e}")))??;
    if summary.size > max_bytes {
        return Err(GuestError::step(
            "artifacts",
            format!(
                "bundle is {} bytes, over the limit of {max_bytes}",
                summary.size
            ),
        ));
    }
    let backoff = Backoff {
        attempts: config.fetch_attempts,
        initial: config.backoff_initial,
        max: config.backoff_max,
    };
    let receipt = client.upload(BUNDLE_NAME, &out, backoff).await?;
    tracing::info!(size = receipt.size, sha256 = %receipt.sha256, skipped = summary.skipped.len(), "artifacts uploaded");
    Ok(())
}
