//! `/v1/jobs` handlers, including artifact listing and download.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use agentlab_core::api::control::RunJobRequest;
use agentlab_core::engine::JobRequest;
use agentlab_core::{Artifact, Job, JobCursor, JobFilter, JobState};

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiJson, ApiPath, ApiQuery, job_id};
use crate::control::page::{self, Paged};
use crate::control::sandboxes::parse_states;

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Query of `GET /v1/jobs/{id}/artifacts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn create(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::control::auth::Caller>>,
    ApiJson(req): ApiJson<RunJobRequest>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    req.validate(&st.limits.config)?;
    crate::control::auth::check_profile(caller.as_deref(), &req.profile)?;
    let job = st
        .lab
        .run_job(JobRequest {
            repo: req.repo,
            git_ref: req.git_ref,
            task: req.task,
            profile: req.profile,
            agent: req.agent,
            ttl_minutes: req.ttl_minutes,
            keepalive: req.keepalive,
            workspace: req.workspace,
            result: req.result,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// One page of jobs, newest first (an index range in the store, however many jobs exist).
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<Job>, ApiError> {
    let states: Vec<JobState> = parse_states(q.state.as_deref())?;
    let limit = page::limit(q.limit, &st.limits.config)?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| c.parse::<JobCursor>().map_err(|_| page::bad_cursor(c)))
        .transpose()?;
    let page = st
        .lab
        .list_jobs_page(&JobFilter {
            states,
            limit: Some(limit),
            after,
        })
        .await?;
    Ok(Paged {
        items: page.jobs,
        next: page.next.map(|c| c.to_string()),
    })
}

pub async fn show(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(st.lab.job(&job_id(&id)?).await?))
}

pub async fn cancel(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(st.lab.cancel_job(&job_id(&id)?).await?))
}

/// One page of the job's artifacts, by name (a job holds few; the page is cut in memory).
pub async fn artifacts(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ArtifactsQuery>,
) -> Result<Paged<Artifact>, ApiError> {
    let id = job_id(&id)?;
    let limit = page::limit(q.limit, &st.limits.config)?;
    st.lab.job(&id).await?;
    let all = st
        .lab
        .deps()
        .store
        .list_artifacts(&id)
        .await
        .map_err(agentlab_core::engine::EngineError::from)?;
    Ok(Paged::slice(all, q.cursor.as_deref(), limit, |a| {
        a.name.clone()
    }))
}

pub async fn download(
    State(st): State<AppState>,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let list = st
        .lab
        .deps()
        .store
        .list_artifacts(&id)
        .await
        .map_err(agentlab_core::engine::EngineError::from)?;
    let art = list.into_iter().find(|a| a.name == name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "artifact_not_found",
            format!("Artifact {name} of job {id} not found"),
        )
    })?;
    let file = tokio::fs::File::open(st.artifacts.path(&id, &art.name))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "artifact_not_found",
                format!("Artifact file of {name} is missing: {e}"),
            )
        })?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, art.size)
        .header("x-sha256", art.sha256)
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}
