//! `/v1/tokens`: API tokens of the remote API. Served on the Unix socket only (a remote
//! token must not mint tokens); each creation and revocation is an `api_token` event.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use agentlab_core::api_token::{ApiToken, CreatedApiToken, IssueError, NewApiToken};
use agentlab_core::{EventKind, NewEvent, StateStoreError};

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiJson, ApiPath};

fn store_error(e: StateStoreError) -> ApiError {
    match e {
        StateStoreError::NotFound { id, .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "token_not_found",
            format!("No API token with id or name {id:?}"),
        ),
        StateStoreError::AlreadyExists { id, .. } => ApiError::new(
            StatusCode::CONFLICT,
            "token_exists",
            format!("A token named {id:?} exists (revoke it first, or pick another name)"),
        ),
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("Token store: {other}"),
        ),
    }
}

async fn record_event(st: &AppState, action: &str, t: &ApiToken) {
    let ev = NewEvent {
        payload: serde_json::json!({
            "action": action,
            "id": t.id,
            "name": t.name,
            "scopes": t.scopes,
            "profiles": t.profiles,
            "expires_at": t.expires_at,
        }),
        ..NewEvent::new(
            st.lab.deps().clock.now(),
            EventKind::ApiToken,
            format!("API token {:?} ({}) {action}", t.name, t.id),
        )
    };
    if let Err(e) = st.lab.deps().store.append_event(ev).await {
        tracing::error!(error = %e, "failed to record the token event");
    }
}

/// `POST /v1/tokens`: issues a token; the answer carries it once.
pub async fn create(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<NewApiToken>,
) -> Result<(StatusCode, Json<CreatedApiToken>), ApiError> {
    for p in &req.profiles {
        if st.lab.profiles().get(p).is_none() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_profile",
                format!(
                    "No profile {p:?} (known: {})",
                    st.lab.profiles().names().join(", ")
                ),
            ));
        }
    }
    let now = st.lab.deps().clock.now();
    let (record, text) = req.issue(now).map_err(|e| {
        let code = match e {
            IssueError::Name(_) => "invalid_token_name",
            IssueError::NoScope => "scope_required",
            IssueError::Ttl => "invalid_ttl",
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
    })?;
    st.tokens
        .insert_api_token(&record)
        .await
        .map_err(store_error)?;
    record_event(&st, "created", &record).await;
    tracing::info!(token = %record.id, name = %record.name, "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            token: text.expose().to_owned(),
            record,
        }),
    ))
}

/// `GET /v1/tokens`: every token, revoked and expired ones included (never a secret).
pub async fn list(State(st): State<AppState>) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(
        st.tokens.list_api_tokens().await.map_err(store_error)?,
    ))
}

/// `DELETE /v1/tokens/{id}`: revokes a token by id or name; at once, for every request after.
pub async fn revoke(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiToken>, ApiError> {
    let now = st.lab.deps().clock.now();
    let t = st
        .tokens
        .revoke_api_token(&id, now)
        .await
        .map_err(store_error)?;
    record_event(&st, "revoked", &t).await;
    tracing::info!(token = %t.id, name = %t.name, "API token revoked");
    Ok(Json(t))
}
