//! `/v1/profiles` handlers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use agentlab_core::api::control::ProfileSummary;
use agentlab_core::profile::{Profile, Profiles};

use crate::control::AppState;
use crate::control::error::ApiError;

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

pub async fn list(State(st): State<AppState>) -> Json<Vec<ProfileSummary>> {
    Json(st.lab.profiles().iter().map(summary).collect())
}

pub async fn show(
    State(st): State<AppState>,
    Path(name): Path<String>,
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

pub async fn validate(body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
            format!("Body is not UTF-8: {e}"),
        )
    })?;
    match Profiles::validate_yaml(text) {
        Ok(list) => {
            let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
            Ok(Json(serde_json::json!({"valid": true, "profiles": names})))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_profile",
            e.to_string(),
        )
        .details(serde_json::to_value(&e.details).unwrap_or_default())),
    }
}
