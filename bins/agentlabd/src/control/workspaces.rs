//! `/v1/workspaces` handlers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use agentlab_core::Workspace;
use agentlab_core::api::control::{
    AttachWorkspaceRequest, CreateWorkspaceRequest, RebindResponse, RebindWorkspaceRequest,
};

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiJson, ApiPath, ApiQuery};
use crate::control::page::{self, Paged};

pub async fn create(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CreateWorkspaceRequest>,
) -> Result<(StatusCode, Json<Workspace>), ApiError> {
    req.validate(&st.limits.config)?;
    Ok((
        StatusCode::CREATED,
        Json(st.lab.create_workspace(&req.name, req.size_gb).await?),
    ))
}

/// Query of the name-ordered list routes (`/v1/workspaces`, `/v1/profiles`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamePageQuery {
    /// Page size.
    pub limit: Option<u32>,
    /// The previous page's last name.
    pub cursor: Option<String>,
}

/// One page of workspaces by name (few exist; the page is cut in memory).
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<NamePageQuery>,
) -> Result<Paged<Workspace>, ApiError> {
    let limit = page::limit(q.limit, &st.limits.config)?;
    let all = st.lab.list_workspaces().await?;
    Ok(Paged::slice(all, q.cursor.as_deref(), limit, |w| {
        w.name.clone()
    }))
}

pub async fn show(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Workspace>, ApiError> {
    Ok(Json(st.lab.workspace(&id).await?))
}

pub async fn attach(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AttachWorkspaceRequest>,
) -> Result<Json<Workspace>, ApiError> {
    Ok(Json(st.lab.attach_workspace(&id, req.vmid).await?))
}

pub async fn detach(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Workspace>, ApiError> {
    Ok(Json(st.lab.detach_workspace(&id).await?))
}

pub async fn rebind(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    caller: Option<axum::Extension<crate::control::auth::Caller>>,
    ApiJson(req): ApiJson<RebindWorkspaceRequest>,
) -> Result<Json<RebindResponse>, ApiError> {
    req.validate(&st.limits.config)?;
    crate::control::auth::check_profile(caller.as_deref(), &req.profile)?;
    Ok(Json(
        st.lab
            .rebind_workspace(&id, &req.profile, req.keep_old, req.ttl_minutes)
            .await?,
    ))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    st.lab.delete_workspace(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
