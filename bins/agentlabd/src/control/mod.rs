//! The control API (Unix socket, base path `/v1`). Handlers only translate: parse, call one
//! engine method, map the error into the envelope.

pub mod admin;
pub mod admin_backup;
#[cfg(test)]
mod admin_tests;
pub mod auth;
pub use agentlab_host::error;
mod events;
pub use agentlab_host::extract;
mod follow;
mod health;
mod jobs;
pub mod limits;
pub mod openapi;
mod openapi_query;
pub mod page;
mod profiles;
pub mod rate;
mod sandboxes;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_pages;
#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_remote;
mod tokens;
mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use agentlab_core::engine::Lab;

use crate::artifacts::ArtifactStore;
use crate::control::error::ApiError;
use crate::control::limits::ApiLimits;

/// Shared state of the control routes.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine.
    pub lab: Arc<Lab>,
    /// Artifact files (downloads).
    pub artifacts: ArtifactStore,
    /// Daemon version line.
    pub version: &'static str,
    /// Fires on shutdown (ends follow streams).
    pub cancel: CancellationToken,
    /// Request bounds (`limits:`).
    pub limits: Arc<ApiLimits>,
    /// The sandboxes' channels (exec, shell, copy, forward).
    pub channels: Arc<crate::channel::ChannelHub>,
    /// API tokens of the remote API.
    pub tokens: Arc<dyn agentlab_core::api_token::ApiTokenStore>,
    /// The last disk usage check (`GET /v1/status`).
    pub disks: agentlab_host::DiskReport,
}

/// The Unix socket's router: every route, token management and `extra` (profile reload,
/// backup) included, rate limited per uid
/// (`limits.socket_rate_per_sec`, `limits.socket_burst`).
pub fn socket_router(state: AppState, extra: Router, cancel: CancellationToken) -> Router {
    let rate = rate::Rate {
        per_sec: state.limits.config.socket_rate_per_sec,
        burst: state.limits.config.socket_burst,
        setting: "limits.socket_rate_per_sec",
    };
    let tokens = Router::new()
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .with_state(state.clone());
    router(state)
        .merge(tokens)
        .merge(extra)
        .layer(rate::layer(rate, rate::UidKey, cancel))
}

/// The remote API's router: the same routes, each behind [`auth::require_token`] (token
/// management answers 403 `socket_only`) together with `extra` (`GET /metrics`), plus `/mcp`;
/// rate limited per client address.
pub fn remote_router(
    state: AppState,
    remote: &agentlab_core::config::RemoteConfig,
    extra: Router,
    cancel: CancellationToken,
) -> Router {
    let rate = rate::Rate {
        per_sec: remote.rate_per_sec,
        burst: remote.burst,
        setting: "remote.rate_per_sec",
    };
    let auth = auth::TokenAuth {
        tokens: Arc::clone(&state.tokens),
        clock: Arc::clone(&state.lab.deps().clock),
    };
    let socket_only = Router::new()
        .route("/v1/tokens", axum::routing::any(not_found))
        .route("/v1/tokens/{id}", axum::routing::any(not_found));
    let require = axum::middleware::from_fn_with_state(auth, auth::require_token);
    let api = router(state)
        .merge(socket_only)
        .merge(extra)
        .route_layer(require.clone());
    let mcp = Router::new()
        .route(
            "/mcp",
            axum::routing::any(crate::remote::mcp::handle)
                .layer(DefaultBodyLimit::max(crate::remote::mcp::MAX_BODY)),
        )
        .with_state(crate::remote::mcp::route(api.clone(), cancel.clone()))
        .route_layer(require);
    api.merge(mcp).layer(rate::layer(
        rate,
        tower_governor::key_extractor::PeerIpKeyExtractor,
        cancel,
    ))
}

/// The control router. Every route's body is bounded: `limits.max_body_bytes` for JSON
/// bodies, `limits.max_profile_body_bytes` for profile validation.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body();
    let max_profile = state.limits.max_profile_body();
    let health = Arc::new(health::HealthCache::new(health::HEALTH_TTL));
    Router::new()
        .route("/healthz", get(status::healthz))
        .route(
            "/v1/status",
            get(move |st| status::status(st, Arc::clone(&health))),
        )
        .route("/v1/openapi.json", get(openapi::serve))
        .route(
            "/v1/sandboxes",
            post(sandboxes::create).get(sandboxes::list),
        )
        .route(
            "/v1/sandboxes/{vmid}",
            get(sandboxes::show).delete(sandboxes::destroy),
        )
        .route("/v1/sandboxes/{vmid}/start", post(sandboxes::start))
        .route("/v1/sandboxes/{vmid}/stop", post(sandboxes::stop))
        .route("/v1/sandboxes/{vmid}/lease/renew", post(sandboxes::renew))
        .route("/v1/sandboxes/{vmid}/events", get(events::for_sandbox))
        .route(
            "/v1/sandboxes/{vmid}/stream",
            post(crate::channel::stream_route::stream),
        )
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::show))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(events::for_job))
        .route("/v1/jobs/{id}/artifacts", get(jobs::artifacts))
        .route("/v1/jobs/{id}/artifacts/{name}", get(jobs::download))
        .route(
            "/v1/workspaces",
            post(workspaces::create).get(workspaces::list),
        )
        .route(
            "/v1/workspaces/{id}",
            get(workspaces::show).delete(workspaces::delete),
        )
        .route("/v1/workspaces/{id}/attach", post(workspaces::attach))
        .route("/v1/workspaces/{id}/detach", post(workspaces::detach))
        .route("/v1/workspaces/{id}/rebind", post(workspaces::rebind))
        .route("/v1/profiles", get(profiles::list))
        .route(
            "/v1/profiles/validate",
            post(profiles::validate).layer(DefaultBodyLimit::max(max_profile)),
        )
        .route("/v1/profiles/{name}", get(profiles::show))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "No such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed on this route",
    )
}
