//! `/v1/profiles` handlers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use agentlab_core::api::control::ProfileSummary;
use agentlab_core::profile::{Profile, Profiles};
use agentlab_core::yaml::ErrorKind;

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiBytes, ApiPath, ApiQuery};
use crate::control::page::{self, Paged};
use crate::control::workspaces::NamePageQuery;

fn summary(p: &Profile) -> ProfileSummary {
    ProfileSummary {
        name: p.name.clone(),
        template_vmid: p.template_vmid,
        cores: p.resources.cores,
        memory_mb: p.resources.memory_mb,
        keepalive_default: p.behavior.keepalive_default,
        ttl_minutes_default: p.behavior.ttl_minutes_default,
    }
}

/// One page of profiles by name.
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<NamePageQuery>,
) -> Result<Paged<ProfileSummary>, ApiError> {
    let limit = page::limit(q.limit, &st.limits.config)?;
    let mut all: Vec<ProfileSummary> = st.lab.profiles().iter().map(summary).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Paged::slice(all, q.cursor.as_deref(), limit, |p| {
        p.name.clone()
    }))
}

pub async fn show(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Profile>, ApiError> {
    st.lab
        .profiles()
        .get(&name)
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "profile_not_found",
                format!("profile {name} not found"),
            )
        })
}

/// Validates a profile YAML body on a blocking thread, within the parse slots and budget of
/// `limits:`; text over the nesting limits is 400 `yaml_limit_exceeded` before it is parsed.
pub async fn validate(
    State(st): State<AppState>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let text = String::from_utf8(body.to_vec()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
            format!("Body is not UTF-8: {e}"),
        )
    })?;
    let limits = st.limits.config.yaml();
    let parsed = st
        .limits
        .parse(move || Profiles::validate_yaml_with(&text, &limits))
        .await?;
    match parsed {
        Ok(list) => {
            let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
            Ok(Json(serde_json::json!({"valid": true, "profiles": names})))
        }
        Err(e) => {
            let (status, code) = if e.kind() == ErrorKind::Limit {
                (StatusCode::BAD_REQUEST, "yaml_limit_exceeded")
            } else {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile")
            };
            Err(ApiError::new(status, code, e.to_string())
                .details(serde_json::to_value(&e.details).unwrap_or_default()))
        }
    }
}
