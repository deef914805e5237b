//! `/v1/status` and `/healthz`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;

use agentlab_core::api::control::StatusResponse;

use crate::control::AppState;
use crate::control::error::ApiError;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"ok": true}))
}

pub async fn status(State(st): State<AppState>) -> Result<Json<StatusResponse>, ApiError> {
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
    let probe = lab.deps().hypervisor.list_managed().await;
    let (nodes, nodes_error) = match lab.deps().hypervisor.node_health() {
        None => (None, None),
        Some(h) => match h.node_status().await {
            Ok(n) => (Some(n), None),
            Err(e) => (None, Some(agentlab_core::engine::chain(&e))),
        },
    };
    Ok(Json(StatusResponse {
        version: st.version.to_owned(),
        backend: lab.deps().hypervisor.name().to_owned(),
        backend_healthy: probe.is_ok(),
        backend_detail: probe.err().map(|e| agentlab_core::engine::chain(&e)),
        sandboxes,
        jobs,
        nodes,
        nodes_error,
    }))
}
