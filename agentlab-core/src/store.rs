//! The [`StateStore`] trait: durable records of sandboxes, jobs, workspaces, tokens, events and
//! artifacts.
//!
//! State changes are compare-and-set: `update_*` writes only when the stored state still equals
//! `expected` (`UPDATE … WHERE state = expected`), and refuses transitions the state machine
//! does not allow. A lost race is [`StateStoreError::Conflict`].

use std::fmt;

use async_trait::async_trait;

use crate::event::{Event, EventQuery, NewEvent};
use crate::ids::{JobId, Vmid, WorkspaceId};
use crate::model::{Artifact, BootstrapToken, Job, Sandbox, Workspace};
use crate::state::{JobState, SandboxState};
pub use crate::store_page::{CursorError, JobCursor, JobPage, StateCounts};
use crate::time::Timestamp;

/// Errors of a [`StateStore`].
#[derive(Debug, thiserror::Error)]
pub enum StateStoreError {
    /// No such record.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Record kind (`sandbox`, `job`, …).
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A record with that id or unique name exists.
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// Record kind.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// Compare-and-set lost: the stored value is not the expected one.
    #[error("{kind} {id} changed concurrently: expected {expected}, found {actual}")]
    Conflict {
        /// Record kind.
        kind: &'static str,
        /// Its id.
        id: String,
        /// What the caller expected.
        expected: String,
        /// What the store holds.
        actual: String,
    },
    /// The state machine does not allow this transition.
    #[error("Illegal {kind} transition {from} -> {to}")]
    IllegalTransition {
        /// Record kind.
        kind: &'static str,
        /// Current state.
        from: String,
        /// Requested state.
        to: String,
    },
    /// The store cannot be used (file missing, locked, disk full).
    #[error("State store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (corrupt row, migration failure).
    #[error("State store error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What [`StateStore::redeem_bootstrap_token`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// The token was valid; it is now used (and the runner token stored, when asked).
    Accepted,
    /// The token matches a row that was already used.
    Used,
    /// The token matches a row that has expired.
    Expired,
    /// No row of the vmid matches.
    Unknown,
}

impl TokenCheck {
    /// `used`, `expired`, `unknown` (`accepted` for [`TokenCheck::Accepted`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
        }
    }
}

/// The runner token stored together with a bootstrap token's use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerTokenIssue {
    /// The job that receives it (must be QUEUED).
    pub job: JobId,
    /// SHA-256 (hex) of the runner token.
    pub hash: String,
}

/// One bootstrap token row, without its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenStatus {
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// Whether it was used.
    pub consumed: bool,
}

/// Filter for [`StateStore::list_sandboxes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFilter {
    /// Only these states (all when empty).
    pub states: Vec<SandboxState>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Include DESTROYED sandboxes (only when `states` is empty).
    pub include_destroyed: bool,
    /// Only vmids greater than this (the cursor of the vmid-ordered listing).
    pub after: Option<Vmid>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// Filter for [`StateStore::list_jobs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only these states (all when empty).
    pub states: Vec<JobState>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
    /// Only jobs after this position of the newest-first order (the previous page's
    /// [`JobPage::next`]).
    pub after: Option<JobCursor>,
}

/// Durable state. Every method runs its blocking work off the async threads.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// Inserts a new sandbox. A DESTROYED row with the same vmid is replaced; any other
    /// existing row is `AlreadyExists`.
    async fn insert_sandbox(&self, sandbox: &Sandbox) -> Result<(), StateStoreError>;
    /// Reads one sandbox.
    async fn get_sandbox(&self, vmid: Vmid) -> Result<Sandbox, StateStoreError>;
    /// Lists sandboxes ordered by vmid.
    async fn list_sandboxes(&self, filter: &SandboxFilter)
    -> Result<Vec<Sandbox>, StateStoreError>;
    /// Writes `sandbox` if the stored state is `expected` and `expected → sandbox.state` is a
    /// legal transition (or the same state).
    async fn update_sandbox(
        &self,
        sandbox: &Sandbox,
        expected: SandboxState,
    ) -> Result<(), StateStoreError>;

    /// Inserts a new job.
    async fn insert_job(&self, job: &Job) -> Result<(), StateStoreError>;
    /// Reads one job.
    async fn get_job(&self, id: &JobId) -> Result<Job, StateStoreError>;
    /// Lists jobs, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StateStoreError> {
        Ok(self.list_jobs_page(filter).await?.jobs)
    }
    /// One page of jobs, newest first, with the cursor of the next page (`None` when no job
    /// matching the filter follows). An index range in the SQLite store.
    async fn list_jobs_page(&self, filter: &JobFilter) -> Result<JobPage, StateStoreError>;
    /// Sandboxes and jobs per state, without reading the records (maintained on every write).
    async fn counts(&self) -> Result<StateCounts, StateStoreError>;
    /// Writes `job` if the stored state is `expected` and the transition is legal (or the same).
    async fn update_job(&self, job: &Job, expected: JobState) -> Result<(), StateStoreError>;

    /// Inserts a workspace; names are unique.
    async fn insert_workspace(&self, ws: &Workspace) -> Result<(), StateStoreError>;
    /// Reads a workspace by id or by name.
    async fn get_workspace(&self, id_or_name: &str) -> Result<Workspace, StateStoreError>;
    /// Lists workspaces ordered by name.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StateStoreError>;
    /// Writes `ws` if its stored `attached_to` equals `expected_attached` (compare-and-set).
    async fn update_workspace(
        &self,
        ws: &Workspace,
        expected_attached: Option<Vmid>,
    ) -> Result<(), StateStoreError>;
    /// Deletes a workspace; `Conflict` while it is attached.
    async fn delete_workspace(&self, id: &WorkspaceId) -> Result<(), StateStoreError>;

    /// Stores a bootstrap token hash.
    async fn put_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StateStoreError>;
    /// Atomically consumes the unexpired, unconsumed token of `vmid` whose hash matches
    /// `presented` (compared in constant time). `NotFound` for every kind of failure.
    async fn consume_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
    ) -> Result<(), StateStoreError>;
    /// Presents a bootstrap token of `vmid` and, in ONE transaction, marks the matching token
    /// used and (with `issue`) stores the job's runner token hash, only while the job is QUEUED.
    /// Every token row of the vmid is compared in constant time; used and expired rows are kept
    /// (hash only) so a refusal can name its reason. A job that is not QUEUED is `Conflict`
    /// and nothing is written.
    async fn redeem_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
        issue: Option<&RunnerTokenIssue>,
    ) -> Result<TokenCheck, StateStoreError>;
    /// The bootstrap tokens of `vmid` (expiry and whether used), oldest first.
    async fn bootstrap_tokens(&self, vmid: Vmid) -> Result<Vec<TokenStatus>, StateStoreError>;
    /// Deletes all bootstrap tokens of `vmid`.
    async fn delete_bootstrap_tokens(&self, vmid: Vmid) -> Result<(), StateStoreError>;

    /// Appends an event and returns it with its id.
    async fn append_event(&self, event: NewEvent) -> Result<Event, StateStoreError>;
    /// Reads events in ascending id order.
    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StateStoreError>;
    /// Deletes the oldest events of kind `job_log` of `job` beyond the newest `keep`.
    async fn trim_job_logs(&self, job: &JobId, keep: u32) -> Result<u64, StateStoreError>;
    /// Number of stored events (every kind), for the event store size metric.
    async fn event_count(&self) -> Result<u64, StateStoreError>;
    /// Deletes at most `batch` events with `ts < before`, oldest (by time, then id) first,
    /// in one short write. Kept whatever their age: events of a sandbox whose record is not
    /// DESTROYED and events of a job that has not ended. Returns how many were deleted; fewer
    /// than `batch` means nothing prunable is left.
    async fn prune_events_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<u64, StateStoreError>;
    /// Deletes ended jobs (terminal state) whose `ended_at` is before `before`, oldest
    /// first, each after all its events, in one short write of at most `batch` events and
    /// `batch` jobs: a job whose events do not fit is left (with the rest of its events) for
    /// the next call. Returns `(0, 0)` only when nothing prunable is left. A job with artifact
    /// records, or named by a sandbox that is not DESTROYED, is kept. Never touches QUEUED or
    /// RUNNING jobs.
    async fn prune_jobs_finished_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<PrunedJobs, StateStoreError>;

    /// Records an artifact (replacing one with the same job and name).
    async fn put_artifact(&self, artifact: &Artifact) -> Result<(), StateStoreError>;
    /// Artifacts of a job, by name.
    async fn list_artifacts(&self, job: &JobId) -> Result<Vec<Artifact>, StateStoreError>;
    /// Artifacts created before `before` (for retention GC).
    async fn artifacts_before(&self, before: Timestamp) -> Result<Vec<Artifact>, StateStoreError>;
    /// Deletes one artifact record.
    async fn delete_artifact(&self, job: &JobId, name: &str) -> Result<(), StateStoreError>;
    /// Sum of the sizes of every artifact record (the `max_artifact_bytes_total` quota).
    async fn artifact_bytes_total(&self) -> Result<u64, StateStoreError>;
}

/// What one [`StateStore::prune_jobs_finished_before`] call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunedJobs {
    /// Jobs deleted.
    pub jobs: u64,
    /// Their events deleted with them.
    pub events: u64,
}

/// Checks a sandbox write: `expected → next` must be legal (or equal), then the stored state
/// must equal `expected`. Shared by every store implementation.
pub fn check_sandbox_transition(
    vmid: Vmid,
    stored: SandboxState,
    expected: SandboxState,
    next: SandboxState,
) -> Result<(), StateStoreError> {
    if expected != next && !expected.can_transition_to(next) {
        return Err(StateStoreError::IllegalTransition {
            kind: "sandbox",
            from: expected.to_string(),
            to: next.to_string(),
        });
    }
    if stored != expected {
        return Err(StateStoreError::Conflict {
            kind: "sandbox",
            id: vmid.to_string(),
            expected: expected.to_string(),
            actual: stored.to_string(),
        });
    }
    Ok(())
}

/// Checks a job write like [`check_sandbox_transition`].
pub fn check_job_transition(
    id: &JobId,
    stored: JobState,
    expected: JobState,
    next: JobState,
) -> Result<(), StateStoreError> {
    if expected != next && !expected.can_transition_to(next) {
        return Err(StateStoreError::IllegalTransition {
            kind: "job",
            from: expected.to_string(),
            to: next.to_string(),
        });
    }
    if stored != expected {
        return Err(StateStoreError::Conflict {
            kind: "job",
            id: id.to_string(),
            expected: expected.to_string(),
            actual: stored.to_string(),
        });
    }
    Ok(())
}
