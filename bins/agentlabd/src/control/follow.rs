//! The live part of an NDJSON event stream: wake on the engine's change announcements
//! ([`agentlab_core::engine::Lab::subscribe_changes`]) instead of polling, read what is new
//! from the store (so order and completeness never depend on the channel), and end when the
//! subject is done. A `{}` keep-alive goes out after [`KEEPALIVE`] without a line; it also
//! re-reads the store, which catches writes made by another process.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use agentlab_core::engine::Change;
use agentlab_core::{Event, EventQuery, SandboxState, Vmid};

use crate::control::AppState;

/// Idle time after which a stream sends a `{}` keep-alive.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
/// Events read from the store per query.
const CHUNK: u32 = 500;

/// Lines of the stream.
pub type Lines = mpsc::Sender<Result<String, std::io::Error>>;

/// Streams the backlog (already read) and then live events until the subject is done, the
/// client goes away or the daemon shuts down. `rx` was subscribed before the backlog was read.
pub async fn run(
    st: AppState,
    query: EventQuery,
    backlog: Vec<Event>,
    mut rx: tokio::sync::broadcast::Receiver<Change>,
    tx: Lines,
) {
    let mut last = backlog.last().map(|e| e.id).or(query.after).unwrap_or(0);
    for ev in &backlog {
        if tx.send(Ok(line(ev))).await.is_err() {
            return;
        }
    }
    let mut watched = None;
    loop {
        // Done is decided before the last read: every event written before the subject ended
        // is sent.
        let (done, sandbox) = subject_done(&st, &query).await;
        watched = sandbox.or(watched);
        if !catch_up(&st, &query, &mut last, &tx).await || done {
            return;
        }
        // Sleep until something of ours changes.
        loop {
            let woke = tokio::select! {
                () = st.cancel.cancelled() => return,
                r = rx.recv() => r,
                () = tokio::time::sleep(KEEPALIVE) => {
                    if tx.send(Ok("{}\n".into())).await.is_err() {
                        return;
                    }
                    break;
                }
            };
            match woke {
                Ok(change) if concerns(&change, &query, watched) => break,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
        // Fold announcements that are already queued into this wake-up.
        while rx.try_recv().is_ok() {}
    }
}

/// Whether `change` may add to this stream or end it.
fn concerns(change: &Change, q: &EventQuery, watched: Option<Vmid>) -> bool {
    match change {
        Change::Event { job, sandbox, .. } => {
            q.job.as_ref().is_none_or(|j| job.as_ref() == Some(j))
                && q.sandbox.is_none_or(|v| *sandbox == Some(v))
        }
        Change::Job(id) => q.job.as_ref() == Some(id),
        Change::Sandbox(v) => q.sandbox == Some(*v) || watched == Some(*v),
    }
}

/// Sends every stored event after `last`; false when the client went away or the store
/// failed.
async fn catch_up(st: &AppState, query: &EventQuery, last: &mut i64, tx: &Lines) -> bool {
    loop {
        let q = EventQuery {
            after: Some(*last),
            tail: None,
            limit: Some(CHUNK),
            ..query.clone()
        };
        let Ok(events) = st.lab.events(&q).await else {
            return false;
        };
        for ev in &events {
            *last = ev.id;
            if tx.send(Ok(line(ev))).await.is_err() {
                return false;
            }
        }
        if events.len() < CHUNK as usize {
            return true;
        }
    }
}

/// One NDJSON line.
pub fn line(ev: &Event) -> String {
    let mut s = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// A sandbox stream ends when it is destroyed; a job stream when the job ended and its
/// sandbox is destroyed or kept alive. Also returns the job's sandbox (whose writes can end
/// the stream).
async fn subject_done(st: &AppState, q: &EventQuery) -> (bool, Option<Vmid>) {
    if let Some(id) = &q.job {
        let Ok(job) = st.lab.job(id).await else {
            return (true, None);
        };
        if !job.state.is_terminal() {
            return (false, job.sandbox);
        }
        let Some(v) = job.sandbox else {
            return (true, None);
        };
        let done = match st.lab.sandbox(v).await {
            Ok(sb) => {
                sb.state == SandboxState::Destroyed
                    || sb.state == SandboxState::Stopped
                    || (sb.state.is_finished() && (job.keepalive || !sb.vm_created))
            }
            Err(_) => true,
        };
        return (done, Some(v));
    }
    if let Some(v) = q.sandbox {
        let done = st
            .lab
            .sandbox(v)
            .await
            .map_or(true, |sb| sb.state == SandboxState::Destroyed);
        return (done, Some(v));
    }
    (true, None)
}
