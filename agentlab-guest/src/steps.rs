//! The job steps between fetch and outcome: `bootstrap` (bundle files, git credentials),
//! `clone` and `agent`, each announced with a `RUNNING <step>` report (as are `push` and
//! `open_pr`, see [`crate::push`]). Errors come back as
//! [`GuestError::Step`] naming the step that failed.

use std::path::Path;
use std::time::Duration;

use agentlab_core::api::guest::{BootstrapPayload, StatusReport};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::agent::{self, AgentPaths};
use crate::client::{Backoff, RunnerClient};
use crate::config::RunnerConfig;
use crate::error::GuestError;
use crate::git::Git;
use crate::logs::LogHandle;
use crate::process::{self, Limits, ProcessEnd};
use crate::secrets_dir::SecretsDir;

const STEP_BACKOFF: Backoff = Backoff {
    attempts: 2,
    initial: Duration::from_millis(300),
    max: Duration::from_secs(2),
};

pub(crate) fn step_of(e: &GuestError) -> &'static str {
    match e {
        GuestError::Step { step, .. } => step,
        _ => "bootstrap",
    }
}

pub(crate) fn as_step(step: &'static str) -> impl Fn(GuestError) -> GuestError {
    move |e| match e {
        GuestError::Step { .. } => e,
        other => GuestError::step(step, other.to_string()),
    }
}

/// What the steps work with.
#[derive(Debug)]
pub(crate) struct StepCtx<'a> {
    pub config: &'a RunnerConfig,
    pub secrets: &'a SecretsDir,
    pub payload: &'a BootstrapPayload,
    pub paths: &'a AgentPaths,
    pub client: &'a RunnerClient,
    pub logs: &'a LogHandle,
    pub cancel: &'a CancellationToken,
}

pub(crate) async fn steps(
    ctx: &StepCtx<'_>,
    checkout: &mut Option<(Git, String)>,
) -> Result<ProcessEnd, GuestError> {
    let StepCtx {
        config,
        secrets,
        payload,
        paths,
        logs,
        cancel,
        ..
    } = *ctx;
    let job = &payload.job;
    report_step(ctx, "bootstrap").await?;
    for f in &payload.secrets.files {
        secrets
            .write_bundle_file(
                &f.path,
                f.content.expose().as_bytes(),
                f.mode.unwrap_or(0o600),
            )
            .map_err(as_step("bootstrap"))?;
    }
    if let Some(settings) = &payload.secrets.claude_settings {
        secrets
            .write_bundle_file("claude/settings.json", settings.expose().as_bytes(), 0o600)
            .map_err(as_step("bootstrap"))?;
    }
    let git = Git::new(&config.git_bin, job, secrets, payload.secrets.git.as_ref())
        .map_err(as_step("bootstrap"))?;
    if let Some(run_as) = &config.run_as {
        let mut dirs = vec![secrets.path().to_owned(), config.work_dir.clone()];
        dirs.extend(paths.repo.parent().map(Path::to_path_buf));
        run_as.hand_over_and_drop(&dirs)?;
    }

    report_step(ctx, "clone").await?;
    let clone_limits = Limits {
        timeout: config.clone_timeout,
        grace: config.kill_grace,
        cancel: cancel.clone(),
    };
    let base = git
        .checkout(job, &clone_limits, logs)
        .await
        .map_err(as_step("clone"))?;
    *checkout = Some((git, base));

    report_step(ctx, "agent").await?;
    let argv = agent::agent_argv(&job.agent, &job.mode, &job.task)?;
    let argv = agent::sandboxed_argv(payload, &config.bwrap_bin, paths, argv)?;
    let Some((program, args)) = argv.split_first() else {
        return Err(GuestError::step("agent", "empty agent command"));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&paths.repo)
        .envs(agent::agent_env(payload, paths));
    logs.runner(&format!(
        "running agent ({program}), timeout {} s",
        job.timeout_secs
    ))
    .await;
    let limits = Limits {
        timeout: Duration::from_secs(job.timeout_secs),
        grace: config.kill_grace,
        cancel: cancel.clone(),
    };
    let run = process::run_streamed(cmd, "agent", &limits, logs)
        .await
        .map_err(as_step("agent"))?;
    Ok(run.end)
}

/// Announces `step` (log line + `RUNNING` report); refuses to start it once stopping.
pub(crate) async fn report_step(ctx: &StepCtx<'_>, step: &'static str) -> Result<(), GuestError> {
    if ctx.cancel.is_cancelled() {
        return Err(GuestError::step(step, "Runner stopped before this step"));
    }
    ctx.logs.runner(&format!("step: {step}")).await;
    if let Err(e) = ctx
        .client
        .status(&StatusReport::running(step), STEP_BACKOFF)
        .await
    {
        tracing::warn!(step, error = %e, "cannot report step");
    }
    Ok(())
}
