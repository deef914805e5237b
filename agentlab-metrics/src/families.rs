//! [`Metrics`]: the metric families and their registry. Every name, label and meaning is
//! listed in `docs/metrics.md`; label values come from bounded sets (states, profiles, step
//! and call names, route templates), never from request data.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels `state`, `profile` (sandboxes).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateProfileLabels {
    /// Sandbox state (`READY`, …).
    pub state: String,
    /// Profile name.
    pub profile: String,
}

/// Label `state` (job and sandbox states, job outcomes).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The state (`COMPLETED`, …).
    pub state: String,
}

/// Label `step` (provisioning steps).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// The step (`clone`, `configure`, …).
    pub step: String,
}

/// Labels `backend`, `call` (hypervisor calls).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Backend name (`pve`, `local`, `qemu`, `fake`).
    pub backend: String,
    /// The trait method (`create`, `start`, …).
    pub call: String,
}

/// Labels `backend`, `call`, `kind` (failed hypervisor calls).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallErrorLabels {
    /// Backend name.
    pub backend: String,
    /// The trait method.
    pub call: String,
    /// Error variant in snake case (`not_found`, `unavailable`, …).
    pub kind: String,
}

/// Label `reason` (refused bootstrap fetches).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `used`, `expired`, `unknown`, `wrong_address`, `never_fetched` or `other`.
    pub reason: String,
}

/// Labels `route`, `method`, `status` (guest listener requests).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route template (`/v1/jobs/{id}/logs`), or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: String,
}

/// Every AgentLab metric family, registered in one registry. Cheap to share in an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    pub(crate) registry: Registry,
    /// Serialises the scrape-time gauge refresh with the encoding that follows it.
    pub(crate) scrape: Mutex<()>,
    /// `agentlab_sandboxes{state,profile}`: sandboxes not DESTROYED (scrape time).
    pub sandboxes: Family<StateProfileLabels, Gauge>,
    /// `agentlab_sandbox_unchanged_seconds_max{state}` (scrape time).
    pub sandbox_unchanged_max: Family<StateLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `agentlab_jobs{state}`: jobs per state (scrape time).
    pub jobs: Family<StateLabels, Gauge>,
    /// `agentlab_events_stored`: rows in the event store (scrape time).
    pub events_stored: Gauge,
    /// `agentlab_jobs_queued_total`.
    pub jobs_queued: Counter,
    /// `agentlab_jobs_finished_total{state}`.
    pub jobs_finished: Family<StateLabels, Counter>,
    /// `agentlab_provision_step_duration_seconds{step}`.
    pub provision_step: Family<StepLabels, Histogram>,
    /// `agentlab_provision_failures_total{step}`.
    pub provision_failures: Family<StepLabels, Counter>,
    /// `agentlab_sandbox_time_to_ready_seconds`.
    pub time_to_ready: Histogram,
    /// `agentlab_backend_call_duration_seconds{backend,call}`.
    pub backend_call: Family<CallLabels, Histogram>,
    /// `agentlab_backend_call_errors_total{backend,call,kind}`.
    pub backend_errors: Family<CallErrorLabels, Counter>,
    /// `agentlab_lease_expirations_total`.
    pub lease_expirations: Counter,
    /// `agentlab_artifacts_stored_total`.
    pub artifacts_stored: Counter,
    /// `agentlab_artifact_bytes_total`.
    pub artifact_bytes: Counter,
    /// `agentlab_bootstrap_refused_total{reason}`.
    pub bootstrap_refused: Family<ReasonLabels, Counter>,
    /// `agentlab_guest_requests_total{route,method,status}`.
    pub guest_requests: Family<RouteLabels, Counter>,
}

fn step_buckets() -> Histogram {
    // 10 ms .. ~4 min
    Histogram::new(exponential_buckets(0.01, 2.5, 12))
}

fn call_buckets() -> Histogram {
    // 1 ms .. ~3 min
    Histogram::new(exponential_buckets(0.001, 3.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding every family, all at zero.
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("agentlab"),
            scrape: Mutex::new(()),
            sandboxes: Family::default(),
            sandbox_unchanged_max: Family::default(),
            jobs: Family::default(),
            events_stored: Gauge::default(),
            jobs_queued: Counter::default(),
            jobs_finished: Family::default(),
            provision_step: Family::new_with_constructor(step_buckets),
            provision_failures: Family::default(),
            time_to_ready: Histogram::new(exponential_buckets(0.1, 2.0, 13)),
            backend_call: Family::new_with_constructor(call_buckets),
            backend_errors: Family::default(),
            lease_expirations: Counter::default(),
            artifacts_stored: Counter::default(),
            artifact_bytes: Counter::default(),
            bootstrap_refused: Family::default(),
            guest_requests: Family::default(),
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "sandboxes",
            "Sandboxes that are not DESTROYED, by state and profile",
            self.sandboxes.clone(),
        );
        r.register(
            "sandbox_unchanged_seconds_max",
            "Per state, seconds since the least recently written sandbox in it was written",
            self.sandbox_unchanged_max.clone(),
        );
        r.register("jobs", "Jobs per state", self.jobs.clone());
        r.register(
            "events_stored",
            "Events held by the event store",
            self.events_stored.clone(),
        );
        r.register(
            "jobs_queued",
            "Jobs created since the daemon started",
            self.jobs_queued.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs that ended since the daemon started, by final state",
            self.jobs_finished.clone(),
        );
        r.register(
            "provision_step_duration_seconds",
            "Duration of successful provisioning steps",
            self.provision_step.clone(),
        );
        r.register(
            "provision_failures",
            "Provisioning failures by step",
            self.provision_failures.clone(),
        );
        r.register(
            "sandbox_time_to_ready_seconds",
            "Time from a sandbox's request to its first READY",
            self.time_to_ready.clone(),
        );
        r.register(
            "backend_call_duration_seconds",
            "Latency of hypervisor backend calls, failed ones included",
            self.backend_call.clone(),
        );
        r.register(
            "backend_call_errors",
            "Hypervisor backend calls that returned an error, by call and error kind",
            self.backend_errors.clone(),
        );
        r.register(
            "lease_expirations",
            "Sandbox leases that expired",
            self.lease_expirations.clone(),
        );
        r.register(
            "artifacts_stored",
            "Artifacts stored",
            self.artifacts_stored.clone(),
        );
        r.register(
            "artifact_bytes",
            "Bytes of artifacts stored",
            self.artifact_bytes.clone(),
        );
        r.register(
            "bootstrap_refused",
            "Bootstrap fetches refused, by reason",
            self.bootstrap_refused.clone(),
        );
        r.register(
            "guest_requests",
            "Requests served by the guest listener, by route template, method and status",
            self.guest_requests.clone(),
        );
    }

    /// The registry (to encode it, or to register an embedder's own metrics next to ours
    /// through a wrapper of its own).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
