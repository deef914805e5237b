//! Retention of the [`super::MemoryStore`]: the same rules and order as the SQLite store's
//! batched prunes.

use std::collections::HashSet;

use super::Inner;
use crate::event::Event;
use crate::ids::JobId;
use crate::state::SandboxState;
use crate::store::PrunedJobs;
use crate::time::Timestamp;

/// Whether `e` may go: its sandbox record (if any) is DESTROYED or gone, its job (if any) has
/// ended or is gone.
fn prunable(inner: &Inner, e: &Event) -> bool {
    let sandbox_done = e.sandbox.is_none_or(|v| {
        inner
            .sandboxes
            .get(&v)
            .is_none_or(|s| s.state == SandboxState::Destroyed)
    });
    let job_done = e
        .job
        .as_ref()
        .is_none_or(|j| inner.jobs.get(j).is_none_or(|(_, j)| j.state.is_terminal()));
    sandbox_done && job_done
}

/// See [`crate::StateStore::prune_events_before`].
pub(super) fn events_before(inner: &mut Inner, before: Timestamp, batch: u32) -> u64 {
    let mut old: Vec<(Timestamp, i64)> = inner
        .events
        .iter()
        .filter(|e| e.ts < before && prunable(inner, e))
        .map(|e| (e.ts, e.id))
        .collect();
    old.sort_unstable();
    let gone: HashSet<i64> = old
        .into_iter()
        .take(batch as usize)
        .map(|(_, id)| id)
        .collect();
    inner.events.retain(|e| !gone.contains(&e.id));
    gone.len() as u64
}

/// See [`crate::StateStore::prune_jobs_finished_before`].
pub(super) fn jobs_finished_before(inner: &mut Inner, before: Timestamp, batch: u32) -> PrunedJobs {
    let held = |id: &JobId| {
        inner.artifacts.keys().any(|(j, _)| j == id)
            || inner
                .sandboxes
                .values()
                .any(|s| s.job.as_ref() == Some(id) && s.state != SandboxState::Destroyed)
    };
    let mut old: Vec<(Timestamp, JobId)> = inner
        .jobs
        .values()
        .filter(|(_, j)| j.state.is_terminal() && j.ended_at.is_some_and(|t| t < before))
        .filter(|(_, j)| !held(&j.id))
        .filter_map(|(_, j)| j.ended_at.map(|t| (t, j.id.clone())))
        .collect();
    old.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
    let mut out = PrunedJobs::default();
    let mut budget = u64::from(batch);
    for (_, id) in old.into_iter().take(batch as usize) {
        let mut left = budget;
        inner.events.retain(|e| {
            if left > 0 && e.job.as_ref() == Some(&id) {
                left -= 1;
                false
            } else {
                true
            }
        });
        let n = budget - left;
        out.events += n;
        if n == budget {
            break;
        }
        budget -= n;
        inner.jobs.remove(&id);
        out.jobs += 1;
    }
    out
}

/// See [`crate::StateStore::artifact_bytes_total`].
pub(super) fn artifact_bytes(inner: &Inner) -> u64 {
    inner.artifacts.values().map(|a| a.size).sum()
}
