//! Mapping of engine errors to HTTP statuses and the error envelope.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use agentlab_core::api::control::{ErrorBody, ErrorInfo};
use agentlab_core::engine::{EngineError, chain};

/// An API error: status, stable code, message and details.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine code.
    pub code: String,
    /// Message (whole cause chain).
    pub message: String,
    /// Details.
    pub details: serde_json::Value,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }

    /// Adds details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::NotFound { .. } => StatusCode::NOT_FOUND,
            EngineError::InvalidState(_)
            | EngineError::Conflict(_)
            | EngineError::NoJob(_)
            | EngineError::JobEnded(_)
            | EngineError::QuotaExceeded(_) => StatusCode::CONFLICT,
            EngineError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            EngineError::Forbidden => StatusCode::FORBIDDEN,
            EngineError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            EngineError::Exhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Hypervisor { .. }
            | EngineError::Firewall { .. }
            | EngineError::Secrets(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Store(
                agentlab_core::StateStoreError::Conflict { .. }
                | agentlab_core::StateStoreError::AlreadyExists { .. },
            ) => StatusCode::CONFLICT,
            EngineError::Store(agentlab_core::StateStoreError::IllegalTransition { .. }) => {
                StatusCode::CONFLICT
            }
            EngineError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let details = match &e {
            EngineError::QuotaExceeded(q) => serde_json::to_value(q).unwrap_or_default(),
            _ => serde_json::Value::Null,
        };
        Self::new(status, &e.code(), chain(&e)).details(details)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInfo {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// A request that failed validation: 422 with the error's code and details.
impl From<agentlab_core::api::validate::RequestError> for ApiError {
    fn from(e: agentlab_core::api::validate::RequestError) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
            .details(e.details())
    }
}
