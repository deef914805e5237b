//! Scripting template: run one job and wait for it to end.
//!
//! Use it from a shell script or CI step that needs "run this task on this repository and tell
//! me whether it worked": it submits the job, polls it until it has ended, prints the outcome
//! and exits 0 only when the job COMPLETED (1 otherwise), so `&&` and `set -e` work.
//!
//! Run (against a running agentlabd; `AGENTLAB_SOCKET` overrides the default socket
//! `/run/agentlab/agentlabd.sock`, or `AGENTLAB_ENDPOINT` + `AGENTLAB_TOKEN` select a remote
//! API):
//!
//! ```text
//! cargo run -p agentlab-examples --example run_job -- \
//!     --repo https://github.com/you/app.git --task "fix the flaky test" --profile yolo-ephemeral
//! ```

use std::process::ExitCode;
use std::time::Duration;

use agentlab_core::api::control::RunJobRequest;
use clap::Parser;

/// Runs one job and waits for it to end.
#[derive(Debug, Parser)]
struct Args {
    /// Repository URL to clone.
    #[arg(long)]
    repo: String,
    /// The task for the agent.
    #[arg(long)]
    task: String,
    /// Profile name.
    #[arg(long)]
    profile: String,
    /// Branch, tag or commit (the default branch when absent).
    #[arg(long = "ref")]
    git_ref: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let client = agentlab_examples::client_from_env()?;
    let job = client
        .run_job(&RunJobRequest {
            repo: args.repo,
            git_ref: args.git_ref,
            task: args.task,
            profile: args.profile,
            ..Default::default()
        })
        .await?;
    println!("submitted {} ({})", job.id, job.state.as_str());

    let job = agentlab_examples::wait_for_job(&client, &job.id, Duration::from_secs(1)).await?;
    println!(
        "job {} ended {} after {}",
        job.id,
        job.state.as_str(),
        agentlab_examples::job_duration(&job)
    );
    if let Some(o) = &job.outcome {
        if let Some(code) = o.exit_code {
            println!("  exit code: {code}");
        }
        if let Some(commit) = &o.commit {
            println!("  commit:    {commit}");
        }
        if let Some(summary) = &o.summary {
            println!("  summary:   {summary}");
        }
        if let Some(step) = &o.failed_step {
            println!("  failed at: {step}");
        }
        if let Some(error) = &o.error {
            println!("  error:     {error}");
        }
    }
    Ok(if agentlab_examples::completed(&job) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
