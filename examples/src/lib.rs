//! Examples live in this package's `[[example]]` targets.
//!
//! `embed_job`, `embed_workspace`, `embed_pve_sim` and `embed_janitor` run the engine in their
//! own process on `agentlab_host::Host`, with no daemon (see `docs/embedding.md`);
//! `embed_fakes` drives it on the in-memory fakes. The scripting templates `run_job`, `fan_out`,
//! `watch_events` and `cleanup` talk to a running agentlabd through `agentlab-client`;
//! [`client_from_env`] is the connection code they share (copy it along with a template).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::time::Duration;

use agentlab_client::{Client, RemoteOptions, Trust};
use agentlab_core::{Job, JobId, JobState};

/// The daemon's default control socket.
pub const DEFAULT_SOCKET: &str = "/run/agentlab/agentlabd.sock";

/// A client for the daemon named by the environment: the remote API at `AGENTLAB_ENDPOINT`
/// (`https://HOST[:PORT]`, with the API token in `AGENTLAB_TOKEN`; the certificate trusted by
/// `AGENTLAB_FINGERPRINT` when set, else pinned on first use like the CLI does) when that is
/// set, else the Unix socket `AGENTLAB_SOCKET` (default [`DEFAULT_SOCKET`]).
pub fn client_from_env() -> anyhow::Result<Client> {
    let timeout = Duration::from_secs(30);
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = var("AGENTLAB_ENDPOINT") {
        let trust = match var("AGENTLAB_FINGERPRINT") {
            Some(fp) => Trust::Fingerprint(fp),
            None => Trust::first_use_default(),
        };
        let opts = RemoteOptions {
            url,
            token: var("AGENTLAB_TOKEN"),
            trust,
        };
        return Ok(Client::remote(&opts, timeout)?);
    }
    let socket = var("AGENTLAB_SOCKET").unwrap_or_else(|| DEFAULT_SOCKET.to_owned());
    Ok(Client::new(socket, timeout))
}

/// Polls the job every `every` until it has ended; returns it in its final state.
pub async fn wait_for_job(client: &Client, id: &JobId, every: Duration) -> anyhow::Result<Job> {
    loop {
        let job = client.show_job(id).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits, in this process's engine, until the job has ended; woken by the engine's change
/// feed (any store write may be this job's; a lagging receiver just reads again).
pub async fn wait_for_job_in(lab: &agentlab_core::engine::Lab, id: &JobId) -> anyhow::Result<Job> {
    let mut changes = lab.subscribe_changes();
    loop {
        let job = lab.job(id).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.recv()).await;
    }
}

/// How long the job ran, from submission to its end (`-` while it runs).
pub fn job_duration(job: &Job) -> String {
    match job.ended_at {
        Some(end) => {
            let ms = (end - job.created_at).num_milliseconds().max(0);
            format!("{}.{:01}s", ms / 1000, (ms % 1000) / 100)
        }
        None => "-".to_owned(),
    }
}

/// True when the job ended COMPLETED.
pub fn completed(job: &Job) -> bool {
    job.state == JobState::Completed
}
