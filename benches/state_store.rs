//! State-store benchmarks on a real [`SqliteStore`] file in a temporary directory (and the
//! in-memory fake for comparison): compare-and-set sandbox transitions, event appends and
//! event queries with `tail`.
//!
//! Run with `cargo bench -p agentlab-benches --bench state_store`.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentlab_core::event::{EventKind, EventQuery, NewEvent};
use agentlab_core::fake::store::MemoryStore;
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::testkit::store::{sample_sandbox, t0, vmid};
use agentlab_core::{JobId, SandboxState, StateStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// A legal cycle of sandbox states: READY -> RUNNING -> SUSPENDED -> READY.
const CYCLE: [SandboxState; 3] = [
    SandboxState::Ready,
    SandboxState::Running,
    SandboxState::Suspended,
];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Inserts sandbox `n` in state READY, the start of [`CYCLE`].
async fn ready_sandbox(store: &dyn StateStore, n: u32) {
    let mut sb = sample_sandbox(vmid(n), t0());
    sb.state = SandboxState::Ready;
    store.insert_sandbox(&sb).await.expect("insert sandbox");
}

/// One compare-and-set step along [`CYCLE`].
async fn transition(store: &dyn StateStore, n: u32, step: &AtomicUsize) {
    let i = step.fetch_add(1, Ordering::Relaxed);
    let mut sb = sample_sandbox(vmid(n), t0());
    sb.state = CYCLE[(i + 1) % CYCLE.len()];
    store
        .update_sandbox(&sb, CYCLE[i % CYCLE.len()])
        .await
        .expect("legal transition");
}

fn sandbox_transitions(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = rt
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .expect("open store");
    let memory = MemoryStore::new();
    let mut group = c.benchmark_group("sandbox_transition");
    group.throughput(Throughput::Elements(1));
    for (name, store) in [("sqlite", &sqlite as &dyn StateStore), ("memory", &memory)] {
        rt.block_on(ready_sandbox(store, 1000));
        let step = AtomicUsize::new(0);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| transition(store, 1000, &step));
        });
    }
    group.finish();
}

fn event_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = rt
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .expect("open store");
    let job = JobId::generate();
    let mut group = c.benchmark_group("event_append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sqlite", |b| {
        b.to_async(&rt).iter(|| async {
            let ev = NewEvent::new(t0(), EventKind::JobLog, "a line of agent output")
                .sandbox(vmid(1000))
                .job(Some(job.clone()));
            black_box(sqlite.append_event(ev).await.expect("append"))
        });
    });
    group.finish();
}

fn event_tail(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = rt
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .expect("open store");
    let jobs: Vec<JobId> = (0..10).map(|_| JobId::generate()).collect();
    rt.block_on(async {
        for i in 0..10_000_usize {
            let ev = NewEvent::new(t0(), EventKind::JobLog, format!("line {i}"))
                .sandbox(vmid(1000 + (i % 10) as u32))
                .job(Some(jobs[i % 10].clone()));
            sqlite.append_event(ev).await.expect("append");
        }
    });
    let mut group = c.benchmark_group("event_query");
    let by_job = EventQuery {
        job: Some(jobs[3].clone()),
        tail: Some(50),
        ..EventQuery::default()
    };
    group.bench_function("job_tail_50_of_10k", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(sqlite.events(&by_job).await.expect("query")) });
    });
    let by_sandbox = EventQuery {
        sandbox: Some(vmid(1007)),
        after: Some(9_000),
        ..EventQuery::default()
    };
    group.bench_function("sandbox_after_9000_of_10k", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(sqlite.events(&by_sandbox).await.expect("query")) });
    });
    group.finish();
}

criterion_group!(benches, sandbox_transitions, event_append, event_tail);
criterion_main!(benches);
