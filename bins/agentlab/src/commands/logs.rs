//! `agentlab logs <vmid|job-id> [--follow] [--tail N]`: a sandbox's or job's events, with the
//! agent's output lines (`job_log`) prefixed `│ ` and control characters escaped. `--follow` keeps streaming until the
//! daemon ends the stream (sandbox destroyed / job over).

use std::fmt;
use std::str::FromStr;

use agentlab_core::{Event, JobId, Vmid};

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::{event_line, print_json};
use agentlab_client::with_query;

/// Arguments of `agentlab logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// A sandbox (vmid, a number) or a job (id starting with `job-`).
    pub target: Target,
    #[command(flatten)]
    pub opts: LogOpts,
}

/// `--follow` / `--tail`, shared with `agentlab job logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogOpts {
    /// Keep printing new events until the sandbox is destroyed or the job is over.
    #[arg(long, short)]
    pub follow: bool,
    /// Only the last N events.
    #[arg(long, short = 'n', value_name = "N")]
    pub tail: Option<u32>,
}

/// Whose events to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A sandbox.
    Sandbox(Vmid),
    /// A job.
    Job(JobId),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with(JobId::PREFIX) {
            return s.parse().map(Target::Job).map_err(|e| e.to_string());
        }
        s.parse()
            .map(Target::Sandbox)
            .map_err(|_| format!("{s:?} is neither a vmid (a number) nor a job id (job-…)"))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sandbox(v) => write!(f, "{v}"),
            Self::Job(j) => write!(f, "{j}"),
        }
    }
}

impl Target {
    /// The events route of the target.
    pub fn events_path(&self) -> String {
        match self {
            Self::Sandbox(v) => format!("/v1/sandboxes/{v}/events"),
            Self::Job(j) => format!("/v1/jobs/{j}/events"),
        }
    }
}

/// Runs `agentlab logs`.
pub async fn run(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<Code> {
    show(ctx, &args.target, &args.opts).await?;
    Ok(Code::Ok)
}

/// Prints the target's events (`--json`: a JSON array, or one JSON object per line when
/// following); returns the id of the last event seen.
pub async fn show(ctx: &Ctx, target: &Target, opts: &LogOpts) -> anyhow::Result<Option<i64>> {
    let tail = opts.tail.map(|n| n.to_string());
    if !opts.follow {
        let path = with_query(&target.events_path(), &[("tail", tail)]);
        let events: Vec<Event> = ctx
            .client
            .get_pages(&path, &target.events_path(), "after", None)
            .await?;
        if ctx.json {
            print_json(&events)?;
        } else {
            events.iter().for_each(|e| println!("{}", event_line(e)));
        }
        return Ok(events.last().map(|e| e.id));
    }
    let path = with_query(
        &target.events_path(),
        &[("tail", tail), ("follow", Some("true".into()))],
    );
    follow(ctx, &path, |e| {
        if ctx.json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!("{}", event_line(e));
        }
        Ok(())
    })
    .await
}

/// Reads an NDJSON event stream to its end, calling `each` per event; returns the last id.
pub async fn follow(
    ctx: &Ctx,
    path: &str,
    mut each: impl FnMut(&Event) -> anyhow::Result<()>,
) -> anyhow::Result<Option<i64>> {
    let mut stream = ctx.client.stream_lines(path).await?;
    let mut last = None;
    while let Some(event) = stream.next_json::<Event>().await? {
        each(&event)?;
        last = Some(event.id);
    }
    Ok(last)
}
