//! `POST /v1/bootstrap/fetch`.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use agentlab_core::Vmid;
use agentlab_core::api::guest::{
    BootstrapAbandonRequest, BootstrapFetchRequest, BootstrapPayload, GuestAgent,
    GuestArtifactPolicy, GuestJobSpec, GuestPolicy,
};
use agentlab_core::engine::{BootstrapGrant, EngineError};
use agentlab_core::redact::Redactor;
use agentlab_core::token::hash_token;

use crate::error::ApiError;
use crate::extract::parse_json;
use crate::guest::GuestState;

const PRESETS: [&str; 3] = ["claude", "codex", "opencode"];

fn rate_limited(wait: std::time::Duration) -> Response {
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many bootstrap requests",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The per-token rate limit, keyed by a digest of the vmid and token (never the token).
fn limit_token(st: &GuestState, token: &str, vmid: Vmid) -> Result<(), std::time::Duration> {
    st.limiter
        .check_token(hash_token(&format!("{vmid}:{token}")), Instant::now())
}

/// The admission both bootstrap routes share: the per-address limit, the body, then the
/// per-token limit. A refusal is the response to send.
fn admit<T: serde::de::DeserializeOwned>(
    st: &GuestState,
    peer: SocketAddr,
    body: &[u8],
    key: impl Fn(&T) -> (&str, Vmid),
) -> Result<T, Box<Response>> {
    st.limiter
        .check_address(peer.ip().to_canonical(), Instant::now())
        .map_err(|w| Box::new(rate_limited(w)))?;
    let req: T = parse_json(body).map_err(|e| Box::new(e.into_response()))?;
    let (token, vmid) = key(&req);
    limit_token(st, token, vmid).map_err(|w| Box::new(rate_limited(w)))?;
    Ok(req)
}

pub async fn fetch(
    State(st): State<GuestState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let req: BootstrapFetchRequest = match admit(&st, peer, &body, |r: &BootstrapFetchRequest| {
        (r.token.expose(), r.vmid)
    }) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let peer_ip = peer.ip().to_canonical();
    match st
        .lab
        .bootstrap_fetch_from(req.vmid, req.token.expose(), Some(peer_ip))
        .await
    {
        Ok(grant) => {
            tracing::info!(sandbox = %req.vmid, job = %grant.job.id, "bootstrap fetched");
            Json(payload(&st, grant)).into_response()
        }
        Err(EngineError::Forbidden) => forbidden().into_response(),
        Err(e @ EngineError::NoJob(_)) => ApiError::from(e).into_response(),
        Err(e) => {
            tracing::warn!(sandbox = %req.vmid, error = %agentlab_core::engine::chain(&e), "bootstrap fetch failed");
            ApiError::from(e).into_response()
        }
    }
}

/// `POST /v1/bootstrap/abandon`: the runner gives up its fetch; the job fails at once.
pub async fn abandon(
    State(st): State<GuestState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let req: BootstrapAbandonRequest =
        match admit(&st, peer, &body, |r: &BootstrapAbandonRequest| {
            (r.token.expose(), r.vmid)
        }) {
            Ok(r) => r,
            Err(refused) => return *refused,
        };
    match st
        .lab
        .bootstrap_abandon(
            req.vmid,
            req.token.expose(),
            &req.reason,
            Some(peer.ip().to_canonical()),
        )
        .await
    {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(EngineError::Forbidden) => forbidden().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The one answer for every token problem (no oracle).
fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Bootstrap token refused",
    )
}

fn payload(st: &GuestState, g: BootstrapGrant) -> BootstrapPayload {
    let base = st
        .lab
        .settings()
        .controller_url
        .trim_end_matches('/')
        .to_owned();
    let id = g.job.id.clone();
    let agent = match g.job.agent.as_deref() {
        Some(a) if PRESETS.contains(&a) => GuestAgent {
            command: None,
            preset: Some(a.to_owned()),
        },
        Some(a) => GuestAgent {
            command: Some(a.to_owned()),
            preset: None,
        },
        None => GuestAgent {
            command: g.profile.agent.command.clone(),
            preset: g.profile.agent.preset.map(|p| p.as_str().to_owned()),
        },
    };
    let mut values = g.secrets.values();
    values.push(g.runner_token.expose());
    let redactor = Arc::new(Redactor::new(&values));
    st.redactors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), redactor);
    BootstrapPayload {
        job: GuestJobSpec {
            job_id: id.clone(),
            repo: g.job.repo.clone(),
            git_ref: g.job.git_ref.clone(),
            task: g.job.task.clone(),
            agent,
            mode: g.profile.behavior.mode.as_str().to_owned(),
            timeout_secs: g.timeout_secs,
            clone_path: g.profile.repo.clone_path.clone(),
            work_branch: format!("agentlab/{id}"),
            result: g.job.result.clone(),
        },
        secrets: g.secrets,
        runner_token: g.runner_token,
        status_url: format!("{base}/v1/jobs/{id}/status"),
        logs_url: format!("{base}/v1/jobs/{id}/logs"),
        artifacts_url: format!("{base}/v1/jobs/{id}/artifacts"),
        policy: GuestPolicy {
            inner_sandbox: g.profile.behavior.inner_sandbox.as_str().to_owned(),
            inner_sandbox_args: g.profile.behavior.inner_sandbox_args.clone(),
        },
        artifacts: GuestArtifactPolicy {
            upload: g.profile.artifacts.upload,
            max_bytes: g.profile.artifacts.max_bytes.min(st.artifact_max_bytes),
        },
    }
}
