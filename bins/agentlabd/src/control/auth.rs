//! Who is calling, and what each route requires of a remote caller.
//!
//! The Unix socket is full access for its group (no [`Caller`]). On the remote API every
//! request presents an API token (`Authorization: Bearer alab_…`); [`access`] says what the
//! matched route requires, and [`require_token`] refuses a missing, malformed, unknown,
//! revoked or expired token (401) and a token without the route's scope (403, naming the
//! missing scope). Routes absent from the table are refused: a new route stays closed to
//! remote callers until it is given a scope.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Duration as ChronoDuration;

use agentlab_core::api_token::{ApiToken, ApiTokenStore, Required, TokenRefusal, split_token};
use agentlab_core::{Clock, StateStoreError};

use crate::control::error::ApiError;

/// A remote caller and its token, as a request extension of the remote routes (absent on
/// the Unix socket, which is full access).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<ApiToken>);

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token {} ({})", self.0.name, self.0.id)
    }
}

/// Refuses a remote caller whose token is limited to other profiles than `profile`.
pub fn check_profile(caller: Option<&Caller>, profile: &str) -> Result<(), ApiError> {
    match caller {
        Some(Caller(t)) if !t.allows_profile(profile) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "profile_not_allowed",
            format!(
                "The token {:?} may not use profile {profile:?} (allowed: {})",
                t.name,
                t.profiles.join(", ")
            ),
        )
        .details(serde_json::json!({ "profile": profile, "allowed": t.profiles }))),
        _ => Ok(()),
    }
}

/// What a route asks of a remote caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (`/healthz`, the OpenAPI document).
    Open,
    /// A token with this scope.
    Scope(Required),
    /// Not served remotely (token management: a token must not mint tokens).
    SocketOnly,
}

/// What `method path` (a route template such as `/v1/jobs/{id}`) requires remotely; `None`
/// for a route the table does not know (refused).
pub fn access(method: &Method, path: &str) -> Option<Access> {
    use Access::{Open, Scope, SocketOnly};
    let r = Required::new;
    let m = method.as_str();
    Some(match (m, path) {
        ("GET", "/healthz" | "/v1/openapi.json") => Open,
        ("GET", "/v1/status") => Scope(r("status", "read")),
        ("GET", "/metrics") => Scope(r("metrics", "read")),
        ("GET", "/v1/sandboxes" | "/v1/sandboxes/{vmid}" | "/v1/sandboxes/{vmid}/events") => {
            Scope(r("sandbox", "read"))
        }
        ("POST", "/v1/sandboxes") => Scope(r("sandbox", "create")),
        ("DELETE", "/v1/sandboxes/{vmid}") => Scope(r("sandbox", "destroy")),
        ("POST", "/v1/sandboxes/{vmid}/start") => Scope(r("sandbox", "start")),
        ("POST", "/v1/sandboxes/{vmid}/stop") => Scope(r("sandbox", "stop")),
        ("POST", "/v1/sandboxes/{vmid}/lease/renew") => Scope(r("sandbox", "renew")),
        ("POST", "/v1/sandboxes/{vmid}/stream") => Scope(r("sandbox", "exec")),
        (
            "GET",
            "/v1/jobs"
            | "/v1/jobs/{id}"
            | "/v1/jobs/{id}/events"
            | "/v1/jobs/{id}/artifacts"
            | "/v1/jobs/{id}/artifacts/{name}",
        ) => Scope(r("job", "read")),
        ("POST", "/v1/jobs") => Scope(r("job", "create")),
        ("POST", "/v1/jobs/{id}/cancel") => Scope(r("job", "cancel")),
        ("GET", "/v1/workspaces" | "/v1/workspaces/{id}") => Scope(r("workspace", "read")),
        ("POST", "/v1/workspaces") => Scope(r("workspace", "create")),
        ("DELETE", "/v1/workspaces/{id}") => Scope(r("workspace", "delete")),
        (
            "POST",
            "/v1/workspaces/{id}/attach"
            | "/v1/workspaces/{id}/detach"
            | "/v1/workspaces/{id}/rebind",
        ) => Scope(r("workspace", "attach")),
        ("GET", "/v1/profiles" | "/v1/profiles/{name}") | ("POST", "/v1/profiles/validate") => {
            Scope(r("profile", "read"))
        }
        ("POST", "/v1/profiles/reload") => Scope(r("profile", "reload")),
        ("GET", "/v1/admin/backup") => Scope(r("admin", "backup")),
        (_, "/v1/tokens" | "/v1/tokens/{id}") => SocketOnly,
        ("POST" | "GET" | "DELETE", "/mcp") => Scope(r("mcp", "use")),
        _ => return None,
    })
}

/// State of [`require_token`].
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// Where tokens are.
    pub tokens: Arc<dyn ApiTokenStore>,
    /// The daemon's clock.
    pub clock: Arc<dyn Clock>,
}

fn unauthorized(code: &str, message: String) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"agentlabd\""),
    );
    resp
}

/// Middleware of the remote routes: the token check and the route's scope.
pub async fn require_token(
    State(auth): State<TokenAuth>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let required = match access(req.method(), &path) {
        Some(Access::Open) => return next.run(req).await,
        Some(Access::Scope(r)) => r,
        Some(Access::SocketOnly) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "socket_only",
                "Tokens are managed only on the daemon's Unix socket (`agentlab token` on its host)",
            )
            .into_response();
        }
        None => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "not_remote",
                format!("{} {path} is not served on the remote API", req.method()),
            )
            .into_response();
        }
    };
    let token = match authenticate(&auth, req.headers()).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    if !token.allows(required) {
        tracing::info!(token = %token.id, name = %token.name, scope = %required, path = %path,
            "remote request refused: scope missing");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "scope_missing",
            format!(
                "The token {:?} lacks the scope {required} that {} {path} requires",
                token.name,
                req.method()
            ),
        )
        .details(serde_json::json!({
            "required": required.to_string(),
            "token": token.id,
            "scopes": token.scopes,
        }))
        .into_response();
    }
    req.extensions_mut().insert(Caller(token));
    next.run(req).await
}

async fn authenticate(
    auth: &TokenAuth,
    headers: &axum::http::HeaderMap,
) -> Result<Arc<ApiToken>, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "token_required",
            "This API needs a token: Authorization: Bearer <token> (see `agentlab token create`)"
                .to_owned(),
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let refuse = |r: TokenRefusal| unauthorized(r.code(), format!("Refused: {r}"));
    let (id, secret) = split_token(presented).map_err(refuse)?;
    let now = auth.clock.now();
    let token = match auth.tokens.get_api_token(id).await {
        Ok(t) => t,
        Err(StateStoreError::NotFound { .. }) => return Err(refuse(TokenRefusal::Unknown)),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("Cannot read the token store: {e}"),
            )
            .into_response());
        }
    };
    token.check(secret, now).map_err(|r| {
        tracing::info!(token = %id, reason = r.code(), "remote request refused");
        refuse(r)
    })?;
    let stale = token
        .last_used_at
        .is_none_or(|at| now - at >= ChronoDuration::minutes(1));
    if stale && let Err(e) = auth.tokens.touch_api_token(&token.id, now).await {
        tracing::warn!(token = %token.id, error = %e, "cannot record the token's use");
    }
    Ok(Arc::new(token))
}
