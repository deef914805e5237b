//! Job pages and per-state counts of the [`super::MemoryStore`].

use super::Inner;
use crate::model::Job;
use crate::store::{JobCursor, JobFilter, JobPage, StateCounts};

/// See [`crate::StateStore::list_jobs_page`]: newest first (creation time, then insertion
/// sequence), strictly after the cursor.
pub(super) fn job_page(inner: &Inner, filter: &JobFilter) -> JobPage {
    let key = |seq: u64, j: &Job| JobCursor {
        created_at: j.created_at,
        seq: i64::try_from(seq).unwrap_or(i64::MAX),
    };
    let mut jobs: Vec<(JobCursor, &Job)> = inner
        .jobs
        .values()
        .filter(|(_, j)| filter.states.is_empty() || filter.states.contains(&j.state))
        .map(|(seq, j)| (key(*seq, j), j))
        .filter(|(k, _)| filter.after.is_none_or(|a| *k < a))
        .collect();
    jobs.sort_by(|(a, _), (b, _)| b.cmp(a));
    let limit = filter.limit.map_or(usize::MAX, |l| l as usize);
    let next = (limit > 0 && jobs.len() > limit).then(|| jobs[limit - 1].0);
    JobPage {
        jobs: jobs
            .into_iter()
            .take(limit)
            .map(|(_, j)| j.clone())
            .collect(),
        next,
    }
}

/// See [`crate::StateStore::counts`] (counted from the maps: this is the fake).
pub(super) fn counts(inner: &Inner) -> StateCounts {
    let mut counts = StateCounts::default();
    for sb in inner.sandboxes.values() {
        *counts.sandboxes.entry(sb.state).or_insert(0) += 1;
    }
    for (_, job) in inner.jobs.values() {
        *counts.jobs.entry(job.state).or_insert(0) += 1;
    }
    counts
}
