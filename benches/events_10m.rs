//! The event store at 10 million rows (SQLite): appending an event, the newest page of a
//! sandbox's events, following a job's events after an id, and one retention prune batch.
//!
//! The database is built once (bulk transactions through
//! `SqliteStore::append_events_bulk`) and cached next to the bench binary under
//! `target/<profile>/agentlab-bench-cache/`, keyed by schema version and row count; each
//! run first tops it back up to 10 million rows (the prune benchmark deletes some).
//!
//! Run with `cargo bench -p agentlab-benches --bench events_10m -- --sample-size 10`
//! (`AGENTLAB_BENCH_EVENTS=N` for another size).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use agentlab_core::event::{EventKind, EventQuery, NewEvent};
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::testkit::store::{plus_secs, t0, vmid};
use agentlab_core::{JobId, StateStore, Timestamp};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Sandboxes the rows are spread over (each with one job).
const SANDBOXES: u64 = 10_000;
/// Rows per bulk transaction.
const CHUNK: u64 = 200_000;

fn rows() -> u64 {
    std::env::var("AGENTLAB_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The job of sandbox `s` (stable across runs, so the cached file's ids match).
fn job_of(s: u64) -> JobId {
    format!("job-{s:026}").parse().expect("job id")
}

/// Row `i`: sandbox `i % SANDBOXES`, one row every 10 ms from [`t0`].
fn row(i: u64) -> NewEvent {
    let s = i % SANDBOXES;
    let ts: Timestamp = t0() + chrono::Duration::milliseconds(i as i64 * 10);
    NewEvent::new(
        ts,
        EventKind::JobLog,
        format!("line {i} of the agent's output"),
    )
    .sandbox(vmid(1000 + s as u32))
    .job(Some(job_of(s)))
}

fn cache_path(rows: u64) -> PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    // target/<profile>/deps/<bench> -> target/<profile>/agentlab-bench-cache
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("agentlab-bench-cache"))
        .expect("target dir");
    std::fs::create_dir_all(&dir).expect("cache dir");
    dir.join(format!(
        "events-{rows}-schema-v{}.db",
        SqliteStore::SCHEMA_VERSION
    ))
}

/// Opens the cached store and tops it up to `rows` events (old timestamps, so the prune
/// benchmark always finds work).
async fn store(rows: u64) -> SqliteStore {
    let path = cache_path(rows);
    let store = SqliteStore::open(&path).await.expect("open store");
    let have = store.event_count().await.expect("count");
    if have < rows {
        let started = Instant::now();
        let mut i = have;
        while i < rows {
            let end = (i + CHUNK).min(rows);
            let batch: Vec<NewEvent> = (i..end).map(row).collect();
            store.append_events_bulk(batch).await.expect("bulk insert");
            i = end;
        }
        eprintln!(
            "events_10m: added {} rows to {} in {:.1} s",
            rows - have,
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    store
}

fn events_10m(c: &mut Criterion) {
    let rt = runtime();
    let n = rows();
    let store = rt.block_on(store(n));
    let last_id = rt
        .block_on(store.events(&EventQuery {
            tail: Some(1),
            ..EventQuery::default()
        }))
        .expect("last event")
        .first()
        .map_or(0, |e| e.id);
    let mut group = c.benchmark_group(format!("events_{n}"));

    group.bench_function("append", |b| {
        b.to_async(&rt).iter(|| async {
            let ev = NewEvent::new(
                plus_secs(t0(), 86_400 * 365),
                EventKind::JobLog,
                "one more line",
            )
            .sandbox(vmid(1000))
            .job(Some(job_of(0)));
            black_box(store.append_event(ev).await.expect("append"))
        });
    });

    let newest_page = EventQuery {
        sandbox: Some(vmid(1000 + 4242)),
        tail: Some(100),
        ..EventQuery::default()
    };
    group.bench_function("sandbox_newest_page_100", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.events(&newest_page).await.expect("query")) });
    });

    // A follower of one job that has seen everything but the last ~100k rows.
    let follow = EventQuery {
        job: Some(job_of(777)),
        after: Some(last_id.saturating_sub(100_000)),
        limit: Some(1000),
        ..EventQuery::default()
    };
    group.bench_function("job_follow_after_id", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.events(&follow).await.expect("query")) });
    });

    // Everything older than a day of rows (about the oldest 8.6 million) is prunable.
    let cutoff = plus_secs(t0(), 86_400);
    group.bench_function("prune_batch_1000", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                store
                    .prune_events_before(cutoff, 1000)
                    .await
                    .expect("prune"),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, events_10m);
criterion_main!(benches);
