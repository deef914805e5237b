//! Runner routes, authenticated by the per-job runner token (`Authorization: Bearer …`):
//! status reports, log batches and artifact uploads.

use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};

use agentlab_core::api::guest::{
    ArtifactReceipt, CODE_JOB_ENDED, GuestJobState, LogBatch, LogStream, StatusReport,
};
use agentlab_core::engine::{EngineError, GuestReport};
use agentlab_core::model::JobPushed;
use agentlab_core::redact::Redactor;
use agentlab_core::{Artifact, Job, JobOutcome, JobState, SecretBundle};

use crate::artifacts::{ArtifactStore, UploadError};
use crate::error::ApiError;
use crate::extract::{job_id, parse_json};
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

/// An upload over a quota: 413 `quota_exceeded` naming the limit, and an event on the job.
async fn quota_refused(
    st: &GuestState,
    job: &agentlab_core::JobId,
    q: agentlab_core::quota::QuotaExceeded,
) -> ApiError {
    st.lab.record_quota_refusal(Some(job), &q).await;
    let details = serde_json::to_value(&q).unwrap_or_default();
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota_exceeded",
        q.to_string(),
    )
    .details(details)
}

fn map(e: EngineError) -> ApiError {
    match e {
        EngineError::Forbidden => unauthorized(),
        e @ EngineError::JobEnded(_) => {
            ApiError::new(StatusCode::CONFLICT, CODE_JOB_ENDED, e.to_string())
        }
        other => ApiError::from(other),
    }
}

/// An authorized runner call: the job and the redactor for everything it sends.
struct Authorized {
    job: Job,
    token: String,
    redactor: Arc<Redactor>,
}

/// Checks the runner token (refused once the job has ended) and returns the job's redactor.
async fn authorize(st: &GuestState, id: &str, headers: &HeaderMap) -> Result<Authorized, ApiError> {
    let id = job_id(id).map_err(|_| unauthorized())?;
    let token = bearer(headers)?.to_owned();
    let job = match st.lab.authorize_runner(&id, &token).await {
        Ok(job) => job,
        Err(e) => {
            if matches!(e, EngineError::JobEnded(_)) {
                st.redactors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            }
            return Err(map(e));
        }
    };
    let redactor = redactor_for(st, &job, &token).await?;
    Ok(Authorized {
        job,
        token,
        redactor,
    })
}

/// The job's redactor: the one built at bootstrap, or after a daemon restart one rebuilt from
/// the profile's bundle plus the runner token (the daemon stores only its hash, but the caller
/// just presented it and it matched). Without it nothing is stored: 503, and the runner retries.
async fn redactor_for(st: &GuestState, job: &Job, token: &str) -> Result<Arc<Redactor>, ApiError> {
    if let Some(r) = st
        .redactors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&job.id)
    {
        return Ok(Arc::clone(r));
    }
    let bundle = st
        .lab
        .job_profile(job)
        .and_then(|p| p.secrets_bundle.clone());
    let bundle = match bundle {
        None => SecretBundle::default(),
        Some(name) => st.lab.deps().secrets.load(&name).await.map_err(|e| {
            tracing::warn!(job = %job.id, error = %agentlab_core::engine::chain(&e), "cannot rebuild the log redactor");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "redactor_unavailable",
                "The secret bundle cannot be loaded to redact this job's output; retry later",
            )
        })?,
    };
    let mut values = bundle.values();
    values.push(token);
    let r = Arc::new(Redactor::new(&values));
    st.redactors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(job.id.clone(), Arc::clone(&r));
    Ok(r)
}

pub async fn status(
    State(st): State<GuestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::response::Response, ApiError> {
    let auth = authorize(&st, &id, &headers).await?;
    let job = &auth.job;
    let r: StatusReport = parse_json(&body)?;
    let redact = |s: Option<String>| s.map(|t| auth.redactor.redact(&t));
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
            commit: redact(r.commit),
            summary: redact(r.summary),
            failed_step: redact(r.failed_step),
            error: redact(r.error),
        },
        pushed: r.pushed.map(|p| JobPushed {
            branch: auth.redactor.redact(&p.branch),
            commit: auth.redactor.redact(&p.commit),
            pr_url: redact(p.pr_url),
        }),
    };
    let (_, after) = st
        .lab
        .report_status_deferred(&job.id, &auth.token, report)
        .await
        .map_err(map)?;
    if state != JobState::Running {
        st.redactors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&job.id);
    }
    // The sandbox's destroy (an ephemeral job's end) begins once this answer is written.
    Ok(crate::guest::hold::json_holding(
        &serde_json::json!({}),
        after,
    ))
}

pub async fn logs(
    State(st): State<GuestState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let auth = authorize(&st, &id, &headers).await?;
    let batch: LogBatch = parse_json(&body)?;
    let lines = batch
        .lines
        .into_iter()
        .map(|l| {
            let text = auth.redactor.redact(&l.line);
            match l.stream {
                LogStream::Stdout => text,
                LogStream::Stderr => format!("[stderr] {text}"),
                LogStream::Runner => format!("[runner] {text}"),
            }
        })
        .collect();
    st.lab
        .append_logs(&auth.job.id, &auth.token, lines)
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
    let auth = authorize(&st, &id, &headers).await?;
    let job = &auth.job;
    if !ArtifactStore::valid_name(&name) || auth.redactor.redact(&name) != name {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("Invalid artifact name {name:?}"),
        ));
    }
    let profile_max = st
        .lab
        .job_profile(job)
        .map_or(st.artifact_max_bytes, |p| p.artifacts.max_bytes);
    let limit = profile_max
        .min(st.artifact_max_bytes)
        .saturating_sub(st.artifacts.used(&job.id, Some(&name)).await);
    let allowance = st
        .lab
        .artifact_allowance(&job.id, &name, limit)
        .await
        .map_err(map)?;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if let Some(q) = announced.and_then(|n| allowance.refusal(Some(n))) {
        return Err(quota_refused(&st, &job.id, q).await);
    }
    let stream = body.into_data_stream();
    let received = st
        .artifacts
        .receive(&job.id, &name, stream, allowance.bytes)
        .await;
    if let (Err(UploadError::TooLarge(_)), Some(q)) = (&received, allowance.refusal(None)) {
        return Err(quota_refused(&st, &job.id, q).await);
    }
    let (size, sha256) = received.map_err(|e| match e {
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
    // The same content again (a retried upload) is accepted without a second record.
    let known = st
        .lab
        .deps()
        .store
        .list_artifacts(&job.id)
        .await
        .map_err(|e| map(e.into()))?;
    if known.iter().any(|a| a.name == name && a.sha256 == sha256) {
        tracing::info!(job = %job.id, name = %name, "artifact upload repeated with the same content");
        return Ok(Json(ArtifactReceipt { name, size, sha256 }));
    }
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
