//! Scripting template: follow a job's or a sandbox's events live.
//!
//! Use it to watch what a job is doing (provisioning steps, the agent's output, the result) from
//! another terminal or a log collector: it prints the events so far, then each new one as the
//! daemon pushes it, until the job (or sandbox) is over; Ctrl-C stops it earlier. For a job it
//! ends with the job's final state and exits 0 only when it COMPLETED.
//!
//! Run (against a running agentlabd; `AGENTLAB_SOCKET` overrides the default socket
//! `/run/agentlab/agentlabd.sock`, or `AGENTLAB_ENDPOINT` + `AGENTLAB_TOKEN` select a remote
//! API):
//!
//! ```text
//! cargo run -p agentlab-examples --example watch_events -- --job job-0123456789abcdef
//! cargo run -p agentlab-examples --example watch_events -- --sandbox 9100
//! ```

use std::process::ExitCode;

use agentlab_client::{LineStream, with_query};
use agentlab_core::{Event, JobId, Vmid};
use clap::Parser;

/// Follows a job's or a sandbox's events.
#[derive(Debug, Parser)]
struct Args {
    /// The job to follow.
    #[arg(long, conflicts_with = "sandbox", required_unless_present = "sandbox")]
    job: Option<JobId>,
    /// The sandbox to follow.
    #[arg(long)]
    sandbox: Option<Vmid>,
}

/// Prints events until the stream ends.
async fn print_all(mut stream: LineStream) -> anyhow::Result<()> {
    while let Some(ev) = stream.next_json::<Event>().await? {
        let subject = match (&ev.job, ev.sandbox) {
            (Some(job), _) => job.to_string(),
            (None, Some(vmid)) => vmid.to_string(),
            (None, None) => "-".to_owned(),
        };
        println!(
            "{} {subject} {} {}",
            ev.ts.format("%H:%M:%S%.3f"),
            ev.kind.as_str(),
            ev.message
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let client = agentlab_examples::client_from_env()?;
    let stream = match (&args.job, args.sandbox) {
        (Some(job), _) => client.follow_job_events(job, None).await?,
        (None, Some(vmid)) => {
            // The client has no typed call for a sandbox's stream; the route is the same
            // NDJSON as the job's.
            let path = with_query(
                &format!("/v1/sandboxes/{vmid}/events"),
                &[("follow", Some("true".to_owned()))],
            );
            client.stream_lines(&path).await?
        }
        (None, None) => anyhow::bail!("--job or --sandbox is required"),
    };
    tokio::select! {
        r = print_all(stream) => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            return Ok(ExitCode::from(130));
        }
    }
    if let Some(job) = &args.job {
        let job = client.show_job(job).await?;
        println!("job {} ended {}", job.id, job.state.as_str());
        if !agentlab_examples::completed(&job) {
            return Ok(ExitCode::FAILURE);
        }
    } else {
        println!("event stream ended");
    }
    Ok(ExitCode::SUCCESS)
}
