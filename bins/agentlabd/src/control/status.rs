//! `/v1/status` and `/healthz`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use agentlab_core::api::control::StatusResponse;

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::health::HealthCache;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"ok": true}))
}

/// Counts from the store on every call; the backend's health from `health` (one probe per
/// `HEALTH_TTL`, shared by concurrent calls).
pub async fn status(
    State(st): State<AppState>,
    health: Arc<HealthCache>,
) -> Result<Json<StatusResponse>, ApiError> {
    let lab = &st.lab;
    // Kept per state on every write: O(1) whatever the number of records.
    let counts = lab.counts().await?;
    let sandboxes: BTreeMap<String, u64> = counts
        .sandboxes
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    let jobs: BTreeMap<String, u64> = counts
        .jobs
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    let health = health.get(lab).await;
    let (nodes, nodes_error) = match health.nodes {
        None => (None, None),
        Some(Ok(n)) => (Some(n), None),
        Some(Err(e)) => (None, Some(e)),
    };
    Ok(Json(StatusResponse {
        version: st.version.to_owned(),
        backend: lab.deps().hypervisor.name().to_owned(),
        backend_healthy: health.backend.is_ok(),
        backend_detail: health.backend.err(),
        sandboxes,
        jobs,
        nodes,
        nodes_error,
        disks: st
            .disks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
    }))
}
