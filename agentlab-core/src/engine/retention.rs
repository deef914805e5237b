//! Retention of the event store: one pass deletes ended jobs (with their events) and events
//! older than the configured ages, in small batches so a large prune never holds the store's
//! write lock for long, and records what it deleted.

use tokio_util::sync::CancellationToken;

use crate::engine::error::EngineError;
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};

/// What a retention pass deletes (the daemon config's `retention:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Events older than this many days go (`None` keeps them).
    pub events_days: Option<u32>,
    /// Jobs that ended more than this many days ago go with their events (`None` keeps
    /// them).
    pub jobs_days: Option<u32>,
    /// Events deleted per write (default 1000: about 75 ms of write lock per batch at 10
    /// million events, see `docs/performance.md`).
    pub event_batch: u32,
    /// Jobs, and events of ended jobs, deleted per write (default 1000).
    pub job_batch: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            events_days: Some(30),
            jobs_days: Some(90),
            event_batch: 1000,
            job_batch: 1000,
        }
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Events deleted for their age.
    pub events: u64,
    /// Ended jobs deleted.
    pub jobs: u64,
    /// Events deleted with those jobs.
    pub job_events: u64,
    /// Whether the pass stopped early because it was cancelled.
    pub cancelled: bool,
}

impl Lab {
    /// Runs one retention pass: ended jobs older than `jobs_days` with their events, then
    /// events older than `events_days` (see [`crate::StateStore::prune_events_before`] for
    /// what is always kept), batch by batch until nothing is left or `cancel` fires. A pass
    /// that deleted something logs one line and records one `retention_pruned` event.
    pub async fn prune_retention(
        &self,
        policy: &RetentionPolicy,
        cancel: &CancellationToken,
    ) -> Result<PruneReport, EngineError> {
        let now = self.now();
        let cutoff = |days: u32| now - chrono::Duration::days(i64::from(days));
        let mut report = PruneReport::default();
        if let Some(days) = policy.jobs_days {
            let before = cutoff(days);
            loop {
                if cancel.is_cancelled() {
                    report.cancelled = true;
                    break;
                }
                let n = self
                    .deps
                    .store
                    .prune_jobs_finished_before(before, policy.job_batch.max(1))
                    .await?;
                report.jobs += n.jobs;
                report.job_events += n.events;
                if n.jobs == 0 && n.events == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        if let Some(days) = policy.events_days.filter(|_| !report.cancelled) {
            let before = cutoff(days);
            loop {
                if cancel.is_cancelled() {
                    report.cancelled = true;
                    break;
                }
                let n = self
                    .deps
                    .store
                    .prune_events_before(before, policy.event_batch.max(1))
                    .await?;
                report.events += n;
                if n < u64::from(policy.event_batch.max(1)) {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        if report.events + report.jobs + report.job_events > 0 {
            tracing::info!(
                events = report.events,
                jobs = report.jobs,
                job_events = report.job_events,
                events_days = policy.events_days,
                jobs_days = policy.jobs_days,
                cancelled = report.cancelled,
                "retention pruned the event store"
            );
            self.event(
                NewEvent::new(
                    self.now(),
                    EventKind::RetentionPruned,
                    format!(
                        "retention pruned {} events and {} jobs ({} job events)",
                        report.events, report.jobs, report.job_events
                    ),
                )
                .payload(serde_json::json!({
                    "events": report.events,
                    "jobs": report.jobs,
                    "job_events": report.job_events,
                    "events_before": policy.events_days.map(cutoff),
                    "jobs_before": policy.jobs_days.map(cutoff),
                })),
            )
            .await;
        }
        Ok(report)
    }
}
