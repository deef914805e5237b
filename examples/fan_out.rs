//! Scripting template: one task over many repositories, a bounded number of jobs at a time.
//!
//! Use it to apply the same change (bump a dependency, fix a lint, add a CI file) across a fleet
//! of repositories: it runs one job per repository with at most `--concurrency` jobs in flight,
//! waits for all of them and prints a summary table (repo, job id, state, duration). It exits
//! 0 only when every job COMPLETED.
//!
//! Repositories come as arguments, from `--repos-file` (one URL a line; blank lines and `#`
//! comments skipped), or both. Run (against a running agentlabd; `AGENTLAB_SOCKET` overrides the
//! default socket `/run/agentlab/agentlabd.sock`, or `AGENTLAB_ENDPOINT` + `AGENTLAB_TOKEN`
//! select a remote API):
//!
//! ```text
//! cargo run -p agentlab-examples --example fan_out -- \
//!     --task "bump serde to 1.0.230" --profile yolo-ephemeral --concurrency 4 \
//!     --repos-file repos.txt
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentlab_core::api::control::RunJobRequest;
use clap::Parser;
use futures::StreamExt as _;

/// Runs one job per repository, at most `--concurrency` at a time.
#[derive(Debug, Parser)]
struct Args {
    /// The task for the agent, the same for every repository.
    #[arg(long)]
    task: String,
    /// Profile name.
    #[arg(long)]
    profile: String,
    /// How many jobs may run at the same time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// A file with one repository URL a line.
    #[arg(long)]
    repos_file: Option<PathBuf>,
    /// Repository URLs.
    repos: Vec<String>,
}

/// One row of the summary.
#[derive(Debug)]
struct Row {
    repo: String,
    job: String,
    state: String,
    duration: String,
    ok: bool,
}

/// Submits a job for `repo` and waits for it to end; failures to submit or poll become a row
/// too, so one bad repository does not hide the others.
async fn run_one(client: &agentlab_client::Client, args: &Args, repo: String) -> Row {
    let req = RunJobRequest {
        repo: repo.clone(),
        task: args.task.clone(),
        profile: args.profile.clone(),
        ..Default::default()
    };
    let result = async {
        let job = client.run_job(&req).await?;
        eprintln!("{repo}: submitted {}", job.id);
        agentlab_examples::wait_for_job(client, &job.id, Duration::from_secs(1)).await
    }
    .await;
    match result {
        Ok(job) => {
            let why = job
                .outcome
                .as_ref()
                .and_then(|o| o.error.as_deref())
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            eprintln!("{repo}: {} {}{why}", job.id, job.state.as_str());
            Row {
                ok: agentlab_examples::completed(&job),
                job: job.id.to_string(),
                state: job.state.as_str().to_owned(),
                duration: agentlab_examples::job_duration(&job),
                repo,
            }
        }
        Err(e) => {
            eprintln!("{repo}: error: {e:#}");
            Row {
                repo,
                job: "-".to_owned(),
                state: "ERROR".to_owned(),
                duration: "-".to_owned(),
                ok: false,
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let mut repos = args.repos.clone();
    if let Some(file) = &args.repos_file {
        let text = std::fs::read_to_string(file)?;
        repos.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    anyhow::ensure!(!repos.is_empty(), "no repositories given");
    let client = agentlab_examples::client_from_env()?;

    // At most `concurrency` of these futures run at once; each one is a whole job, from
    // submission to its end. Results come back in completion order, tagged with their index.
    let mut rows: Vec<(usize, Row)> = futures::stream::iter(repos.into_iter().enumerate())
        .map(|(i, repo)| {
            let (client, args) = (&client, &args);
            async move { (i, run_one(client, args, repo).await) }
        })
        .buffer_unordered(usize::from(args.concurrency))
        .collect()
        .await;
    rows.sort_by_key(|(i, _)| *i);

    let w = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|(_, r)| f(r).len())
            .chain([title.len()])
            .max()
            .unwrap_or_default()
    };
    let (wr, wj, ws) = (
        w(|r| &r.repo, "REPO"),
        w(|r| &r.job, "JOB"),
        w(|r| &r.state, "STATE"),
    );
    println!("{:wr$}  {:wj$}  {:ws$}  DURATION", "REPO", "JOB", "STATE");
    for (_, r) in &rows {
        println!(
            "{:wr$}  {:wj$}  {:ws$}  {}",
            r.repo, r.job, r.state, r.duration
        );
    }
    let failed = rows.iter().filter(|(_, r)| !r.ok).count();
    println!(
        "{} jobs, {} completed, {failed} not",
        rows.len(),
        rows.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
