//! Operator routes kept apart from the per-request [`super::AppState`]: `POST
//! /v1/profiles/reload` and `GET /v1/admin/backup`. [`router`] is merged into the control
//! router by the server.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use agentlab_core::api::admin::ReloadReport;

use crate::control::error::ApiError;
use crate::reload::{ReloadError, Reloader};

/// State of the operator routes.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Reloads profiles from the config the daemon started with.
    pub reloader: Arc<Reloader>,
    /// What a backup reads.
    pub backup: Arc<crate::control::admin_backup::BackupPlan>,
}

/// The operator routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/v1/profiles/reload", post(reload))
        .route(
            "/v1/admin/backup",
            get(crate::control::admin_backup::backup),
        )
        .with_state(state)
}

/// Reloads the profiles; 200 with what changed, or 422 with the validation error (the running
/// set is kept).
async fn reload(State(st): State<AdminState>) -> Result<Json<ReloadReport>, ApiError> {
    match st.reloader.reload().await {
        Ok(report) => {
            tracing::info!(
                trigger = "api",
                added = ?report.profiles.added,
                removed = ?report.profiles.removed,
                changed = ?report.profiles.changed,
                restart_required = ?report.restart_required,
                "profiles reloaded"
            );
            Ok(Json(report))
        }
        Err(e) => {
            tracing::warn!(trigger = "api", error = %agentlab_core::engine::chain(&e),
                "reload refused; the running profiles are kept");
            Err(reload_error(&e))
        }
    }
}

/// The API error of a refused reload: 422 `invalid_config` or `invalid_profile` with the
/// usual details (file, document, field, line, column), 500 `reload_failed` otherwise.
pub fn reload_error(e: &ReloadError) -> ApiError {
    let (code, details) = match e {
        ReloadError::Config { source, .. } => ("invalid_config", &source.details),
        ReloadError::Profiles(p) => ("invalid_profile", &p.details),
        ReloadError::Task(_) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reload_failed",
                agentlab_core::engine::chain(e),
            );
        }
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        agentlab_core::engine::chain(e),
    )
    .details(serde_json::to_value(details).unwrap_or_default())
}
