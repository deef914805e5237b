//! Scripting template: run jobs on a real backend from your own program, without agentlabd.
//!
//! Use it when a tool of yours should own the sandboxes itself — a CI runner, a batch
//! evaluator, a bot: it builds the engine from an AgentLab config file with
//! [`agentlab_host::Host`] (the same wiring, guest listener and artifact store the daemon
//! uses), runs one job per `--repo` with at most `--concurrency` at once, waits for each, prints
//! a summary table (state, exit code, duration, artifacts, error) and exits 0 only when every
//! job COMPLETED. The backend is the config's `backend:` (`local`, `qemu`, `pve`, or `fake`).
//!
//! Run as root on a host set up for the local backend (see `docs/local-backend.md`), with no
//! agentlabd using the same config:
//!
//! ```text
//! cargo run -p agentlab-examples --example embed_job -- --config /etc/agentlab/config.yaml \
//!     --profile yolo-ephemeral --task "fix the flaky test" \
//!     --repo https://github.com/you/app.git --repo https://github.com/you/lib.git
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::config::Config;
use agentlab_core::engine::{JobRequest, Lab};
use agentlab_core::profile::Profiles;
use agentlab_core::{Job, JobState};
use agentlab_examples::{job_duration, wait_for_job_in};
use agentlab_host::Host;
use clap::Parser;
use futures::StreamExt as _;

/// Runs jobs on the backend of an AgentLab config, in this process.
#[derive(Debug, Parser)]
struct Args {
    /// AgentLab config file (its backend, data dir, guest listener, profiles dir).
    #[arg(long)]
    config: PathBuf,
    /// Repository URL to clone; repeat for several jobs.
    #[arg(long, required = true)]
    repo: Vec<String>,
    /// The task for the agent.
    #[arg(long)]
    task: String,
    /// Profile name.
    #[arg(long)]
    profile: String,
    /// Agent command or preset overriding the profile's.
    #[arg(long)]
    agent: Option<String>,
    /// Jobs running at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let cfg = Config::load(&args.config)?;
    let profiles = Profiles::load_dir(&cfg.profiles_dir)?;
    let host = Host::builder(cfg, profiles).start().await?;
    let lab = Arc::clone(host.lab());
    let jobs: Vec<Job> = futures::stream::iter(args.repo.iter().cloned())
        .map(|repo| {
            let req = JobRequest {
                repo,
                task: args.task.clone(),
                profile: args.profile.clone(),
                agent: args.agent.clone(),
                ..JobRequest::default()
            };
            run_one(Arc::clone(&lab), req)
        })
        .buffered(args.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "{:<28} {:<10} {:>4} {:>8} {:>9}  REPO / ERROR",
        "JOB", "STATE", "EXIT", "TIME", "ARTIFACTS"
    );
    for job in &jobs {
        let artifacts = lab.deps().store.list_artifacts(&job.id).await?.len();
        let outcome = job.outcome.clone().unwrap_or_default();
        println!(
            "{:<28} {:<10} {:>4} {:>8} {:>9}  {}{}",
            job.id.to_string(),
            job.state.to_string(),
            outcome.exit_code.map_or("-".to_owned(), |c| c.to_string()),
            job_duration(job),
            artifacts,
            job.repo,
            outcome.error.map(|e| format!(" ({e})")).unwrap_or_default(),
        );
    }
    // Give the engine a moment to finish tearing down the ephemeral sandboxes, then stop.
    settle(&lab).await;
    host.shutdown().await;
    let ok = jobs.iter().all(|j| j.state == JobState::Completed);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Submits one job and waits until it has ended.
async fn run_one(lab: Arc<Lab>, req: JobRequest) -> anyhow::Result<Job> {
    let job = lab.run_job(req).await?;
    eprintln!("{}: queued ({})", job.id, job.repo);
    let job = wait_for_job_in(&lab, &job.id).await?;
    eprintln!("{}: {}", job.id, job.state);
    Ok(job)
}

/// Waits up to 30 s until no sandbox of this run is still being torn down.
async fn settle(lab: &Arc<Lab>) {
    for _ in 0..300 {
        let busy = lab
            .list_sandboxes(&agentlab_core::SandboxFilter::default())
            .await
            .map(|list| {
                list.iter().any(|s| {
                    s.job.is_some()
                        && !s.lease.keepalive
                        && !matches!(
                            s.state,
                            agentlab_core::SandboxState::Destroyed
                                | agentlab_core::SandboxState::Failed
                        )
                })
            })
            .unwrap_or(false);
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
