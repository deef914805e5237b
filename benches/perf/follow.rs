//! Follow rows: `AGENTLAB_PERF_LOGGERS` jobs log at once through the engine's store (SQLite)
//! while one follower per job reads [`Lab::follow_events`] (the code behind the daemon's
//! NDJSON route, minus the socket hop); latency is line appended → follower receives it.
//! Then each job ends and the time until its stream closes is measured (`job run` returns
//! when the stream closes). The reference is the same line through a Unix socket pair.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentlab_core::SystemClock;
use agentlab_core::engine::{FollowItem, Lab, LabDeps, LabSettings};
use agentlab_core::event::{EventKind, EventQuery, NewEvent};
use agentlab_core::fake::{FakeFirewall, FakeHypervisor, MemorySecretStore};
use agentlab_core::profile::Profiles;
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::testkit::store::{sample_job, t0};
use agentlab_core::{JobState, StateStore};
use tokio_util::sync::CancellationToken;

use crate::{Row, env_usize, p50_p99};

/// Time between two lines of one logger.
const EVERY: Duration = Duration::from_millis(20);

pub async fn lab(store: Arc<dyn StateStore>) -> Arc<Lab> {
    let deps = LabDeps {
        hypervisor: Arc::new(FakeHypervisor::new()),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store,
        clock: Arc::new(SystemClock),
    };
    let profiles = Profiles::from_yaml_str(
        include_str!("../../profiles/defaults.yaml"),
        "defaults.yaml",
    )
    .expect("profiles");
    let settings = LabSettings {
        guest_poll_interval: Duration::from_millis(1),
        ..LabSettings::default()
    };
    let lab = Lab::new(deps, settings, profiles);
    lab.reconcile().await.expect("reconcile");
    lab
}

fn socket_pair_latency(n: usize) -> Vec<Duration> {
    let (mut a, b) = UnixStream::pair().expect("socketpair");
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(b).lines();
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            let line = lines.next().expect("line").expect("read");
            got.push((Instant::now(), line));
        }
        got
    });
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        sent.push(Instant::now());
        writeln!(a, "line {i}").expect("write");
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = reader.join().expect("reader");
    got.iter().zip(sent).map(|((at, _), s)| *at - s).collect()
}

pub async fn run() -> Vec<Row> {
    let loggers = env_usize("AGENTLAB_PERF_LOGGERS", 50);
    let lines = env_usize("AGENTLAB_PERF_LINES", 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("follow.db"))
        .await
        .expect("open store");
    let lab = lab(Arc::new(store)).await;
    let origin = Instant::now();
    let mut jobs = Vec::new();
    let mut followers = Vec::new();
    for _ in 0..loggers {
        let job = sample_job(t0());
        lab.deps().store.insert_job(&job).await.expect("insert job");
        let query = EventQuery {
            job: Some(job.id.clone()),
            ..EventQuery::default()
        };
        let mut rx = lab
            .follow_events(query, Duration::from_secs(10), CancellationToken::new())
            .await
            .expect("follow");
        followers.push(tokio::spawn(async move {
            // (latency of each line, when the stream closed)
            let mut latencies = Vec::new();
            while let Some(item) = rx.recv().await {
                if let FollowItem::Event(ev) = item {
                    let sent: u64 = ev.payload["sent_ns"].as_u64().unwrap_or(0);
                    let now = origin.elapsed().as_nanos() as u64;
                    latencies.push(Duration::from_nanos(now.saturating_sub(sent)));
                }
            }
            (latencies, origin.elapsed())
        }));
        jobs.push(job);
    }
    eprintln!("perf: {loggers} loggers × {lines} lines, one every {EVERY:?} …");
    let mut loggers_done = Vec::new();
    for job in &jobs {
        let lab = Arc::clone(&lab);
        let id = job.id.clone();
        loggers_done.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            for i in 0..lines {
                tick.tick().await;
                let sent = origin.elapsed().as_nanos() as u64;
                let ev = NewEvent::new(t0(), EventKind::JobLog, format!("agent line {i}"))
                    .job(Some(id.clone()))
                    .payload(serde_json::json!({ "sent_ns": sent }));
                lab.deps().store.append_event(ev).await.expect("append");
            }
        }));
    }
    for l in loggers_done {
        l.await.expect("logger");
    }
    // End every job; the stream must close right after.
    let mut ended = Vec::new();
    for job in &jobs {
        let mut done = job.clone();
        done.state = JobState::Completed;
        ended.push(origin.elapsed());
        lab.deps()
            .store
            .update_job(&done, JobState::Queued)
            .await
            .expect("end job");
    }
    let mut latencies = Vec::new();
    let mut close = Vec::new();
    for (f, end) in followers.into_iter().zip(ended) {
        let (l, closed) = f.await.expect("follower");
        assert_eq!(l.len(), lines, "every line reached its follower");
        latencies.extend(l);
        close.push(closed.saturating_sub(end));
    }
    let (f50, f99) = p50_p99(&mut latencies);
    let (r50, r99) = p50_p99(&mut socket_pair_latency(500));
    let (c50, c99) = p50_p99(&mut close);
    vec![
        Row::new(format!("follow latency p50 ({loggers} loggers)"), f50, "ms").vs(r50),
        Row::new(format!("follow latency p99 ({loggers} loggers)"), f99, "ms")
            .vs(r99)
            .target("< 50 ms"),
        Row::new("job ended -> stream closed p50", c50, "ms").vs(r50),
        Row::new("job ended -> stream closed p99", c99, "ms")
            .vs(r99)
            .target("< 20 ms"),
    ]
}
