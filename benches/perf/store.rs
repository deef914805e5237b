//! Store rows: a synthetic SQLite store (jobs and events through the real store code), then
//! status (per-state counts), a page of jobs (first and deep), and the tail of a job's events.

use std::time::Instant;

use agentlab_core::event::{EventKind, EventQuery, NewEvent};
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::testkit::store::{plus_secs, sample_job, t0};
use agentlab_core::{JobFilter, JobId, JobState, StateStore};

use crate::{Row, env_usize, p50_p99, time_n};

/// Jobs that receive events (the rest have none).
const EVENT_JOBS: usize = 1000;
/// Samples per latency row.
const SAMPLES: usize = 2000;

pub async fn run() -> Vec<Row> {
    let jobs = env_usize("AGENTLAB_PERF_JOBS", 100_000).max(EVENT_JOBS);
    let events = env_usize("AGENTLAB_PERF_EVENTS", 1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("perf.db"))
        .await
        .expect("open store");
    eprintln!("perf: building a store with {jobs} jobs and {events} events …");
    let t = Instant::now();
    let mut ids: Vec<JobId> = Vec::with_capacity(EVENT_JOBS);
    let states = [JobState::Completed, JobState::Failed, JobState::Cancelled];
    for i in 0..jobs {
        let mut job = sample_job(plus_secs(t0(), (i / 4) as i64));
        job.state = if i + 20 >= jobs {
            JobState::Running
        } else {
            states[i % states.len()]
        };
        store.insert_job(&job).await.expect("insert job");
        if ids.len() < EVENT_JOBS {
            ids.push(job.id);
        }
    }
    let jobs_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..events {
        let ev = NewEvent::new(t0(), EventKind::JobLog, format!("synthetic line {i}"))
            .job(Some(ids[i % ids.len()].clone()));
        store.append_event(ev).await.expect("append");
    }
    let events_secs = t.elapsed().as_secs_f64();
    let mut rows = vec![
        Row::new(
            format!("store build: insert_job ({jobs})"),
            jobs as f64 / jobs_secs,
            "rows/s",
        ),
        Row::new(
            format!("store build: append_event ({events})"),
            events as f64 / events_secs.max(1e-9),
            "rows/s",
        ),
    ];

    // Reference: one job by primary key (a point read of one row).
    let probe = ids[0].clone();
    let (point50, point99) = p50_p99(
        &mut time_n(SAMPLES, |_| async {
            store.get_job(&probe).await.expect("get job");
        })
        .await,
    );

    let (s50, s99) = p50_p99(
        &mut time_n(SAMPLES, |_| async {
            store.counts().await.expect("counts");
        })
        .await,
    );
    // The former status: every job read to count states (a few runs: it is slow).
    let (old50, _) = p50_p99(
        &mut time_n(3, |_| async {
            store
                .list_jobs(&JobFilter::default())
                .await
                .expect("list all");
        })
        .await,
    );
    rows.push(Row::new("status counts p50", s50, "ms").vs(old50));
    rows.push(
        Row::new("status counts p99 (ref: get_job p99)", s99, "ms")
            .vs(point99)
            .target("< 10 ms"),
    );

    let first = JobFilter {
        limit: Some(20),
        ..JobFilter::default()
    };
    let (l50, l99) = p50_p99(
        &mut time_n(SAMPLES, |_| async {
            store.list_jobs_page(&first).await.expect("page");
        })
        .await,
    );
    rows.push(Row::new("jobs page of 20 p50 (ref: get_job p50)", l50, "ms").vs(point50));
    rows.push(
        Row::new("jobs page of 20 p99", l99, "ms")
            .vs(point99)
            .target("< 10 ms"),
    );
    // Deep in the listing: the cursor of the job in the middle.
    let mut mid = JobFilter {
        limit: Some(jobs as u32 / 2),
        ..JobFilter::default()
    };
    let cursor = store.list_jobs_page(&mid).await.expect("page").next;
    mid = JobFilter {
        limit: Some(20),
        after: cursor,
        ..JobFilter::default()
    };
    let (_, d99) = p50_p99(
        &mut time_n(SAMPLES, |_| async {
            store.list_jobs_page(&mid).await.expect("page");
        })
        .await,
    );
    rows.push(
        Row::new("jobs page of 20 at the middle p99", d99, "ms")
            .vs(point99)
            .target("< 10 ms"),
    );
    let running = JobFilter {
        states: vec![JobState::Running],
        ..JobFilter::default()
    };
    let (_, r99) = p50_p99(
        &mut time_n(SAMPLES, |_| async {
            store.list_jobs(&running).await.expect("running");
        })
        .await,
    );
    rows.push(
        Row::new("tick's live jobs (20 RUNNING) p99", r99, "ms")
            .vs(point99)
            .target("< 10 ms"),
    );

    let tail = EventQuery {
        job: Some(probe.clone()),
        tail: Some(100),
        ..EventQuery::default()
    };
    let (t50, t99) = p50_p99(
        &mut time_n(SAMPLES, |_| async {
            store.events(&tail).await.expect("tail");
        })
        .await,
    );
    rows.push(Row::new("tail 100 of a job's events p50", t50, "ms").vs(point50));
    rows.push(
        Row::new("tail 100 of a job's events p99", t99, "ms")
            .vs(point99)
            .target("< 10 ms"),
    );
    rows
}
