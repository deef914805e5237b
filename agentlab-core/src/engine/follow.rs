//! [`Lab::follow_events`]: a sandbox's or job's events, backlog then live, pushed as they are
//! appended. The follower wakes on the store's change announcements
//! ([`Lab::subscribe_changes`]) instead of polling, reads what is new from the store (so order
//! and completeness never depend on the channel), and ends when the subject is done. After
//! `keepalive` without an event it sends [`FollowItem::KeepAlive`] and re-reads the store,
//! which also catches writes made by another process.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::engine::error::EngineError;
use crate::engine::lab::Lab;
use crate::engine::notify::Change;
use crate::event::{Event, EventQuery};
use crate::ids::Vmid;
use crate::state::SandboxState;

/// Events read from the store per query.
const CHUNK: u32 = 500;

/// What a follower receives.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowItem {
    /// The next event (ascending ids).
    Event(Event),
    /// Nothing happened for the keep-alive interval.
    KeepAlive,
}

impl Lab {
    /// Follows `query` (its `sandbox` or `job`): with `tail`, the last events first, then every
    /// later event as soon as it is appended. The channel closes when the subject is done (a
    /// sandbox destroyed; a job ended and its sandbox destroyed, stopped or kept alive), when
    /// `cancel` or the lab's shutdown fires, or when the receiver is dropped.
    pub async fn follow_events(
        self: &Arc<Self>,
        query: EventQuery,
        keepalive: Duration,
        cancel: CancellationToken,
    ) -> Result<mpsc::Receiver<FollowItem>, EngineError> {
        // Subscribe before reading the backlog: nothing written in between is missed.
        let rx = self.subscribe_changes();
        let backlog = match query.tail {
            Some(_) => self.events(&query).await?,
            None => Vec::new(),
        };
        let (tx, out) = mpsc::channel(64);
        let lab = Arc::clone(self);
        tokio::spawn(async move {
            let f = Follower {
                lab: &lab,
                query: &query,
                tx,
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = lab.cancel.cancelled() => {}
                () = f.run(backlog, rx, keepalive) => {}
            }
        });
        Ok(out)
    }
}

struct Follower<'a> {
    lab: &'a Lab,
    query: &'a EventQuery,
    tx: mpsc::Sender<FollowItem>,
}

impl Follower<'_> {
    async fn run(
        &self,
        backlog: Vec<Event>,
        mut rx: broadcast::Receiver<Change>,
        keepalive: Duration,
    ) {
        let mut last = backlog
            .last()
            .map(|e| e.id)
            .or(self.query.after)
            .unwrap_or(0);
        for ev in backlog {
            if self.tx.send(FollowItem::Event(ev)).await.is_err() {
                return;
            }
        }
        let mut watched = None;
        loop {
            // Done is decided before the last read: every event written before the subject
            // ended is sent.
            let (done, sandbox) = self.subject_done().await;
            watched = sandbox.or(watched);
            if !self.catch_up(&mut last).await || done {
                return;
            }
            // Sleep until something of ours changes.
            loop {
                let woke = tokio::select! {
                    r = rx.recv() => r,
                    () = tokio::time::sleep(keepalive) => {
                        if self.tx.send(FollowItem::KeepAlive).await.is_err() {
                            return;
                        }
                        break;
                    }
                };
                match woke {
                    Ok(change) if concerns(&change, self.query, watched) => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
            // Fold announcements that are already queued into this wake-up.
            while rx.try_recv().is_ok() {}
        }
    }

    /// Sends every stored event after `last`; false when the receiver went away or the store
    /// failed.
    async fn catch_up(&self, last: &mut i64) -> bool {
        loop {
            let q = EventQuery {
                after: Some(*last),
                tail: None,
                limit: Some(CHUNK),
                ..self.query.clone()
            };
            let Ok(events) = self.lab.events(&q).await else {
                return false;
            };
            let n = events.len();
            for ev in events {
                *last = ev.id;
                if self.tx.send(FollowItem::Event(ev)).await.is_err() {
                    return false;
                }
            }
            if n < CHUNK as usize {
                return true;
            }
        }
    }

    /// Whether the subject is done, and the sandbox whose writes can end the stream.
    async fn subject_done(&self) -> (bool, Option<Vmid>) {
        let (lab, q) = (self.lab, self.query);
        if let Some(id) = &q.job {
            let Ok(job) = lab.job(id).await else {
                return (true, None);
            };
            if !job.state.is_terminal() {
                return (false, job.sandbox);
            }
            let Some(v) = job.sandbox else {
                return (true, None);
            };
            let done = match lab.sandbox(v).await {
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
            let done = lab
                .sandbox(v)
                .await
                .map_or(true, |sb| sb.state == SandboxState::Destroyed);
            return (done, Some(v));
        }
        (true, None)
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
