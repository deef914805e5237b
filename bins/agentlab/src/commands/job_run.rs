//! `agentlab job run`: submit a job, then (unless `--detach`) follow its event stream —
//! provisioning steps and state changes on stderr, the agent's output on stdout (each line
//! prefixed `│ `, control characters escaped) — and finish
//! with the result, the artifact list and an exit code reflecting the outcome.

use std::time::Duration;

use agentlab_core::api::control::RunJobRequest;
use agentlab_core::profile::ResultOverride;
use agentlab_core::{Artifact, Event, EventKind, Job, JobId};

use super::logs;
use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::{event_line, print_json};
use crate::view;
use agentlab_client::with_query;

/// Consecutive broken event streams tolerated while the job is still running.
const MAX_RECONNECTS: u32 = 10;

/// Arguments of `agentlab job run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Repository URL to clone.
    #[arg(long)]
    pub repo: String,
    /// The task for the agent.
    #[arg(long)]
    pub task: String,
    /// Profile to run with.
    #[arg(long, short)]
    pub profile: String,
    /// Branch, tag or commit (the default branch when absent).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Agent command or preset (`claude`, `codex`, `opencode`) overriding the profile's.
    #[arg(long, value_name = "CMD")]
    pub agent: Option<String>,
    /// Lease length in minutes.
    #[arg(long, value_name = "MINUTES")]
    pub ttl: Option<u32>,
    /// Keep the sandbox after the job ends (until its lease ends).
    #[arg(long)]
    pub keepalive: bool,
    /// Workspace (id or name) to attach.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Print the job id and return at once instead of waiting.
    #[arg(long, short)]
    pub detach: bool,
    /// Push the job branch to the repository's remote after the agent (see docs/results.md).
    #[arg(long)]
    pub push: bool,
    /// Branch template for the push (`{job}` required, `{profile}`).
    #[arg(long, value_name = "TEMPLATE")]
    pub branch: Option<String>,
    /// Push only what the agent committed (do not commit its leftovers).
    #[arg(long)]
    pub no_commit_leftovers: bool,
    /// Open a pull request after the push (the forge is configured in the profile).
    #[arg(long)]
    pub open_pr: bool,
    /// Pull request title template (`{job}`, `{profile}`).
    #[arg(long, value_name = "TITLE")]
    pub pr_title: Option<String>,
    /// Branch the pull request targets.
    #[arg(long, value_name = "BRANCH")]
    pub pr_base: Option<String>,
}

impl RunArgs {
    /// The request body.
    pub fn request(&self) -> RunJobRequest {
        RunJobRequest {
            repo: self.repo.clone(),
            git_ref: self.git_ref.clone(),
            task: self.task.clone(),
            profile: self.profile.clone(),
            agent: self.agent.clone(),
            ttl_minutes: self.ttl,
            keepalive: self.keepalive.then_some(true),
            workspace: self.workspace.clone(),
            result: self.result(),
        }
    }

    /// The `result` override, when any result flag is given.
    fn result(&self) -> Option<ResultOverride> {
        let r = ResultOverride {
            push: self.push.then_some(true),
            branch: self.branch.clone(),
            commit_leftovers: self.no_commit_leftovers.then_some(false),
            open_pr: self.open_pr.then_some(true),
            pr_title: self.pr_title.clone(),
            pr_base: self.pr_base.clone(),
        };
        (r != ResultOverride::default()).then_some(r)
    }
}

/// Runs `agentlab job run`.
pub async fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<Code> {
    let job: Job = ctx.client.run_job(&args.request()).await?;
    if args.detach {
        if ctx.json {
            print_json(&job)?;
        } else {
            println!("{}", job.id);
        }
        return Ok(Code::Ok);
    }
    if !ctx.json {
        eprintln!(
            "Job {} queued (profile {}); following it. Ctrl-C stops watching, not the job.",
            job.id, job.profile
        );
    }
    let job = wait(ctx, &job.id, !ctx.json).await?;
    let artifacts: Vec<Artifact> = match ctx.client.list_artifacts(&job.id).await {
        Ok(list) => list,
        Err(e) => {
            eprintln!("warning: cannot list artifacts: {e}");
            Vec::new()
        }
    };
    if ctx.json {
        print_json(&serde_json::json!({ "job": job, "artifacts": artifacts }))?;
    } else {
        print!("{}", view::job_result(&job, &artifacts));
    }
    Ok(Code::for_job(job.state))
}

/// Follows the job's events until the daemon ends the stream and the job is over;
/// reconnects (resuming after the last event seen) when the stream breaks off early.
pub async fn wait(ctx: &Ctx, id: &JobId, show: bool) -> anyhow::Result<Job> {
    let events = format!("/v1/jobs/{id}/events");
    let mut after: Option<i64> = None;
    let mut failures = 0;
    loop {
        let path = with_query(
            &events,
            &[
                ("after", after.map(|a| a.to_string())),
                ("follow", Some("true".into())),
            ],
        );
        let mut last = after;
        let streamed = logs::follow(ctx, &path, |e| {
            last = Some(e.id);
            if show {
                progress(e);
            }
            Ok(())
        })
        .await;
        failures = if last == after { failures + 1 } else { 0 };
        after = last;
        let job: Job = ctx.client.show_job(id).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        match streamed {
            Err(e) if failures > MAX_RECONNECTS => {
                return Err(e.context("Lost the job's event stream"));
            }
            Err(e) => eprintln!("warning: event stream broke off ({e:#}); reconnecting"),
            Ok(_) if failures > MAX_RECONNECTS => anyhow::bail!(
                "The daemon keeps ending the event stream of {id} while it is {}",
                job.state
            ),
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Agent output on stdout (marked and escaped), everything else on stderr.
fn progress(e: &Event) {
    if e.kind == EventKind::JobLog {
        println!("{}", event_line(e));
    } else {
        eprintln!("{}", event_line(e));
    }
}

#[cfg(test)]
#[path = "job_run_tests.rs"]
mod tests;
