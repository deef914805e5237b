//! Runner routes, authenticated by the per-job runner token (`Authorization: Bearer …`):
//! status reports, log batches and artifact uploads.

use std::sync::PoisonError;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};

use agentlab_core::api::guest::{
    ArtifactReceipt, GuestJobState, LogBatch, LogStream, StatusReport,
};
use agentlab_core::engine::{EngineError, GuestReport};
use agentlab_core::{Artifact, Job, JobId, JobOutcome, JobState};

use crate::artifacts::{ArtifactStore, UploadError};
use crate::control::error::ApiError;
use crate::control::extract::{job_id, parse_json};
use crate::guest::GuestState;

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Runner token refused",
    )
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)
}

fn map(e: EngineError) -> ApiError {
    match e {
        EngineError::Forbidden => unauthorized(),
        other => ApiError::from(other),
    }
}

async fn authorize(st: &GuestState, id: &str, headers: &HeaderMap) -> Result<Job, ApiError> {
    let id = job_id(id).map_err(|_| unauthorized())?;
    let job = st
        .lab
        .authorize_runner(&id, bearer(headers)?)
        .await
        .map_err(map)?;
    ensure_redactor(st, &job).await;
    Ok(job)
}

/// After a daemon restart the per-job redactor is gone: rebuild it from the profile's bundle
/// (the runner token itself is unknown to the daemon, only its hash is stored).
async fn ensure_redactor(st: &GuestState, job: &Job) {
    let known = st
        .redactors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(&job.id);
    if known || job.state.is_terminal() {
        return;
    }
    let bundle = st
        .lab
        .profiles()
        .get(&job.profile)
        .and_then(|p| p.secrets_bundle.clone());
    let Some(name) = bundle else { return };
    match st.lab.deps().secrets.load(&name).await {
        Ok(b) => {
            let r = std::sync::Arc::new(agentlab_core::redact::Redactor::from_bundle(&b));
            st.redactors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(job.id.clone(), r);
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %agentlab_core::engine::chain(&e), "cannot rebuild the log redactor");
        }
    }
}

pub async fn status(
    State(st): State<GuestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = authorize(&st, &id, &headers).await?;
    let r: StatusReport = parse_json(&body)?;
    let redact = |s: Option<String>| s.map(|t| redact_text(&st, &job.id, &t));
    let state = match r.state {
        GuestJobState::Running => JobState::Running,
        GuestJobState::Completed => JobState::Completed,
        GuestJobState::Failed => JobState::Failed,
        GuestJobState::Timeout => JobState::Timeout,
    };
    let report = GuestReport {
        state,
        step: redact(r.step),
        outcome: JobOutcome {
            exit_code: r.exit_code,
            duration_ms: r.duration_ms,
            commit: r.commit,
            summary: redact(r.summary),
            failed_step: r.failed_step,
            error: redact(r.error),
        },
    };
    let token = bearer(&headers)?.to_owned();
    st.lab
        .report_status(&job.id, &token, report)
        .await
        .map_err(map)?;
    if state != JobState::Running {
        st.redactors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&job.id);
    }
    Ok(Json(serde_json::json!({})))
}

pub async fn logs(
    State(st): State<GuestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = authorize(&st, &id, &headers).await?;
    let batch: LogBatch = parse_json(&body)?;
    let lines = batch
        .lines
        .into_iter()
        .map(|l| {
            let text = redact_text(&st, &job.id, &l.line);
            match l.stream {
                LogStream::Stdout => text,
                LogStream::Stderr => format!("[stderr] {text}"),
                LogStream::Runner => format!("[runner] {text}"),
            }
        })
        .collect();
    st.lab
        .append_logs(&job.id, bearer(&headers)?, lines)
        .await
        .map_err(map)?;
    Ok(Json(serde_json::json!({})))
}

pub async fn artifact(
    State(st): State<GuestState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ArtifactReceipt>, ApiError> {
    let job = authorize(&st, &id, &headers).await?;
    if !ArtifactStore::valid_name(&name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("Invalid artifact name {name:?}"),
        ));
    }
    let profile_max = st
        .lab
        .profiles()
        .get(&job.profile)
        .map_or(st.artifact_max_bytes, |p| p.artifacts.max_bytes);
    let limit = profile_max
        .min(st.artifact_max_bytes)
        .saturating_sub(st.artifacts.used(&job.id).await);
    let stream = body.into_data_stream();
    let (size, sha256) = st
        .artifacts
        .receive(&job.id, &name, stream, limit)
        .await
        .map_err(|e| match e {
            UploadError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            UploadError::Io(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "upload_failed",
                e.to_string(),
            ),
        })?;
    let (size, sha256) = crate::artifact_scan::check(&st, &job.id, &name, size, sha256).await?;
    let art = Artifact {
        job: job.id.clone(),
        name: name.clone(),
        size,
        sha256: sha256.clone(),
        created_at: st.lab.deps().clock.now(),
    };
    st.lab.record_artifact(&art).await.map_err(map)?;
    Ok(Json(ArtifactReceipt { name, size, sha256 }))
}

fn redact_text(st: &GuestState, job: &JobId, text: &str) -> String {
    let r = st
        .redactors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(job)
        .cloned();
    match r {
        Some(r) => r.redact(text),
        None => text.to_owned(),
    }
}
