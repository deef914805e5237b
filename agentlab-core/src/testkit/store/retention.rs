//! Conformance checks for retention: batched pruning of old events and of ended jobs, and
//! what is always kept (events of live sandboxes and unfinished jobs, unfinished jobs, jobs
//! with artifacts or a live sandbox).

use super::{ok, plus_secs, sample_artifact, sample_job, sample_sandbox, t0, vmid};
use crate::event::{Event, EventKind, EventQuery, NewEvent};
use crate::ids::JobId;
use crate::model::Job;
use crate::state::{JobState, SandboxState};
use crate::store::{PrunedJobs, StateStore, StateStoreError};
use crate::time::Timestamp;

const DAY: i64 = 86_400;

/// Long before every other section's records, so only this section's are old enough.
fn base() -> Timestamp {
    plus_secs(t0(), -1000 * DAY)
}

async fn job_in(store: &dyn StateStore, state: JobState, ended: Option<Timestamp>) -> Job {
    let mut job = sample_job(t0());
    ok(store.insert_job(&job).await, "insert_job");
    if state != JobState::Queued {
        job.state = state;
        job.ended_at = ended;
        job.updated_at = ended.unwrap_or(job.updated_at);
        ok(store.update_job(&job, JobState::Queued).await, "update_job");
    }
    job
}

async fn event(store: &dyn StateStore, secs: i64, f: impl FnOnce(NewEvent) -> NewEvent) -> Event {
    let ev = f(NewEvent::new(
        plus_secs(base(), secs),
        EventKind::Warning,
        format!("retention {secs}"),
    ));
    ok(store.append_event(ev).await, "append_event")
}

async fn exists(store: &dyn StateStore, e: &Event) -> bool {
    let q = EventQuery {
        after: Some(e.id - 1),
        limit: Some(1),
        ..EventQuery::default()
    };
    ok(store.events(&q).await, "events")
        .first()
        .is_some_and(|f| f.id == e.id)
}

pub(super) async fn retention(store: &dyn StateStore) {
    let cutoff = plus_secs(base(), 100 * DAY);
    let old_end = Some(plus_secs(base(), DAY));
    let running = job_in(store, JobState::Running, None).await;
    let finished = job_in(store, JobState::Completed, old_end).await;
    let with_artifact = job_in(store, JobState::Failed, old_end).await;
    let recent = job_in(store, JobState::Completed, Some(plus_secs(cutoff, DAY))).await;
    let held = job_in(store, JobState::Completed, old_end).await;
    let bytes_before = ok(store.artifact_bytes_total().await, "artifact_bytes_total");
    ok(
        store
            .put_artifact(&sample_artifact(&with_artifact.id, "a.tar.gz", t0()))
            .await,
        "put_artifact",
    );
    assert_eq!(
        ok(store.artifact_bytes_total().await, "artifact_bytes_total"),
        bytes_before + 42,
        "artifact_bytes_total sums the artifact sizes"
    );
    let mut live = sample_sandbox(vmid(8101), t0());
    live.job = Some(held.id.clone());
    ok(store.insert_sandbox(&live).await, "insert_sandbox");
    let mut gone = sample_sandbox(vmid(8102), t0());
    ok(store.insert_sandbox(&gone).await, "insert_sandbox");
    gone.state = SandboxState::Destroyed;
    ok(
        store.update_sandbox(&gone, SandboxState::Requested).await,
        "update_sandbox",
    );

    let plain = event(store, 0, |e| e).await;
    let of_live = event(store, 1, |e| e.sandbox(live.vmid)).await;
    let of_gone = event(store, 2, |e| e.sandbox(gone.vmid)).await;
    let of_running = event(store, 3, |e| e.job(Some(running.id.clone()))).await;
    let of_finished = event(store, 4, |e| e.job(Some(finished.id.clone()))).await;
    let new_plain = event(store, 200 * DAY, |e| e).await;
    let new_of_finished = event(store, 200 * DAY, |e| e.job(Some(finished.id.clone()))).await;

    // Oldest first, at most one batch per call.
    assert_eq!(
        ok(
            store.prune_events_before(cutoff, 2).await,
            "prune_events_before"
        ),
        2,
        "a prune deletes one batch"
    );
    assert!(
        !exists(store, &plain).await && !exists(store, &of_gone).await,
        "the oldest prunable events go first"
    );
    assert!(exists(store, &of_finished).await, "the batch limit holds");
    assert_eq!(
        ok(
            store.prune_events_before(cutoff, 100).await,
            "prune_events_before"
        ),
        1,
        "the rest of the old events go"
    );
    assert_eq!(
        ok(
            store.prune_events_before(cutoff, 100).await,
            "prune_events_before"
        ),
        0,
        "nothing prunable is left"
    );
    for (e, why) in [
        (&of_live, "an event of a sandbox that is not DESTROYED"),
        (&of_running, "an event of a running job"),
        (&new_plain, "a recent event"),
        (&new_of_finished, "a recent event of an ended job"),
    ] {
        assert!(exists(store, e).await, "{why} is kept");
    }

    assert_eq!(
        ok(
            store.prune_jobs_finished_before(cutoff, 100).await,
            "prune_jobs_finished_before"
        ),
        PrunedJobs { jobs: 1, events: 1 },
        "an ended old job goes with its events"
    );
    assert!(
        matches!(
            store.get_job(&finished.id).await,
            Err(StateStoreError::NotFound { .. })
        ),
        "the pruned job is gone"
    );
    assert!(
        !exists(store, &new_of_finished).await,
        "its events are gone"
    );
    for (j, why) in [
        (&running.id, "a running job"),
        (&with_artifact.id, "a job with artifacts"),
        (&recent.id, "a recently ended job"),
        (&held.id, "a job whose sandbox is not DESTROYED"),
    ] {
        let got: Result<Job, _> = store.get_job(j).await;
        assert!(got.is_ok(), "{why} is kept: {got:?}");
    }
    assert_eq!(
        ok(
            store.prune_jobs_finished_before(cutoff, 100).await,
            "prune_jobs_finished_before"
        ),
        PrunedJobs::default(),
        "nothing prunable is left"
    );
    prune_job_batches(store, cutoff).await;
}

/// Jobs are deleted in batches, oldest ended first.
async fn prune_job_batches(store: &dyn StateStore, cutoff: Timestamp) {
    let older = job_in(store, JobState::Cancelled, Some(plus_secs(base(), 5))).await;
    let newer = job_in(store, JobState::Timeout, Some(plus_secs(base(), 6))).await;
    let first = ok(
        store.prune_jobs_finished_before(cutoff, 1).await,
        "prune_jobs_finished_before",
    );
    assert_eq!(first.jobs, 1, "one batch of one job");
    let alive = |id: &JobId| {
        let id = id.clone();
        async move { store.get_job(&id).await.is_ok() }
    };
    assert!(
        !alive(&older.id).await && alive(&newer.id).await,
        "the job that ended first goes first"
    );
    ok(
        store.prune_jobs_finished_before(cutoff, 1).await,
        "prune_jobs_finished_before",
    );
    assert!(!alive(&newer.id).await, "the next batch takes the next job");

    // A job with more events than a batch goes over several calls, its events first.
    let chatty = job_in(store, JobState::Completed, Some(plus_secs(base(), 7))).await;
    for i in 0..3 {
        event(store, 300 * DAY + i, |e| e.job(Some(chatty.id.clone()))).await;
    }
    let step = |n| async move {
        ok(
            store.prune_jobs_finished_before(cutoff, n).await,
            "prune_jobs_finished_before",
        )
    };
    assert_eq!(
        step(2).await,
        PrunedJobs { jobs: 0, events: 2 },
        "a batch bounds the events deleted"
    );
    assert!(alive(&chatty.id).await, "the job waits for its last events");
    assert_eq!(step(2).await, PrunedJobs { jobs: 1, events: 1 });
    assert_eq!(step(2).await, PrunedJobs::default(), "nothing is left");
}
