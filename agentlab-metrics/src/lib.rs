//! Prometheus metrics for AgentLab (see `docs/metrics.md`).
//!
//! - [`Metrics`]: every metric family in one `prometheus-client` registry.
//! - [`MeteredHypervisor`]: a [`agentlab_core::Hypervisor`] decorator timing every backend
//!   call and counting its errors by call and kind.
//! - [`EventRecorder`] / [`spawn_event_recorder`]: turns the engine's events (provisioning
//!   steps, job ends, lease expiries, artifacts, refused bootstrap fetches) into counters and
//!   histograms, woken by [`agentlab_core::engine::Lab::subscribe_changes`].
//! - [`Exporter`]: sets the gauges read from the state store at scrape time and renders the
//!   OpenMetrics text; [`router`] serves it as `GET /metrics`.
//! - [`instrument`]: an axum middleware counting requests by route template and status.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod families;
mod http;
mod hypervisor;
mod recorder;
mod scrape;
#[cfg(test)]
mod testutil;

pub use error::MetricsError;
pub use families::{
    CallErrorLabels, CallLabels, Metrics, ReasonLabels, RouteLabels, StateLabels,
    StateProfileLabels, StepLabels,
};
pub use http::{CONTENT_TYPE, instrument, router};
pub use hypervisor::MeteredHypervisor;
pub use recorder::{EventRecorder, RECORDED_KINDS, spawn_event_recorder};
pub use scrape::Exporter;
