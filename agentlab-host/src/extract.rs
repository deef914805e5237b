//! Request extraction that answers in the error envelope: JSON and raw bodies (with the
//! body limit as 413 `too_large`), query strings (400 `invalid_query`), path segments and ids.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use agentlab_core::{JobId, Vmid};

use crate::error::ApiError;

/// A JSON body: malformed JSON is 400 `malformed_json` with the parse position; a body that
/// does not fit the type (unknown or missing fields) is 422 `invalid_request`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A raw body within the route's body limit: over it is 413 `too_large`, a body that cannot
/// be read is 400 `invalid_body`.
#[derive(Debug)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("Request body rejected: {}", e.body_text()),
                    )
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_body",
                        format!("Request body rejected: {}", e.body_text()),
                    )
                }
            })
    }
}

/// A query string: unknown parameters and values of the wrong type are 400 `invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("Invalid query string: {}", e.body_text()),
                )
            })
    }
}

/// Path parameters: segments that cannot be decoded are 400 `invalid_path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    format!("Invalid path: {}", e.body_text()),
                )
            })
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
