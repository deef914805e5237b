//! [`Exporter`]: refreshes the gauges read from the state store, then renders the registry
//! in the OpenMetrics text format. The store reads happen first (off the async threads, as
//! every store method does); the gauge refresh and the encoding then run under one short
//! lock, so concurrent scrapes never see a half-refreshed family.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;

use agentlab_core::{Clock, SandboxFilter, StateStore};

use crate::error::MetricsError;
use crate::families::{Metrics, StateLabels, StateProfileLabels};

/// Renders `/metrics`: the registry plus gauges from the store.
#[derive(Debug, Clone)]
pub struct Exporter {
    metrics: Arc<Metrics>,
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
}

/// What one scrape read from the store.
struct Snapshot {
    sandboxes: BTreeMap<(String, String), i64>,
    unchanged_max: BTreeMap<String, f64>,
    jobs: BTreeMap<String, i64>,
    events: i64,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Exporter {
    /// An exporter of `metrics` reading gauges from `store` (ages measured with `clock`).
    pub fn new(metrics: Arc<Metrics>, store: Arc<dyn StateStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            metrics,
            store,
            clock,
        }
    }

    /// The exporter of an engine: its store and clock.
    pub fn for_lab(metrics: Arc<Metrics>, lab: &agentlab_core::engine::Lab) -> Self {
        let deps = lab.deps();
        Self::new(metrics, Arc::clone(&deps.store), Arc::clone(&deps.clock))
    }

    /// The metrics this exporter renders.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn snapshot(&self) -> Result<Snapshot, MetricsError> {
        let live = self
            .store
            .list_sandboxes(&SandboxFilter::default())
            .await
            .map_err(|source| MetricsError::Store {
                what: "sandboxes",
                source,
            })?;
        let counts = self
            .store
            .counts()
            .await
            .map_err(|source| MetricsError::Store {
                what: "counts",
                source,
            })?;
        let events = self
            .store
            .event_count()
            .await
            .map_err(|source| MetricsError::Store {
                what: "event count",
                source,
            })?;
        let now = self.clock.now();
        let mut sandboxes = BTreeMap::new();
        let mut unchanged_max: BTreeMap<String, f64> = BTreeMap::new();
        for sb in &live {
            let state = sb.state.to_string();
            *sandboxes
                .entry((state.clone(), sb.profile.clone()))
                .or_insert(0) += 1;
            #[allow(clippy::cast_precision_loss)]
            let age = (now - sb.updated_at).num_milliseconds().max(0) as f64 / 1000.0;
            let max = unchanged_max.entry(state).or_insert(0.0);
            *max = max.max(age);
        }
        let jobs = counts
            .jobs
            .iter()
            .map(|(s, n)| (s.to_string(), gauge_value(*n)))
            .collect();
        Ok(Snapshot {
            sandboxes,
            unchanged_max,
            jobs,
            events: gauge_value(events),
        })
    }

    fn apply(&self, snap: Snapshot) {
        let m = &self.metrics;
        m.sandboxes.clear();
        for ((state, profile), n) in snap.sandboxes {
            m.sandboxes
                .get_or_create(&StateProfileLabels { state, profile })
                .set(n);
        }
        m.sandbox_unchanged_max.clear();
        for (state, secs) in snap.unchanged_max {
            m.sandbox_unchanged_max
                .get_or_create(&StateLabels { state })
                .set(secs);
        }
        m.jobs.clear();
        for (state, n) in snap.jobs {
            m.jobs.get_or_create(&StateLabels { state }).set(n);
        }
        m.events_stored.set(snap.events);
    }

    /// Refreshes the store gauges and returns the whole registry as OpenMetrics text.
    pub async fn render(&self) -> Result<String, MetricsError> {
        let snap = self.snapshot().await?;
        let _one_scrape = self
            .metrics
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.apply(snap);
        let mut out = String::new();
        encode(&mut out, &self.metrics.registry).map_err(MetricsError::Encode)?;
        Ok(out)
    }
}

#[cfg(test)]
#[path = "scrape_tests.rs"]
mod tests;
