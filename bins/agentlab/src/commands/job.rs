//! `agentlab job list|show|cancel|logs` (and `run` in `job_run`, `artifacts` in
//! `job_artifacts`).

use agentlab_core::{Job, JobId, JobState};

use super::job_artifacts::{self, ArtifactsArgs};
use super::job_run::{self, RunArgs};
use super::logs::{self, LogOpts, Target};
use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;
use crate::view;
use agentlab_client::with_query;

/// Arguments of `agentlab job`.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    #[command(subcommand)]
    pub cmd: JobCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobCmd {
    /// Run an agent on a repository in a fresh sandbox; waits and shows progress by default.
    Run(RunArgs),
    /// List jobs.
    #[command(visible_alias = "ls")]
    List {
        /// Only these states (comma-separated, e.g. RUNNING,QUEUED).
        #[arg(long, value_delimiter = ',')]
        state: Vec<JobState>,
        /// At most this many jobs (all by default, read page by page).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one job and its outcome.
    Show {
        /// The job id (`job-…`).
        job: JobId,
    },
    /// Cancel a job; its sandbox is torn down.
    Cancel {
        /// The job id (`job-…`).
        job: JobId,
    },
    /// The job's events and agent output.
    Logs {
        /// The job id (`job-…`).
        job: JobId,
        #[command(flatten)]
        opts: LogOpts,
    },
    /// List or download the job's artifacts.
    Artifacts(ArtifactsArgs),
}

/// Runs `agentlab job …`.
pub async fn run(ctx: &Ctx, args: JobArgs) -> anyhow::Result<Code> {
    let job: Job = match args.cmd {
        JobCmd::Run(a) => return job_run::run(ctx, a).await,
        JobCmd::Artifacts(a) => return job_artifacts::run(ctx, a).await,
        JobCmd::Logs { job, opts } => {
            logs::show(ctx, &Target::Job(job), &opts).await?;
            return Ok(Code::Ok);
        }
        JobCmd::List { state, limit } => {
            let states = state
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let query = [("state", (!states.is_empty()).then_some(states))];
            let path = with_query("/v1/jobs", &query);
            let max = limit.map(|l| l as usize);
            let jobs: Vec<Job> = ctx.client.get_all(&path, "cursor", max).await?;
            if ctx.json {
                print_json(&jobs)?;
            } else if jobs.is_empty() {
                println!("No jobs.");
            } else {
                print!("{}", view::job_table(&jobs));
            }
            return Ok(Code::Ok);
        }
        JobCmd::Show { job } => ctx.client.show_job(&job).await?,
        JobCmd::Cancel { job } => ctx.client.cancel_job(&job).await?,
    };
    if ctx.json {
        print_json(&job)?;
    } else {
        print!("{}", view::job_detail(&job));
    }
    Ok(Code::Ok)
}
