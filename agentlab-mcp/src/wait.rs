//! Waiting for a job (`run_job` with `wait`): follows the job's NDJSON event stream,
//! reconnecting after the last event seen when it breaks off, until the job is final; each
//! event becomes an MCP progress notification when the caller asked for progress.

use std::time::Duration;

use agentlab_client::{Client, ClientError};
use agentlab_core::{Event, EventKind, Job, JobId};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio_util::sync::CancellationToken;

/// Consecutive stream ends without a new event tolerated while the job is not final.
const MAX_RECONNECTS: u32 = 10;

/// Longest event message carried in a progress notification.
const MESSAGE_MAX: usize = 300;

/// Where progress notifications go: the session and the caller's progress token.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The MCP peer (the client).
    pub peer: Peer<RoleServer>,
    /// The token from the request's `_meta.progressToken`.
    pub token: ProgressToken,
}

/// How waiting ended.
#[derive(Debug)]
pub enum Waited {
    /// The job is final (COMPLETED, FAILED, TIMEOUT or CANCELLED).
    Final(Job),
    /// The time limit passed or the call was cancelled; the job as it was then.
    Stopped(Job),
}

/// Follows `job` until it is final, `limit` passes or `cancel` fires.
pub async fn wait_for_job(
    client: &Client,
    job: &JobId,
    progress: Option<Progress>,
    limit: Option<Duration>,
    cancel: CancellationToken,
) -> Result<Waited, ClientError> {
    let follow = follow(client, job, progress.as_ref());
    let stopped = async {
        match limit {
            Some(l) => tokio::select! {
                () = tokio::time::sleep(l) => {}
                () = cancel.cancelled() => {}
            },
            None => cancel.cancelled().await,
        }
    };
    tokio::select! {
        done = follow => done.map(Waited::Final),
        () = stopped => client.show_job(job).await.map(Waited::Stopped),
    }
}

async fn follow(
    client: &Client,
    job: &JobId,
    progress: Option<&Progress>,
) -> Result<Job, ClientError> {
    let mut after: Option<i64> = None;
    let mut count: u32 = 0;
    let mut failures = 0;
    loop {
        let before = after;
        let streamed = async {
            let mut stream = client.follow_job_events(job, after).await?;
            while let Some(event) = stream.next_json::<Event>().await? {
                after = Some(event.id);
                count += 1;
                if let Some(p) = progress {
                    notify(p, count, &event).await;
                }
            }
            Ok::<(), ClientError>(())
        }
        .await;
        failures = if after == before { failures + 1 } else { 0 };
        let current = client.show_job(job).await?;
        if current.state.is_terminal() {
            return Ok(current);
        }
        match streamed {
            Err(e) if failures > MAX_RECONNECTS => return Err(e),
            Err(e) => {
                tracing::warn!(job = %job, error = %e, "event stream broke off; reconnecting");
            }
            Ok(()) if failures > MAX_RECONNECTS => {
                return Err(ClientError::Protocol {
                    path: format!("/v1/jobs/{job}/events"),
                    reason: format!(
                        "the daemon keeps ending the event stream while the job is {}",
                        current.state
                    ),
                });
            }
            Ok(()) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn notify(p: &Progress, count: u32, event: &Event) {
    let message = progress_message(event);
    let param =
        ProgressNotificationParam::new(p.token.clone(), f64::from(count)).with_message(message);
    if let Err(e) = p.peer.notify_progress(param).await {
        tracing::debug!(error = %e, "cannot send a progress notification");
    }
}

/// One line for an event: the agent's output as is, other events as `kind: message`;
/// shortened to [`MESSAGE_MAX`] characters.
pub fn progress_message(event: &Event) -> String {
    let line = if event.kind == EventKind::JobLog {
        event.message.clone()
    } else {
        format!("{}: {}", event.kind.as_str(), event.message)
    };
    match line.char_indices().nth(MESSAGE_MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
