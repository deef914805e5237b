//! The control API's request bounds at run time: the `limits:` settings, plus the slots and
//! time budget of YAML parsing, which runs on blocking threads so a costly body can never
//! hold up the async workers (and with them `/healthz`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use agentlab_core::config::LimitsConfig;

use crate::control::error::ApiError;

/// `limits:` and the parse slots.
#[derive(Debug)]
pub struct ApiLimits {
    /// The configured bounds.
    pub config: LimitsConfig,
    slots: Arc<Semaphore>,
}

impl ApiLimits {
    /// Bounds from the daemon config.
    pub fn new(config: LimitsConfig) -> Self {
        let slots = Arc::new(Semaphore::new(config.yaml_parse_concurrency.max(1)));
        Self { config, slots }
    }

    /// Largest JSON body in bytes.
    pub fn max_body(&self) -> usize {
        usize::try_from(self.config.max_body_bytes).unwrap_or(usize::MAX)
    }

    /// Largest profile body in bytes.
    pub fn max_profile_body(&self) -> usize {
        usize::try_from(self.config.max_profile_body_bytes).unwrap_or(usize::MAX)
    }

    /// Runs `parse` on a blocking thread within one of the parse slots and the time budget.
    /// No free slot within the budget is 503 `busy`; a parse over the budget is 422
    /// `too_complex` (the thread finishes in the background and keeps its slot until then,
    /// so slow bodies cannot pile up).
    pub async fn parse<T: Send + 'static>(
        &self,
        parse: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let budget = Duration::from_millis(self.config.yaml_parse_timeout_ms);
        let start = Instant::now();
        let permit = tokio::time::timeout(budget, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "All {} parse slots stayed busy for {} ms (limits.yaml_parse_concurrency); retry later",
                        self.config.yaml_parse_concurrency, self.config.yaml_parse_timeout_ms
                    ),
                )
            })?
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))?;
        let task = tokio::task::spawn_blocking(move || {
            let out = parse();
            drop(permit);
            out
        });
        let left = budget.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("Parser task failed: {e}"),
            )),
            Err(_) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_complex",
                format!(
                    "Parsing took longer than {} ms (limits.yaml_parse_timeout_ms)",
                    self.config.yaml_parse_timeout_ms
                ),
            )),
        }
    }
}
