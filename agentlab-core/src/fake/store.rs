//! [`MemoryStore`]: an in-memory [`StateStore`] with exactly the semantics of
//! [`crate::sqlite::SqliteStore`] (both pass [`crate::testkit::store::state_store_conformance`]).
//!
//! All data sits in maps behind one `std::sync::Mutex`; every method locks, works and unlocks
//! without awaiting. Like the SQLite store it keeps only token hashes, never token values.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::event::{Event, EventKind, EventQuery, NewEvent};
use crate::ids::{JobId, Vmid, WorkspaceId};
use crate::model::{Artifact, BootstrapToken, Job, Sandbox, Workspace};
use crate::state::{JobState, SandboxState};
use crate::store::{
    JobFilter, JobPage, PrunedJobs, RunnerTokenIssue, SandboxFilter, StateCounts, StateStore,
    StateStoreError, TokenCheck, TokenStatus, check_job_transition, check_sandbox_transition,
};
use crate::time::Timestamp;
use crate::token::token_matches;

mod prune;
mod query;

/// An in-memory [`StateStore`] for tests and for embedding without a database.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// API tokens (see `api_tokens.rs`).
    pub(super) api_tokens: Mutex<Vec<crate::api_token::ApiToken>>,
}

#[derive(Debug, Default)]
struct Inner {
    sandboxes: BTreeMap<Vmid, Sandbox>,
    /// Jobs with their insertion sequence number (the tie-break of "newest first").
    jobs: BTreeMap<JobId, (u64, Job)>,
    job_seq: u64,
    workspaces: BTreeMap<WorkspaceId, Workspace>,
    /// Token records and whether each was consumed.
    tokens: Vec<(BootstrapToken, bool)>,
    events: Vec<Event>,
    last_event_id: i64,
    artifacts: BTreeMap<(JobId, String), Artifact>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn attached_str(v: Option<Vmid>) -> String {
    v.map_or_else(|| "detached".to_owned(), |v| v.to_string())
}

fn event_matches(e: &Event, q: &EventQuery) -> bool {
    q.sandbox.is_none_or(|s| e.sandbox == Some(s))
        && q.job.as_ref().is_none_or(|j| e.job.as_ref() == Some(j))
        && q.after.is_none_or(|a| e.id > a)
        && (q.kinds.is_empty() || q.kinds.contains(&e.kind))
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn insert_sandbox(&self, sandbox: &Sandbox) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        if let Some(old) = inner.sandboxes.get(&sandbox.vmid)
            && old.state != SandboxState::Destroyed
        {
            return Err(StateStoreError::AlreadyExists {
                kind: "sandbox",
                id: sandbox.vmid.to_string(),
            });
        }
        inner.sandboxes.insert(sandbox.vmid, sandbox.clone());
        Ok(())
    }

    async fn get_sandbox(&self, vmid: Vmid) -> Result<Sandbox, StateStoreError> {
        self.lock()
            .sandboxes
            .get(&vmid)
            .cloned()
            .ok_or_else(|| StateStoreError::NotFound {
                kind: "sandbox",
                id: vmid.to_string(),
            })
    }

    async fn list_sandboxes(
        &self,
        filter: &SandboxFilter,
    ) -> Result<Vec<Sandbox>, StateStoreError> {
        let inner = self.lock();
        Ok(inner
            .sandboxes
            .values()
            .filter(|s| {
                if filter.states.is_empty() {
                    filter.include_destroyed || s.state != SandboxState::Destroyed
                } else {
                    filter.states.contains(&s.state)
                }
            })
            .filter(|s| filter.profile.as_ref().is_none_or(|p| &s.profile == p))
            .filter(|s| filter.after.is_none_or(|a| s.vmid > a))
            .take(filter.limit.map_or(usize::MAX, |l| l as usize))
            .cloned()
            .collect())
    }

    async fn update_sandbox(
        &self,
        sandbox: &Sandbox,
        expected: SandboxState,
    ) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        let stored = inner.sandboxes.get(&sandbox.vmid).map(|s| s.state);
        if expected != sandbox.state && !expected.can_transition_to(sandbox.state) {
            return check_sandbox_transition(sandbox.vmid, expected, expected, sandbox.state);
        }
        let stored = stored.ok_or_else(|| StateStoreError::NotFound {
            kind: "sandbox",
            id: sandbox.vmid.to_string(),
        })?;
        check_sandbox_transition(sandbox.vmid, stored, expected, sandbox.state)?;
        inner.sandboxes.insert(sandbox.vmid, sandbox.clone());
        Ok(())
    }

    async fn insert_job(&self, job: &Job) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        if inner.jobs.contains_key(&job.id) {
            return Err(StateStoreError::AlreadyExists {
                kind: "job",
                id: job.id.to_string(),
            });
        }
        inner.job_seq += 1;
        let seq = inner.job_seq;
        inner.jobs.insert(job.id.clone(), (seq, job.clone()));
        Ok(())
    }

    async fn get_job(&self, id: &JobId) -> Result<Job, StateStoreError> {
        self.lock()
            .jobs
            .get(id)
            .map(|(_, j)| j.clone())
            .ok_or_else(|| StateStoreError::NotFound {
                kind: "job",
                id: id.to_string(),
            })
    }

    async fn list_jobs_page(&self, filter: &JobFilter) -> Result<JobPage, StateStoreError> {
        Ok(query::job_page(&self.lock(), filter))
    }

    async fn counts(&self) -> Result<StateCounts, StateStoreError> {
        Ok(query::counts(&self.lock()))
    }

    async fn update_job(&self, job: &Job, expected: JobState) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        if expected != job.state && !expected.can_transition_to(job.state) {
            return check_job_transition(&job.id, expected, expected, job.state);
        }
        let Some((_, stored)) = inner.jobs.get_mut(&job.id) else {
            return Err(StateStoreError::NotFound {
                kind: "job",
                id: job.id.to_string(),
            });
        };
        check_job_transition(&job.id, stored.state, expected, job.state)?;
        *stored = job.clone();
        Ok(())
    }

    async fn insert_workspace(&self, ws: &Workspace) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        if inner.workspaces.contains_key(&ws.id) {
            return Err(StateStoreError::AlreadyExists {
                kind: "workspace",
                id: ws.id.to_string(),
            });
        }
        if inner.workspaces.values().any(|w| w.name == ws.name) {
            return Err(StateStoreError::AlreadyExists {
                kind: "workspace",
                id: ws.name.clone(),
            });
        }
        inner.workspaces.insert(ws.id.clone(), ws.clone());
        Ok(())
    }

    async fn get_workspace(&self, id_or_name: &str) -> Result<Workspace, StateStoreError> {
        let inner = self.lock();
        let by_id = inner
            .workspaces
            .values()
            .find(|w| w.id.as_str() == id_or_name);
        by_id
            .or_else(|| inner.workspaces.values().find(|w| w.name == id_or_name))
            .cloned()
            .ok_or_else(|| StateStoreError::NotFound {
                kind: "workspace",
                id: id_or_name.to_owned(),
            })
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StateStoreError> {
        let mut all: Vec<Workspace> = self.lock().workspaces.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn update_workspace(
        &self,
        ws: &Workspace,
        expected_attached: Option<Vmid>,
    ) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        let Some(stored) = inner.workspaces.get(&ws.id) else {
            return Err(StateStoreError::NotFound {
                kind: "workspace",
                id: ws.id.to_string(),
            });
        };
        if stored.attached_to != expected_attached {
            return Err(StateStoreError::Conflict {
                kind: "workspace",
                id: ws.id.to_string(),
                expected: attached_str(expected_attached),
                actual: attached_str(stored.attached_to),
            });
        }
        if inner
            .workspaces
            .values()
            .any(|w| w.name == ws.name && w.id != ws.id)
        {
            return Err(StateStoreError::AlreadyExists {
                kind: "workspace",
                id: ws.name.clone(),
            });
        }
        inner.workspaces.insert(ws.id.clone(), ws.clone());
        Ok(())
    }

    async fn delete_workspace(&self, id: &WorkspaceId) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        let Some(stored) = inner.workspaces.get(id) else {
            return Err(StateStoreError::NotFound {
                kind: "workspace",
                id: id.to_string(),
            });
        };
        if let Some(vmid) = stored.attached_to {
            return Err(StateStoreError::Conflict {
                kind: "workspace",
                id: id.to_string(),
                expected: attached_str(None),
                actual: vmid.to_string(),
            });
        }
        inner.workspaces.remove(id);
        Ok(())
    }

    async fn put_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StateStoreError> {
        self.lock().tokens.push((token.clone(), false));
        Ok(())
    }

    async fn consume_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
    ) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        let mut winner = None;
        for (i, (t, consumed)) in inner.tokens.iter().enumerate() {
            let usable = t.vmid == vmid && !*consumed && now < t.expires_at;
            if usable && token_matches(presented, &t.hash) {
                winner = Some(i);
            }
        }
        let i = winner.ok_or_else(|| StateStoreError::NotFound {
            kind: "bootstrap token",
            id: vmid.to_string(),
        })?;
        inner.tokens[i].1 = true;
        Ok(())
    }

    async fn redeem_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
        issue: Option<&RunnerTokenIssue>,
    ) -> Result<TokenCheck, StateStoreError> {
        // One lock for the check, the token's use and the runner token: all or nothing.
        let mut inner = self.lock();
        let mut found = None;
        for (i, (t, _)) in inner.tokens.iter().enumerate() {
            if t.vmid == vmid && token_matches(presented, &t.hash) {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            return Ok(TokenCheck::Unknown);
        };
        let (token, consumed) = &inner.tokens[i];
        if *consumed {
            return Ok(TokenCheck::Used);
        }
        if token.expires_at <= now {
            return Ok(TokenCheck::Expired);
        }
        if let Some(issue) = issue {
            let (_, job) =
                inner
                    .jobs
                    .get_mut(&issue.job)
                    .ok_or_else(|| StateStoreError::NotFound {
                        kind: "job",
                        id: issue.job.to_string(),
                    })?;
            if job.state != JobState::Queued {
                return Err(StateStoreError::Conflict {
                    kind: "job",
                    id: issue.job.to_string(),
                    expected: JobState::Queued.to_string(),
                    actual: job.state.to_string(),
                });
            }
            job.runner_token_hash = Some(issue.hash.clone());
            job.updated_at = now;
        }
        inner.tokens[i].1 = true;
        Ok(TokenCheck::Accepted)
    }

    async fn bootstrap_tokens(&self, vmid: Vmid) -> Result<Vec<TokenStatus>, StateStoreError> {
        Ok(self
            .lock()
            .tokens
            .iter()
            .filter(|(t, _)| t.vmid == vmid)
            .map(|(t, consumed)| TokenStatus {
                expires_at: t.expires_at,
                consumed: *consumed,
            })
            .collect())
    }

    async fn delete_bootstrap_tokens(&self, vmid: Vmid) -> Result<(), StateStoreError> {
        self.lock().tokens.retain(|(t, _)| t.vmid != vmid);
        Ok(())
    }

    async fn append_event(&self, event: NewEvent) -> Result<Event, StateStoreError> {
        let mut inner = self.lock();
        inner.last_event_id += 1;
        let stored = Event {
            id: inner.last_event_id,
            ts: event.ts,
            kind: event.kind,
            sandbox: event.sandbox,
            job: event.job,
            message: event.message,
            payload: event.payload,
        };
        inner.events.push(stored.clone());
        Ok(stored)
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StateStoreError> {
        let inner = self.lock();
        let matching: Vec<&Event> = inner
            .events
            .iter()
            .filter(|e| event_matches(e, query))
            .collect();
        let skip = query
            .tail
            .map_or(0, |t| matching.len().saturating_sub(t as usize));
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        Ok(matching
            .into_iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn trim_job_logs(&self, job: &JobId, keep: u32) -> Result<u64, StateStoreError> {
        let mut inner = self.lock();
        let is_log = |e: &Event| e.kind == EventKind::JobLog && e.job.as_ref() == Some(job);
        let total = inner.events.iter().filter(|e| is_log(e)).count();
        let mut to_delete = total.saturating_sub(keep as usize);
        let deleted = to_delete as u64;
        inner.events.retain(|e| {
            if to_delete > 0 && is_log(e) {
                to_delete -= 1;
                false
            } else {
                true
            }
        });
        Ok(deleted)
    }

    async fn event_count(&self) -> Result<u64, StateStoreError> {
        Ok(self.lock().events.len() as u64)
    }

    async fn prune_events_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<u64, StateStoreError> {
        Ok(prune::events_before(&mut self.lock(), before, batch))
    }

    async fn prune_jobs_finished_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<PrunedJobs, StateStoreError> {
        Ok(prune::jobs_finished_before(&mut self.lock(), before, batch))
    }

    async fn artifact_bytes_total(&self) -> Result<u64, StateStoreError> {
        Ok(prune::artifact_bytes(&self.lock()))
    }

    async fn put_artifact(&self, artifact: &Artifact) -> Result<(), StateStoreError> {
        let mut inner = self.lock();
        if !inner.jobs.contains_key(&artifact.job) {
            return Err(StateStoreError::NotFound {
                kind: "job",
                id: artifact.job.to_string(),
            });
        }
        inner.artifacts.insert(
            (artifact.job.clone(), artifact.name.clone()),
            artifact.clone(),
        );
        Ok(())
    }

    async fn list_artifacts(&self, job: &JobId) -> Result<Vec<Artifact>, StateStoreError> {
        // The map is ordered by (job, name), so one job's artifacts come sorted by name.
        Ok(self
            .lock()
            .artifacts
            .values()
            .filter(|a| &a.job == job)
            .cloned()
            .collect())
    }

    async fn artifacts_before(&self, before: Timestamp) -> Result<Vec<Artifact>, StateStoreError> {
        let mut old: Vec<Artifact> = self
            .lock()
            .artifacts
            .values()
            .filter(|a| a.created_at < before)
            .cloned()
            .collect();
        // Stable sort keeps the (job, name) order among equal timestamps.
        old.sort_by_key(|a| a.created_at);
        Ok(old)
    }

    async fn delete_artifact(&self, job: &JobId, name: &str) -> Result<(), StateStoreError> {
        self.lock()
            .artifacts
            .remove(&(job.clone(), name.to_owned()))
            .map(|_| ())
            .ok_or_else(|| StateStoreError::NotFound {
                kind: "artifact",
                id: format!("{job}/{name}"),
            })
    }
}
