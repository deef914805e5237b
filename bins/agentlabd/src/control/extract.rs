//! Request extraction that answers in the error envelope: JSON bodies and ids in paths.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use agentlab_core::{JobId, Vmid};

use crate::control::error::ApiError;

/// A JSON body: malformed JSON is 400 `malformed_json` with the parse position; a body that
/// does not fit the type (unknown or missing fields) is 422 `invalid_request`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("Request body rejected: {e}"),
            )
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body with the envelope's error rules.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let pos = serde_json::json!({"line": e.line(), "column": e.column()});
        if e.is_data() {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("Invalid request body: {e}"),
            )
            .details(pos)
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("Malformed JSON: {e}"),
            )
            .details(pos)
        }
    })
}

/// Parses a vmid path segment (400 `invalid_vmid`).
pub fn vmid(s: &str) -> Result<Vmid, ApiError> {
    s.parse().map_err(|e: agentlab_core::IdError| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_vmid", e.to_string())
    })
}

/// Parses a job id path segment (400 `invalid_job_id`).
pub fn job_id(s: &str) -> Result<JobId, ApiError> {
    s.parse().map_err(|e: agentlab_core::IdError| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_job_id", e.to_string())
    })
}
