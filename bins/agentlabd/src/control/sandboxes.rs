//! `/v1/sandboxes` handlers: each parses, calls one engine method, maps the error.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use agentlab_core::api::control::{CreateSandboxRequest, RenewLeaseRequest};
use agentlab_core::api::validate;
use agentlab_core::engine::SandboxRequest;
use agentlab_core::{Sandbox, SandboxFilter, SandboxState, Vmid};

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery, parse_json, vmid};
use crate::control::page::{self, Paged};

/// Query of `GET /v1/sandboxes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated states.
    state: Option<String>,
    /// Profile name.
    profile: Option<String>,
    /// Include destroyed sandboxes.
    #[serde(default)]
    all: bool,
    /// Page size.
    limit: Option<u32>,
    /// The previous page's last vmid.
    cursor: Option<String>,
}

/// Parses `READY,RUNNING` into states (400 `invalid_state_filter`).
pub fn parse_states<T: std::str::FromStr>(s: Option<&str>) -> Result<Vec<T>, ApiError> {
    s.unwrap_or_default()
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim().parse::<T>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_state_filter",
                    format!("Unknown state {p:?}"),
                )
            })
        })
        .collect()
}

pub async fn create(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::control::auth::Caller>>,
    ApiJson(req): ApiJson<CreateSandboxRequest>,
) -> Result<(StatusCode, Json<Sandbox>), ApiError> {
    req.validate(&st.limits.config)?;
    crate::control::auth::check_profile(caller.as_deref(), &req.profile)?;
    let sb = st
        .lab
        .create_sandbox(SandboxRequest {
            profile: req.profile,
            name: req.name,
            ttl_minutes: req.ttl_minutes,
            keepalive: req.keepalive,
            workspace: req.workspace,
            job: None,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(sb)))
}

/// One page of sandboxes by vmid; the cursor is the last vmid of the previous page.
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<Sandbox>, ApiError> {
    let states: Vec<SandboxState> = parse_states(q.state.as_deref())?;
    let limit = page::limit(q.limit, &st.limits.config)?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| c.parse::<Vmid>().map_err(|_| page::bad_cursor(c)))
        .transpose()?;
    let filter = SandboxFilter {
        states,
        profile: q.profile,
        include_destroyed: q.all,
        after,
        limit: Some(limit + 1),
    };
    let list = st.lab.list_sandboxes(&filter).await?;
    Ok(Paged::from_extra(list, limit, |s| s.vmid.to_string()))
}

pub async fn show(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<agentlab_core::api::control::SandboxDetail>, ApiError> {
    let vmid = vmid(&id)?;
    let sandbox = st.lab.sandbox(vmid).await?;
    let usage = st.lab.sandbox_usage(vmid).await;
    Ok(Json(agentlab_core::api::control::SandboxDetail {
        sandbox,
        usage,
        last_activity_at: st.lab.last_activity(vmid),
    }))
}

pub async fn start(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Sandbox>, ApiError> {
    Ok(Json(st.lab.start_sandbox(vmid(&id)?).await?))
}

pub async fn stop(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Sandbox>, ApiError> {
    Ok(Json(st.lab.stop_sandbox(vmid(&id)?).await?))
}

/// 200 with the DESTROYED sandbox, or 202 with it still DESTROYING (`last_error` says why)
/// when an attempt failed: the daemon retries until it is DESTROYED.
pub async fn destroy(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(axum::http::StatusCode, Json<Sandbox>), ApiError> {
    let sb = st.lab.destroy_sandbox(vmid(&id)?).await?;
    let status = if sb.state == agentlab_core::SandboxState::Destroyed {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::ACCEPTED
    };
    Ok((status, Json(sb)))
}

pub async fn renew(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Sandbox>, ApiError> {
    let ttl = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<RenewLeaseRequest>(&body)?.ttl_minutes
    };
    validate::ttl_minutes(ttl, &st.limits.config)?;
    Ok(Json(st.lab.renew_lease(vmid(&id)?, ttl).await?))
}
