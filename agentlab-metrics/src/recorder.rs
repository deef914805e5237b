//! [`EventRecorder`]: turns stored engine events into counters and histograms, and
//! [`spawn_event_recorder`], the task that feeds it. The task wakes on the engine's change
//! announcements but reads the events themselves from the store in id order, so a lagging
//! receiver loses no event and none is counted twice.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use agentlab_core::engine::Change;
use agentlab_core::{Event, EventKind, EventQuery, SandboxState, StateStore, StateStoreError};

use crate::families::{Metrics, ReasonLabels, StateLabels, StepLabels};

/// The event kinds the recorder reads (every other kind leaves the metrics unchanged).
pub const RECORDED_KINDS: [EventKind; 9] = [
    EventKind::JobQueued,
    EventKind::JobFinished,
    EventKind::JobTimeout,
    EventKind::ProvisionStep,
    EventKind::ProvisionFailed,
    EventKind::StateChanged,
    EventKind::LeaseExpired,
    EventKind::ArtifactStored,
    EventKind::BootstrapRefused,
];

/// Refusal reasons the engine writes; anything else is counted as `other`.
const REFUSAL_REASONS: [&str; 5] = [
    "used",
    "expired",
    "unknown",
    "wrong_address",
    "never_fetched",
];

/// Events read per store query.
const PAGE: u32 = 256;

/// Updates [`Metrics`] from events; reads the store for what an event does not carry (a
/// finished job's state, a sandbox's creation time).
#[derive(Debug, Clone)]
pub struct EventRecorder {
    metrics: Arc<Metrics>,
    store: Arc<dyn StateStore>,
}

fn str_field<'a>(ev: &'a Event, key: &str) -> Option<&'a str> {
    ev.payload.get(key).and_then(serde_json::Value::as_str)
}

impl EventRecorder {
    /// A recorder writing into `metrics`, reading `store`.
    pub fn new(metrics: Arc<Metrics>, store: Arc<dyn StateStore>) -> Self {
        Self { metrics, store }
    }

    /// Applies one event. A store read that fails leaves that event's metric unchanged.
    pub async fn record(&self, ev: &Event) {
        let m = &self.metrics;
        match ev.kind {
            EventKind::JobQueued => {
                m.jobs_queued.inc();
            }
            EventKind::JobTimeout => {
                m.jobs_finished
                    .get_or_create(&StateLabels {
                        state: "TIMEOUT".to_owned(),
                    })
                    .inc();
            }
            EventKind::JobFinished => {
                let Some(id) = &ev.job else { return };
                match self.store.get_job(id).await {
                    Ok(job) if job.state.is_terminal() => {
                        m.jobs_finished
                            .get_or_create(&StateLabels {
                                state: job.state.to_string(),
                            })
                            .inc();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(job = %id, error = %e, "metrics: job not read"),
                }
            }
            EventKind::ProvisionStep => {
                let step = str_field(ev, "step").unwrap_or("unknown").to_owned();
                if let Some(ms) = ev.payload.get("duration_ms").and_then(|v| v.as_u64()) {
                    #[allow(clippy::cast_precision_loss)]
                    let secs = ms as f64 / 1000.0;
                    m.provision_step
                        .get_or_create(&StepLabels { step })
                        .observe(secs);
                }
            }
            EventKind::ProvisionFailed => {
                let step = str_field(ev, "step").unwrap_or("unknown").to_owned();
                m.provision_failures
                    .get_or_create(&StepLabels { step })
                    .inc();
            }
            EventKind::StateChanged => self.state_changed(ev).await,
            EventKind::LeaseExpired => {
                m.lease_expirations.inc();
            }
            EventKind::ArtifactStored => {
                m.artifacts_stored.inc();
                if let Some(size) = ev.payload.get("size").and_then(|v| v.as_u64()) {
                    m.artifact_bytes.inc_by(size);
                }
            }
            EventKind::BootstrapRefused => {
                let reason = str_field(ev, "reason").unwrap_or("other");
                let reason = if REFUSAL_REASONS.contains(&reason) {
                    reason
                } else {
                    "other"
                };
                m.bootstrap_refused
                    .get_or_create(&ReasonLabels {
                        reason: reason.to_owned(),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    /// A sandbox's first READY observes the time since its request.
    async fn state_changed(&self, ev: &Event) {
        let ready = serde_json::to_value(SandboxState::Ready).unwrap_or_default();
        if ev.payload.get("to") != Some(&ready) {
            return;
        }
        let Some(vmid) = ev.sandbox else { return };
        let Ok(sb) = self.store.get_sandbox(vmid).await else {
            return;
        };
        // A vmid is reused after a destroy: only events since this sandbox's creation count.
        let earlier = self
            .store
            .events(&EventQuery {
                sandbox: Some(vmid),
                kinds: vec![EventKind::StateChanged],
                ..EventQuery::default()
            })
            .await;
        let Ok(earlier) = earlier else { return };
        let ready_before = earlier
            .iter()
            .any(|e| e.id < ev.id && e.ts >= sb.created_at && e.payload.get("to") == Some(&ready));
        if ready_before || ev.ts < sb.created_at {
            return;
        }
        let secs = (ev.ts - sb.created_at).num_milliseconds();
        #[allow(clippy::cast_precision_loss)]
        self.metrics.time_to_ready.observe(secs as f64 / 1000.0);
    }

    /// The id of the newest stored event (0 when there is none): where recording starts.
    pub async fn last_event_id(&self) -> Result<i64, StateStoreError> {
        let q = EventQuery {
            tail: Some(1),
            ..EventQuery::default()
        };
        Ok(self.store.events(&q).await?.last().map_or(0, |e| e.id))
    }

    /// Records every event after `after` of a recorded kind; returns the last id seen.
    pub async fn catch_up(&self, mut after: i64) -> Result<i64, StateStoreError> {
        loop {
            let q = EventQuery {
                after: Some(after),
                limit: Some(PAGE),
                kinds: RECORDED_KINDS.to_vec(),
                ..EventQuery::default()
            };
            let batch = self.store.events(&q).await?;
            for ev in &batch {
                self.record(ev).await;
                after = ev.id;
            }
            if batch.len() < PAGE as usize {
                return Ok(after);
            }
        }
    }
}

/// Runs `recorder` over every event appended after this call returns, woken by `changes`
/// (take it from [`agentlab_core::engine::Lab::subscribe_changes`] before anything is
/// appended that should count). Where the store ends is read before the task is spawned;
/// when that read fails, the task counts every stored event. The task ends when `cancel`
/// fires or the channel closes.
pub async fn spawn_event_recorder(
    recorder: EventRecorder,
    mut changes: broadcast::Receiver<Change>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let start = recorder.last_event_id().await;
    tokio::spawn(async move {
        let mut last = match start {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the event store; counting from id 0");
                0
            }
        };
        loop {
            let wake = tokio::select! {
                () = cancel.cancelled() => return,
                r = changes.recv() => r,
            };
            match wake {
                Ok(Change::Event { .. }) | Err(RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(RecvError::Closed) => return,
            }
            let caught = tokio::select! {
                () = cancel.cancelled() => return,
                r = recorder.catch_up(last) => r,
            };
            match caught {
                Ok(id) => last = id,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: reading events failed; retrying on the next one");
                }
            }
        }
    })
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
