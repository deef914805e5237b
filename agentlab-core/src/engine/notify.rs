//! Push notification of store writes: [`crate::engine::Lab::new`] wraps the store in
//! [`NotifyingStore`], which announces every appended event and every job or sandbox write on
//! a broadcast channel ([`crate::engine::Lab::subscribe_changes`]). Followers (the daemon's
//! NDJSON event streams) wake on the announcement instead of polling; what they send still
//! comes from the store, so the order and completeness of a stream never depend on the
//! channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::event::{Event, EventQuery, NewEvent};
use crate::ids::{JobId, Vmid, WorkspaceId};
use crate::model::{Artifact, BootstrapToken, Job, Sandbox, Workspace};
use crate::state::{JobState, SandboxState};
use crate::store::{
    JobFilter, JobPage, RunnerTokenIssue, SandboxFilter, StateCounts, StateStore, StateStoreError,
    TokenCheck, TokenStatus,
};
use crate::time::Timestamp;

/// Announcements kept for slow receivers; one that falls further behind gets
/// `RecvError::Lagged` and re-reads the store.
const CAPACITY: usize = 4096;

/// What changed in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An event was appended (its id is committed when this is received).
    Event {
        /// The event's id.
        id: i64,
        /// Its job.
        job: Option<JobId>,
        /// Its sandbox.
        sandbox: Option<Vmid>,
    },
    /// A job was inserted or written.
    Job(JobId),
    /// A sandbox was inserted or written.
    Sandbox(Vmid),
}

/// A [`StateStore`] that announces its successful writes on a broadcast channel.
#[derive(Debug)]
pub struct NotifyingStore {
    inner: Arc<dyn StateStore>,
    changes: broadcast::Sender<Change>,
    sandbox_writes: AtomicU64,
}

impl NotifyingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn StateStore>) -> Self {
        let (changes, _) = broadcast::channel(CAPACITY);
        Self {
            inner,
            changes,
            sandbox_writes: AtomicU64::new(0),
        }
    }

    /// A receiver of every change announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// How many sandbox writes succeeded so far: a cheap way to tell whether anything that
    /// holds backend resources changed since a value was computed.
    pub fn sandbox_writes(&self) -> u64 {
        self.sandbox_writes.load(Ordering::Acquire)
    }

    fn announce<T>(
        &self,
        r: Result<T, StateStoreError>,
        change: impl FnOnce(&T) -> Change,
    ) -> Result<T, StateStoreError> {
        if let Ok(v) = &r {
            let change = change(v);
            if matches!(change, Change::Sandbox(_)) {
                self.sandbox_writes.fetch_add(1, Ordering::AcqRel);
            }
            // No receiver is not an error: nobody follows right now.
            let _ = self.changes.send(change);
        }
        r
    }
}

#[async_trait]
impl StateStore for NotifyingStore {
    async fn insert_sandbox(&self, sandbox: &Sandbox) -> Result<(), StateStoreError> {
        let r = self.inner.insert_sandbox(sandbox).await;
        self.announce(r, |()| Change::Sandbox(sandbox.vmid))
    }
    async fn get_sandbox(&self, vmid: Vmid) -> Result<Sandbox, StateStoreError> {
        self.inner.get_sandbox(vmid).await
    }
    async fn list_sandboxes(
        &self,
        filter: &SandboxFilter,
    ) -> Result<Vec<Sandbox>, StateStoreError> {
        self.inner.list_sandboxes(filter).await
    }
    async fn update_sandbox(
        &self,
        sandbox: &Sandbox,
        expected: SandboxState,
    ) -> Result<(), StateStoreError> {
        let r = self.inner.update_sandbox(sandbox, expected).await;
        self.announce(r, |()| Change::Sandbox(sandbox.vmid))
    }
    async fn insert_job(&self, job: &Job) -> Result<(), StateStoreError> {
        let r = self.inner.insert_job(job).await;
        self.announce(r, |()| Change::Job(job.id.clone()))
    }
    async fn get_job(&self, id: &JobId) -> Result<Job, StateStoreError> {
        self.inner.get_job(id).await
    }
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StateStoreError> {
        self.inner.list_jobs(filter).await
    }
    async fn list_jobs_page(&self, filter: &JobFilter) -> Result<JobPage, StateStoreError> {
        self.inner.list_jobs_page(filter).await
    }
    async fn counts(&self) -> Result<StateCounts, StateStoreError> {
        self.inner.counts().await
    }
    async fn update_job(&self, job: &Job, expected: JobState) -> Result<(), StateStoreError> {
        let r = self.inner.update_job(job, expected).await;
        self.announce(r, |()| Change::Job(job.id.clone()))
    }
    async fn insert_workspace(&self, ws: &Workspace) -> Result<(), StateStoreError> {
        self.inner.insert_workspace(ws).await
    }
    async fn get_workspace(&self, id_or_name: &str) -> Result<Workspace, StateStoreError> {
        self.inner.get_workspace(id_or_name).await
    }
    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StateStoreError> {
        self.inner.list_workspaces().await
    }
    async fn update_workspace(
        &self,
        ws: &Workspace,
        expected_attached: Option<Vmid>,
    ) -> Result<(), StateStoreError> {
        self.inner.update_workspace(ws, expected_attached).await
    }
    async fn delete_workspace(&self, id: &WorkspaceId) -> Result<(), StateStoreError> {
        self.inner.delete_workspace(id).await
    }
    async fn put_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StateStoreError> {
        self.inner.put_bootstrap_token(token).await
    }
    async fn consume_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
    ) -> Result<(), StateStoreError> {
        self.inner
            .consume_bootstrap_token(vmid, presented, now)
            .await
    }
    async fn redeem_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
        issue: Option<&RunnerTokenIssue>,
    ) -> Result<TokenCheck, StateStoreError> {
        let r = self
            .inner
            .redeem_bootstrap_token(vmid, presented, now, issue)
            .await;
        match issue {
            Some(i) => self.announce(r, |_| Change::Job(i.job.clone())),
            None => r,
        }
    }
    async fn bootstrap_tokens(&self, vmid: Vmid) -> Result<Vec<TokenStatus>, StateStoreError> {
        self.inner.bootstrap_tokens(vmid).await
    }
    async fn delete_bootstrap_tokens(&self, vmid: Vmid) -> Result<(), StateStoreError> {
        self.inner.delete_bootstrap_tokens(vmid).await
    }
    async fn append_event(&self, event: NewEvent) -> Result<Event, StateStoreError> {
        let r = self.inner.append_event(event).await;
        self.announce(r, |e| Change::Event {
            id: e.id,
            job: e.job.clone(),
            sandbox: e.sandbox,
        })
    }
    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StateStoreError> {
        self.inner.events(query).await
    }
    async fn trim_job_logs(&self, job: &JobId, keep: u32) -> Result<u64, StateStoreError> {
        self.inner.trim_job_logs(job, keep).await
    }
    async fn event_count(&self) -> Result<u64, StateStoreError> {
        self.inner.event_count().await
    }
    async fn prune_events_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<u64, StateStoreError> {
        self.inner.prune_events_before(before, batch).await
    }
    async fn prune_jobs_finished_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<crate::store::PrunedJobs, StateStoreError> {
        self.inner.prune_jobs_finished_before(before, batch).await
    }
    async fn put_artifact(&self, artifact: &Artifact) -> Result<(), StateStoreError> {
        self.inner.put_artifact(artifact).await
    }
    async fn list_artifacts(&self, job: &JobId) -> Result<Vec<Artifact>, StateStoreError> {
        self.inner.list_artifacts(job).await
    }
    async fn artifacts_before(&self, before: Timestamp) -> Result<Vec<Artifact>, StateStoreError> {
        self.inner.artifacts_before(before).await
    }
    async fn delete_artifact(&self, job: &JobId, name: &str) -> Result<(), StateStoreError> {
        self.inner.delete_artifact(job, name).await
    }
    async fn artifact_bytes_total(&self) -> Result<u64, StateStoreError> {
        self.inner.artifact_bytes_total().await
    }
}
