//! The guest listener (TCP, separate from the control socket): bootstrap fetch and the
//! runner routes. Only these routes exist here.

mod bootstrap;
pub mod conns;
#[cfg(test)]
mod conns_tests;
mod hold;
pub mod ratelimit;
mod runner;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_quota;
#[cfg(test)]
mod tests_tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{post, put};

use agentlab_core::JobId;
use agentlab_core::engine::Lab;
use agentlab_core::redact::Redactor;

use crate::artifacts::ArtifactStore;

/// Shared state of the guest routes.
#[derive(Debug, Clone)]
pub struct GuestState {
    /// The engine.
    pub lab: Arc<Lab>,
    /// Artifact files.
    pub artifacts: ArtifactStore,
    /// Fetch rate limiter.
    pub limiter: Arc<ratelimit::RateLimiter>,
    /// Per-job redactors built at bootstrap (defence in depth for log lines).
    pub redactors: Arc<Mutex<HashMap<JobId, Arc<Redactor>>>>,
    /// Daemon-wide artifact cap per job.
    pub artifact_max_bytes: u64,
    /// The sandboxes' channels.
    pub channels: Arc<crate::channel::ChannelHub>,
    /// Fires on shutdown (ends the channels).
    pub cancel: tokio_util::sync::CancellationToken,
}

/// The guest router. `max_body` limits JSON bodies; artifact uploads are limited per job.
pub fn router(state: GuestState, max_body: usize) -> Router {
    let json = Router::new()
        .route("/v1/bootstrap/fetch", post(bootstrap::fetch))
        .route("/v1/bootstrap/abandon", post(bootstrap::abandon))
        .route("/v1/jobs/{id}/status", post(runner::status))
        .route("/v1/jobs/{id}/logs", post(runner::logs))
        .route(
            agentlab_core::api::channel::CHANNEL_PATH,
            axum::routing::get(crate::channel::guest_route::channel),
        )
        .layer(DefaultBodyLimit::max(max_body));
    let uploads = Router::new()
        .route("/v1/jobs/{id}/artifacts/{name}", put(runner::artifact))
        .layer(DefaultBodyLimit::disable());
    json.merge(uploads).with_state(state)
}
