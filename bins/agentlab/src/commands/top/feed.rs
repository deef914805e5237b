//! The data behind `agentlab top`, gathered by background tasks that send [`Update`]s to the
//! run loop:
//!
//! - the lists (live sandboxes, the newest jobs) are read again whenever an event arrives
//!   (debounced by [`DEBOUNCE`]) or an action ends, and every [`POLL`] as a fallback — the
//!   control API has no stream announcing new sandboxes or jobs, so the poll is what finds
//!   them;
//! - every live sandbox's event stream (`/v1/sandboxes/{vmid}/events?follow=true`, at most
//!   [`MAX_WATCHED`] of them) is followed, so a state change shows at once;
//! - the detail pane's subject (a sandbox or a job) is followed with its recent backlog.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use agentlab_client::{Client, SandboxFilter, with_query};
use agentlab_core::{Event, Job, Sandbox, Vmid};

use crate::commands::logs::Target;

/// Fallback refresh interval of the lists.
pub const POLL: Duration = Duration::from_secs(2);
/// Quiet time after an event before the lists are read (a burst of events costs one read).
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// Jobs shown (the newest).
pub const MAX_JOBS: usize = 100;
/// Sandbox event streams followed at once.
pub const MAX_WATCHED: usize = 32;
/// Backlog of the detail pane's subject.
const DETAIL_TAIL: u32 = 200;

/// What the background tasks report to the run loop.
#[derive(Debug)]
pub enum Update {
    /// A key was pressed.
    Key(crossterm::event::KeyEvent),
    /// The terminal changed size.
    Resize,
    /// Fresh lists.
    Lists(Vec<Sandbox>, Vec<Job>),
    /// An event of a followed stream.
    Event(Box<Event>),
    /// A message for the status line (action results, errors).
    Status(String),
}

/// Reads the live sandboxes and the newest jobs.
pub async fn lists(
    client: &Client,
) -> Result<(Vec<Sandbox>, Vec<Job>), agentlab_client::ClientError> {
    let sandboxes = client.list_sandboxes(&SandboxFilter::default()).await?;
    let jobs = client.get_all("/v1/jobs", "cursor", Some(MAX_JOBS)).await?;
    Ok((sandboxes, jobs))
}

/// The running background tasks.
#[derive(Debug)]
pub struct Feed {
    client: Client,
    tx: mpsc::Sender<Update>,
    poke: Arc<Notify>,
    newest: Arc<AtomicI64>,
    poller: JoinHandle<()>,
    watchers: HashMap<Vmid, JoinHandle<()>>,
    detail: Option<(Target, JoinHandle<()>)>,
}

impl Feed {
    /// Starts the list poller.
    pub fn start(client: Client, tx: mpsc::Sender<Update>) -> Self {
        let poke = Arc::new(Notify::new());
        let poller = tokio::spawn(poll(client.clone(), tx.clone(), Arc::clone(&poke)));
        Self {
            client,
            tx,
            poke,
            newest: Arc::new(AtomicI64::new(0)),
            poller,
            watchers: HashMap::new(),
            detail: None,
        }
    }

    /// Asks for fresh lists now.
    pub fn refresh(&self) {
        self.poke.notify_one();
    }

    /// Follows exactly the event streams of `live` (the first [`MAX_WATCHED`]).
    pub fn watch(&mut self, live: &[Vmid]) {
        let keep: Vec<Vmid> = live.iter().copied().take(MAX_WATCHED).collect();
        self.watchers.retain(|v, task| {
            let stay = keep.contains(v) && !task.is_finished();
            if !stay {
                task.abort();
            }
            stay
        });
        for vmid in keep {
            if self.watchers.contains_key(&vmid) {
                continue;
            }
            let path = with_query(
                &Target::Sandbox(vmid).events_path(),
                &[("tail", Some("1".into())), ("follow", Some("true".into()))],
            );
            let task = tokio::spawn(self.follow(path));
            self.watchers.insert(vmid, task);
        }
    }

    /// Follows the detail pane's subject (nothing when `None`).
    pub fn show(&mut self, target: Option<Target>) {
        if self.detail.as_ref().map(|(t, _)| t) == target.as_ref() {
            return;
        }
        if let Some((_, task)) = self.detail.take() {
            task.abort();
        }
        self.detail = target.map(|t| {
            let path = with_query(
                &t.events_path(),
                &[
                    ("tail", Some(DETAIL_TAIL.to_string())),
                    ("follow", Some("true".into())),
                ],
            );
            (t, tokio::spawn(self.follow(path)))
        });
    }

    /// Runs `fut` (an action) in the background; its message goes to the status line and
    /// the lists are read again.
    pub fn act(&self, fut: impl Future<Output = String> + Send + 'static) {
        let (tx, poke) = (self.tx.clone(), Arc::clone(&self.poke));
        tokio::spawn(async move {
            let message = fut.await;
            let _ = tx.send(Update::Status(message)).await;
            poke.notify_one();
        });
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.poller.abort();
        self.watchers.values().for_each(JoinHandle::abort);
        if let Some((_, task)) = &self.detail {
            task.abort();
        }
    }
}

/// Reads the lists on every poke and every [`POLL`]; a failure goes to the status line once
/// per distinct message.
async fn poll(client: Client, tx: mpsc::Sender<Update>, poke: Arc<Notify>) {
    let mut last_error = None;
    loop {
        let update = match lists(&client).await {
            Ok((s, j)) => {
                if last_error.take().is_some() {
                    let _ = tx
                        .send(Update::Status("agentlabd answers again".into()))
                        .await;
                }
                Update::Lists(s, j)
            }
            Err(e) => {
                let message = format!("refresh failed: {e}");
                tracing::debug!(error = %e, "top: list refresh failed");
                if last_error.as_ref() == Some(&message) {
                    wait(&poke).await;
                    continue;
                }
                last_error = Some(message.clone());
                Update::Status(message)
            }
        };
        if tx.send(update).await.is_err() {
            return;
        }
        wait(&poke).await;
    }
}

/// Until a poke (plus the debounce) or the poll interval.
async fn wait(poke: &Notify) {
    if tokio::time::timeout(POLL, poke.notified()).await.is_ok() {
        tokio::time::sleep(DEBOUNCE).await;
    }
}

impl Feed {
    /// A task streaming the events at `path` to the run loop.
    fn follow(&self, path: String) -> impl Future<Output = ()> + Send + 'static {
        follow(
            self.client.clone(),
            path,
            self.tx.clone(),
            Arc::clone(&self.poke),
            Arc::clone(&self.newest),
        )
    }
}

/// Streams the events at `path` to the run loop. An event newer than any seen before pokes
/// the list poller; a backlog event seen already does not (a reconnecting stream must not
/// cause a read per reconnection).
async fn follow(
    client: Client,
    path: String,
    tx: mpsc::Sender<Update>,
    poke: Arc<Notify>,
    newest: Arc<AtomicI64>,
) {
    let mut stream = match client.stream_lines(&path).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%path, error = %e, "top: cannot follow events");
            return;
        }
    };
    loop {
        match stream.next_json::<Event>().await {
            Ok(Some(event)) => {
                let new = newest.fetch_max(event.id, Ordering::SeqCst) < event.id;
                if tx.send(Update::Event(Box::new(event))).await.is_err() {
                    return;
                }
                if new {
                    poke.notify_one();
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%path, error = %e, "top: event stream broke off");
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "feed_tests.rs"]
mod tests;
