//! Typed calls of the control API: one method per route the CLI and the MCP server use, each
//! taking and returning the wire types of `agentlab_core::api::control` and the domain model.
//! List routes are read page by page to the end.

use agentlab_core::api::control::{
    CreateSandboxRequest, ProfileSummary, RenewLeaseRequest, RunJobRequest, SandboxDetail,
    StatusResponse,
};
use agentlab_core::{Artifact, Event, Job, JobId, Sandbox, SandboxState, Vmid};

use crate::client::{Client, seg, with_query};
use crate::error::ClientError;
use crate::stream::{Download, LineStream};

/// Which sandboxes [`Client::list_sandboxes`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFilter {
    /// Only these states (all but DESTROYED when empty).
    pub states: Vec<SandboxState>,
    /// Only sandboxes of this profile.
    pub profile: Option<String>,
    /// Include DESTROYED sandboxes.
    pub all: bool,
}

impl SandboxFilter {
    /// The list route with this filter as its query.
    pub fn path(&self) -> String {
        let states = self
            .states
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        with_query(
            "/v1/sandboxes",
            &[
                ("state", (!states.is_empty()).then_some(states)),
                ("profile", self.profile.clone()),
                ("all", self.all.then(|| "true".to_owned())),
            ],
        )
    }
}

impl Client {
    /// `POST /v1/tokens`: issues an API token (Unix socket only); the answer carries the
    /// token text once.
    pub async fn create_token(
        &self,
        req: &agentlab_core::api_token::NewApiToken,
    ) -> Result<agentlab_core::api_token::CreatedApiToken, ClientError> {
        self.post("/v1/tokens", req).await
    }

    /// `GET /v1/tokens`: every API token (never a secret).
    pub async fn list_tokens(
        &self,
    ) -> Result<Vec<agentlab_core::api_token::ApiToken>, ClientError> {
        self.get("/v1/tokens").await
    }

    /// `DELETE /v1/tokens/{id}`: revokes a token by id or name.
    pub async fn revoke_token(
        &self,
        id_or_name: &str,
    ) -> Result<agentlab_core::api_token::ApiToken, ClientError> {
        self.delete(&format!("/v1/tokens/{}", seg(id_or_name)))
            .await
    }

    /// `GET /v1/status`: daemon version, backend health and counts per state.
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.get("/v1/status").await
    }

    /// `GET /v1/profiles`: every profile of the daemon.
    pub async fn list_profiles(&self) -> Result<Vec<ProfileSummary>, ClientError> {
        self.get_all("/v1/profiles", "cursor", None).await
    }

    /// `GET /v1/sandboxes`: the sandboxes matching `filter`.
    pub async fn list_sandboxes(
        &self,
        filter: &SandboxFilter,
    ) -> Result<Vec<Sandbox>, ClientError> {
        self.get_all(&filter.path(), "cursor", None).await
    }

    /// `GET /v1/sandboxes/{vmid}`: one sandbox with its resource usage when the backend
    /// measures it.
    pub async fn show_sandbox(&self, vmid: Vmid) -> Result<SandboxDetail, ClientError> {
        self.get(&format!("/v1/sandboxes/{vmid}")).await
    }

    /// `POST /v1/sandboxes`: requests a sandbox; it comes back REQUESTED and is provisioned in
    /// the background.
    pub async fn create_sandbox(&self, req: &CreateSandboxRequest) -> Result<Sandbox, ClientError> {
        self.post("/v1/sandboxes", req).await
    }

    /// `DELETE /v1/sandboxes/{vmid}`: destroys a sandbox. The answer is DESTROYED, or still
    /// DESTROYING (with `last_error`) when the attempt failed and the daemon retries it.
    pub async fn destroy_sandbox(&self, vmid: Vmid) -> Result<Sandbox, ClientError> {
        self.delete(&format!("/v1/sandboxes/{vmid}")).await
    }

    /// `POST /v1/sandboxes/{vmid}/lease/renew`: extends the lease from now by `ttl_minutes`
    /// (the lease's own length when `None`).
    pub async fn renew_lease(
        &self,
        vmid: Vmid,
        ttl_minutes: Option<u32>,
    ) -> Result<Sandbox, ClientError> {
        let body = RenewLeaseRequest { ttl_minutes };
        self.post(&format!("/v1/sandboxes/{vmid}/lease/renew"), &body)
            .await
    }

    /// `POST /v1/jobs`: submits a job; it comes back QUEUED.
    pub async fn run_job(&self, req: &RunJobRequest) -> Result<Job, ClientError> {
        self.post("/v1/jobs", req).await
    }

    /// `GET /v1/jobs/{id}`: one job and its outcome.
    pub async fn show_job(&self, job: &JobId) -> Result<Job, ClientError> {
        self.get(&format!("/v1/jobs/{job}")).await
    }

    /// `POST /v1/jobs/{id}/cancel`: cancels a job; its sandbox is torn down.
    pub async fn cancel_job(&self, job: &JobId) -> Result<Job, ClientError> {
        self.post_empty(&format!("/v1/jobs/{job}/cancel")).await
    }

    /// `GET /v1/jobs/{id}/events`: the job's events so far (only the last `tail` when given),
    /// oldest first.
    pub async fn job_events(
        &self,
        job: &JobId,
        tail: Option<u32>,
    ) -> Result<Vec<Event>, ClientError> {
        let base = format!("/v1/jobs/{job}/events");
        let first = with_query(&base, &[("tail", tail.map(|n| n.to_string()))]);
        self.get_pages(&first, &base, "after", None).await
    }

    /// `GET /v1/jobs/{id}/events?follow=true`: the job's events after event `after` (from
    /// the first when `None`) as a live NDJSON stream that the daemon ends when the job is
    /// over.
    pub async fn follow_job_events(
        &self,
        job: &JobId,
        after: Option<i64>,
    ) -> Result<LineStream, ClientError> {
        let path = with_query(
            &format!("/v1/jobs/{job}/events"),
            &[
                ("after", after.map(|a| a.to_string())),
                ("follow", Some("true".into())),
            ],
        );
        self.stream_lines(&path).await
    }

    /// `GET /v1/jobs/{id}/artifacts`: the job's stored artifacts.
    pub async fn list_artifacts(&self, job: &JobId) -> Result<Vec<Artifact>, ClientError> {
        self.get_all(&format!("/v1/jobs/{job}/artifacts"), "cursor", None)
            .await
    }

    /// `GET /v1/jobs/{id}/artifacts/{name}`: one artifact's bytes, read chunk by chunk (the
    /// `x-sha256` header carries its digest).
    pub async fn download_artifact(
        &self,
        job: &JobId,
        name: &str,
    ) -> Result<Download, ClientError> {
        self.download(&format!("/v1/jobs/{job}/artifacts/{}", seg(name)))
            .await
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
