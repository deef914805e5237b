//! `impl StateStore for SqliteStore`: each method clones its arguments into a blocking task
//! and calls the table module.

use async_trait::async_trait;

use super::conn::SqliteStore;
use super::{artifacts, counts, events, jobs, prune, sandboxes, tokens, workspaces};
use crate::event::{Event, EventQuery, NewEvent};
use crate::ids::{JobId, Vmid, WorkspaceId};
use crate::model::{Artifact, BootstrapToken, Job, Sandbox, Workspace};
use crate::state::{JobState, SandboxState};
use crate::store::{
    JobFilter, JobPage, PrunedJobs, RunnerTokenIssue, SandboxFilter, StateCounts, StateStore,
    StateStoreError, TokenCheck, TokenStatus,
};
use crate::time::Timestamp;

#[async_trait]
impl StateStore for SqliteStore {
    async fn insert_sandbox(&self, sandbox: &Sandbox) -> Result<(), StateStoreError> {
        let sb = sandbox.clone();
        self.run(move |c| sandboxes::insert(c, &sb)).await
    }

    async fn get_sandbox(&self, vmid: Vmid) -> Result<Sandbox, StateStoreError> {
        self.run(move |c| sandboxes::get(c, vmid)).await
    }

    async fn list_sandboxes(
        &self,
        filter: &SandboxFilter,
    ) -> Result<Vec<Sandbox>, StateStoreError> {
        let filter = filter.clone();
        self.run(move |c| sandboxes::list(c, &filter)).await
    }

    async fn update_sandbox(
        &self,
        sandbox: &Sandbox,
        expected: SandboxState,
    ) -> Result<(), StateStoreError> {
        let sb = sandbox.clone();
        self.run(move |c| sandboxes::update(c, &sb, expected)).await
    }

    async fn insert_job(&self, job: &Job) -> Result<(), StateStoreError> {
        let job = job.clone();
        self.run(move |c| jobs::insert(c, &job)).await
    }

    async fn get_job(&self, id: &JobId) -> Result<Job, StateStoreError> {
        let id = id.clone();
        self.run(move |c| jobs::get(c, &id)).await
    }

    async fn list_jobs_page(&self, filter: &JobFilter) -> Result<JobPage, StateStoreError> {
        let filter = filter.clone();
        self.run(move |c| jobs::page(c, &filter)).await
    }

    async fn counts(&self) -> Result<StateCounts, StateStoreError> {
        self.run(|c| counts::read(c)).await
    }

    async fn update_job(&self, job: &Job, expected: JobState) -> Result<(), StateStoreError> {
        let job = job.clone();
        self.run(move |c| jobs::update(c, &job, expected)).await
    }

    async fn insert_workspace(&self, ws: &Workspace) -> Result<(), StateStoreError> {
        let ws = ws.clone();
        self.run(move |c| workspaces::insert(c, &ws)).await
    }

    async fn get_workspace(&self, id_or_name: &str) -> Result<Workspace, StateStoreError> {
        let key = id_or_name.to_owned();
        self.run(move |c| workspaces::get(c, &key)).await
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StateStoreError> {
        self.run(|c| workspaces::list(c)).await
    }

    async fn update_workspace(
        &self,
        ws: &Workspace,
        expected_attached: Option<Vmid>,
    ) -> Result<(), StateStoreError> {
        let ws = ws.clone();
        self.run(move |c| workspaces::update(c, &ws, expected_attached))
            .await
    }

    async fn delete_workspace(&self, id: &WorkspaceId) -> Result<(), StateStoreError> {
        let id = id.clone();
        self.run(move |c| workspaces::delete(c, &id)).await
    }

    async fn put_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StateStoreError> {
        let token = token.clone();
        self.run(move |c| tokens::put(c, &token)).await
    }

    async fn consume_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
    ) -> Result<(), StateStoreError> {
        let presented = zeroize::Zeroizing::new(presented.to_owned());
        self.run(move |c| tokens::consume(c, vmid, &presented, now))
            .await
    }

    async fn redeem_bootstrap_token(
        &self,
        vmid: Vmid,
        presented: &str,
        now: Timestamp,
        issue: Option<&RunnerTokenIssue>,
    ) -> Result<TokenCheck, StateStoreError> {
        let presented = zeroize::Zeroizing::new(presented.to_owned());
        let issue = issue.cloned();
        self.run(move |c| tokens::redeem(c, vmid, &presented, now, issue.as_ref()))
            .await
    }

    async fn bootstrap_tokens(&self, vmid: Vmid) -> Result<Vec<TokenStatus>, StateStoreError> {
        self.run(move |c| tokens::list(c, vmid)).await
    }

    async fn delete_bootstrap_tokens(&self, vmid: Vmid) -> Result<(), StateStoreError> {
        self.run(move |c| tokens::delete_all(c, vmid)).await
    }

    async fn append_event(&self, event: NewEvent) -> Result<Event, StateStoreError> {
        self.run(move |c| events::append(c, event)).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StateStoreError> {
        let query = query.clone();
        self.run(move |c| events::query(c, &query)).await
    }

    async fn trim_job_logs(&self, job: &JobId, keep: u32) -> Result<u64, StateStoreError> {
        let job = job.clone();
        self.run(move |c| events::trim_job_logs(c, &job, keep))
            .await
    }

    async fn event_count(&self) -> Result<u64, StateStoreError> {
        self.run(|c| events::count(c)).await
    }

    async fn prune_events_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<u64, StateStoreError> {
        self.run(move |c| prune::events_before(c, before, batch))
            .await
    }

    async fn prune_jobs_finished_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<PrunedJobs, StateStoreError> {
        self.run(move |c| prune::jobs_finished_before(c, before, batch))
            .await
    }

    async fn put_artifact(&self, artifact: &Artifact) -> Result<(), StateStoreError> {
        let artifact = artifact.clone();
        self.run(move |c| artifacts::put(c, &artifact)).await
    }

    async fn list_artifacts(&self, job: &JobId) -> Result<Vec<Artifact>, StateStoreError> {
        let job = job.clone();
        self.run(move |c| artifacts::list(c, &job)).await
    }

    async fn artifacts_before(&self, before: Timestamp) -> Result<Vec<Artifact>, StateStoreError> {
        self.run(move |c| artifacts::before(c, before)).await
    }

    async fn delete_artifact(&self, job: &JobId, name: &str) -> Result<(), StateStoreError> {
        let (job, name) = (job.clone(), name.to_owned());
        self.run(move |c| artifacts::delete(c, &job, &name)).await
    }

    async fn artifact_bytes_total(&self) -> Result<u64, StateStoreError> {
        self.run(|c| prune::artifact_bytes(c)).await
    }
}
