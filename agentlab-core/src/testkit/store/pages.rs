//! Conformance checks for cursor pages (jobs newest first, sandboxes by vmid) and per-state
//! counts through every state transition.

use std::collections::{BTreeMap, HashSet};

use super::{ok, plus_secs, sample_job, sample_sandbox, t0, vmid};
use crate::ids::JobId;
use crate::state::{JobState, SandboxState};
use crate::store::{JobFilter, SandboxFilter, StateCounts, StateStore, StateStoreError};

/// Pages through every job with `limit`, inserting a newer job after each page; returns the
/// ids seen and the ids inserted meanwhile.
async fn page_all(
    store: &dyn StateStore,
    filter: &JobFilter,
    limit: u32,
) -> (Vec<JobId>, Vec<JobId>) {
    let mut seen = Vec::new();
    let mut added = Vec::new();
    let mut after = None;
    // Strictly newer than every job in the store, also those of earlier calls.
    let offset = ok(store.list_jobs(&JobFilter::default()).await, "list_jobs").len() as i64;
    loop {
        let page = ok(
            store
                .list_jobs_page(&JobFilter {
                    limit: Some(limit),
                    after,
                    ..filter.clone()
                })
                .await,
            "list_jobs_page",
        );
        assert!(
            page.jobs.len() <= limit as usize,
            "state store conformance: a page holds at most `limit` jobs"
        );
        if page.next.is_some() {
            assert_eq!(
                page.jobs.len(),
                limit as usize,
                "state store conformance: a page with a next cursor is full"
            );
        }
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        let mut newer = sample_job(plus_secs(
            t0(),
            20 * 365 * 86_400 + offset + added.len() as i64,
        ));
        newer.created_at = newer.updated_at;
        ok(store.insert_job(&newer).await, "insert_job");
        added.push(newer.id);
        match page.next {
            Some(c) => after = Some(c),
            None => return (seen, added),
        }
        assert!(
            seen.len() < 10_000,
            "state store conformance: paging never ends"
        );
    }
}

/// Runs on a store without jobs: pages are complete, ordered, without repeats, and stable
/// while newer jobs are inserted; the last page has no cursor (also when it is full).
pub(super) async fn job_pages(store: &dyn StateStore) {
    let base = plus_secs(t0(), 10 * 365 * 86_400);
    let mut inserted = Vec::new();
    // Three jobs share one creation time: insertion order breaks the tie across pages.
    for (i, secs) in [0, 1, 1, 1, 2, 3, 4, 5, 6].into_iter().enumerate() {
        let mut job = sample_job(plus_secs(base, secs));
        if i % 3 == 0 {
            job.state = JobState::Running;
        }
        ok(store.insert_job(&job).await, "insert_job");
        inserted.push(job);
    }
    let newest_first: Vec<JobId> = inserted.iter().rev().map(|j| j.id.clone()).collect();
    for limit in [1, 2, 3, 4, 9, 10] {
        let before: HashSet<JobId> = ok(store.list_jobs(&JobFilter::default()).await, "list_jobs")
            .into_iter()
            .map(|j| j.id)
            .collect();
        let (seen, added) = page_all(store, &JobFilter::default(), limit).await;
        let ours: Vec<JobId> = seen
            .iter()
            .filter(|id| newest_first.contains(id))
            .cloned()
            .collect();
        assert_eq!(
            ours, newest_first,
            "state store conformance: pages of {limit} list every job once, newest first"
        );
        let unique: HashSet<&JobId> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "state store conformance: no job on two pages (limit {limit})"
        );
        assert_eq!(
            seen.iter().cloned().collect::<HashSet<_>>(),
            before,
            "state store conformance: jobs inserted while paging do not enter later pages"
        );
        assert!(added.iter().all(|id| !seen.contains(id)));
    }
    let running = JobFilter {
        states: vec![JobState::Running],
        ..JobFilter::default()
    };
    let (seen, _) = page_all(store, &running, 3).await;
    let expected: Vec<JobId> = inserted
        .iter()
        .rev()
        .filter(|j| j.state == JobState::Running)
        .map(|j| j.id.clone())
        .collect();
    assert_eq!(
        seen, expected,
        "state store conformance: a state filter pages as an exact fit (3 of 3, no cursor)"
    );
}

/// Sandboxes page by vmid with `after` and `limit`.
pub(super) async fn sandbox_pages(store: &dyn StateStore) {
    for n in [7001, 7002, 7003, 7005, 7008] {
        ok(
            store.insert_sandbox(&sample_sandbox(vmid(n), t0())).await,
            "insert_sandbox",
        );
    }
    let page = |after: Option<u32>, limit: Option<u32>| SandboxFilter {
        after: after.map(vmid),
        limit,
        ..SandboxFilter::default()
    };
    let vmids = |list: Vec<crate::model::Sandbox>| -> Vec<u32> {
        list.into_iter()
            .map(|s| s.vmid.get())
            .filter(|v| (7001..=7008).contains(v))
            .collect()
    };
    let first = ok(
        store.list_sandboxes(&page(Some(7000), Some(2))).await,
        "list",
    );
    assert_eq!(
        vmids(first),
        [7001, 7002],
        "state store conformance: first page by vmid"
    );
    let second = ok(
        store.list_sandboxes(&page(Some(7002), Some(2))).await,
        "list",
    );
    assert_eq!(
        vmids(second),
        [7003, 7005],
        "state store conformance: page after a vmid"
    );
    let last = ok(store.list_sandboxes(&page(Some(7005), None)).await, "list");
    assert_eq!(
        vmids(last),
        [7008],
        "state store conformance: rest after a vmid"
    );
}

fn delta(
    before: &StateCounts,
    after: &StateCounts,
) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    fn diff<K: Ord + ToString + Copy>(
        b: &BTreeMap<K, u64>,
        a: &BTreeMap<K, u64>,
    ) -> BTreeMap<String, i64> {
        let keys: std::collections::BTreeSet<K> = b.keys().chain(a.keys()).copied().collect();
        keys.into_iter()
            .map(|k| {
                let d =
                    a.get(&k).copied().unwrap_or(0) as i64 - b.get(&k).copied().unwrap_or(0) as i64;
                (k.to_string(), d)
            })
            .filter(|(_, d)| *d != 0)
            .collect()
    }
    (
        diff(&before.sandboxes, &after.sandboxes),
        diff(&before.jobs, &after.jobs),
    )
}

fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Counts follow inserts, every transition, DESTROYED replacement, and ignore refused writes.
pub(super) async fn counts(store: &dyn StateStore) {
    let start = ok(store.counts().await, "counts");
    let mut sb = sample_sandbox(vmid(7100), t0());
    ok(store.insert_sandbox(&sb).await, "insert_sandbox");
    let path = [
        SandboxState::Provisioning,
        SandboxState::Booting,
        SandboxState::Ready,
        SandboxState::Running,
        SandboxState::Completed,
        SandboxState::Destroying,
        SandboxState::Destroyed,
    ];
    let mut prev = SandboxState::Requested;
    for next in path {
        let mut stale = sb.clone();
        stale.state = SandboxState::Failed;
        let _ = store.update_sandbox(&stale, SandboxState::Stopped).await;
        sb.state = next;
        ok(store.update_sandbox(&sb, prev).await, "update_sandbox");
        let now = ok(store.counts().await, "counts");
        assert_eq!(
            delta(&start, &now).0,
            map(&[(next.as_str(), 1)]),
            "state store conformance: sandbox counts after {prev} -> {next}"
        );
        prev = next;
    }
    let mut again = sample_sandbox(vmid(7100), t0());
    again.name = "again".to_owned();
    ok(store.insert_sandbox(&again).await, "insert over DESTROYED");
    let now = ok(store.counts().await, "counts");
    assert_eq!(
        delta(&start, &now).0,
        map(&[("REQUESTED", 1)]),
        "state store conformance: counts after replacing a DESTROYED sandbox"
    );
    let _ = store.insert_sandbox(&again).await;

    let mut job = sample_job(t0());
    ok(store.insert_job(&job).await, "insert_job");
    let stale = job.clone();
    job.state = JobState::Running;
    ok(store.update_job(&job, JobState::Queued).await, "update_job");
    assert!(matches!(
        store.update_job(&stale, JobState::Queued).await,
        Err(StateStoreError::Conflict { .. })
    ));
    job.state = JobState::Completed;
    ok(
        store.update_job(&job, JobState::Running).await,
        "update_job",
    );
    ok(
        store.update_job(&job, JobState::Completed).await,
        "same-state write",
    );
    let now = ok(store.counts().await, "counts");
    assert_eq!(
        delta(&start, &now).1,
        map(&[("COMPLETED", 1)]),
        "state store conformance: job counts through QUEUED -> RUNNING -> COMPLETED"
    );
}

/// The counts equal what the listings hold (run last, after every other section's writes).
pub(super) async fn counts_match_records(store: &dyn StateStore) {
    let all = SandboxFilter {
        include_destroyed: true,
        ..SandboxFilter::default()
    };
    let mut expected = StateCounts::default();
    for sb in ok(store.list_sandboxes(&all).await, "list_sandboxes") {
        *expected.sandboxes.entry(sb.state).or_insert(0) += 1;
    }
    for job in ok(store.list_jobs(&JobFilter::default()).await, "list_jobs") {
        *expected.jobs.entry(job.state).or_insert(0) += 1;
    }
    assert_eq!(
        ok(store.counts().await, "counts"),
        expected,
        "state store conformance: counts equal the records after every section"
    );
}
