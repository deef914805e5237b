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
//!
//! A metered backend and a scrape, on the recording fakes of `agentlab-core` (its feature
//! `fake`, enabled in this crate's dev-dependencies):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use agentlab_core::fake::{FakeHypervisor, ManualClock, MemoryStore};
//! use agentlab_core::Hypervisor;
//! use agentlab_metrics::{Exporter, MeteredHypervisor, Metrics};
//!
//! let metrics = Arc::new(Metrics::new());
//! let hv = MeteredHypervisor::new(Arc::new(FakeHypervisor::new()), Arc::clone(&metrics));
//! hv.used_ids().await?; // timed as call="used_ids" of backend "fake"
//! metrics.jobs_queued.inc(); // counters are plain prometheus-client types
//!
//! let exporter = Exporter::new(
//!     Arc::clone(&metrics),
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(ManualClock::at_epoch()),
//! );
//! let text = exporter.render().await?;
//! assert!(text.contains("# TYPE agentlab_backend_call_duration_seconds histogram"));
//! assert!(text.contains(
//!     r#"agentlab_backend_call_duration_seconds_count{backend="fake",call="used_ids"} 1"#
//! ));
//! assert!(text.contains("agentlab_jobs_queued_total 1"));
//! assert!(text.ends_with("# EOF\n"));
//! # Ok(()) }
//! ```
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
