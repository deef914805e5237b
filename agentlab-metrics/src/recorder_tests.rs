use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use agentlab_core::engine::notify::NotifyingStore;
use agentlab_core::fake::store::MemoryStore;
use agentlab_core::testkit::store::{plus_secs, sample_job, sample_sandbox, t0, vmid};
use agentlab_core::{EventKind, JobState, NewEvent, SandboxState, StateStore};

use super::{EventRecorder, spawn_event_recorder};
use crate::families::Metrics;
use crate::testutil::{text, value};

fn setup() -> (Arc<MemoryStore>, Arc<Metrics>, EventRecorder) {
    let store = Arc::new(MemoryStore::new());
    let metrics = Arc::new(Metrics::new());
    let rec = EventRecorder::new(
        Arc::clone(&metrics),
        Arc::clone(&store) as Arc<dyn StateStore>,
    );
    (store, metrics, rec)
}

async fn append(store: &dyn StateStore, ev: NewEvent) -> agentlab_core::Event {
    store.append_event(ev).await.expect("append")
}

#[tokio::test]
async fn job_events_count_queued_and_final_states() {
    let (store, metrics, rec) = setup();
    let mut done = sample_job(t0());
    done.state = JobState::Completed;
    store.insert_job(&done).await.expect("job");
    let mut failed = sample_job(t0());
    failed.state = JobState::Failed;
    store.insert_job(&failed).await.expect("job");
    let running = sample_job(t0());
    store.insert_job(&running).await.expect("job");

    for (kind, job) in [
        (EventKind::JobQueued, &done),
        (EventKind::JobQueued, &failed),
        (EventKind::JobFinished, &done),
        (EventKind::JobFinished, &failed),
        (EventKind::JobTimeout, &running),
        // A JobFinished whose job is not terminal (never written by the engine) is ignored.
        (EventKind::JobFinished, &running),
    ] {
        let ev = append(
            &*store,
            NewEvent::new(t0(), kind, "x").job(Some(job.id.clone())),
        )
        .await;
        rec.record(&ev).await;
    }
    let t = text(&metrics);
    assert_eq!(value(&t, "agentlab_jobs_queued_total"), Some(2.0), "{t}");
    for (state, n) in [("COMPLETED", 1.0), ("FAILED", 1.0), ("TIMEOUT", 1.0)] {
        let series = format!("agentlab_jobs_finished_total{{state=\"{state}\"}}");
        assert_eq!(value(&t, &series), Some(n), "{series}\n{t}");
    }
    assert_eq!(
        value(&t, "agentlab_jobs_finished_total{state=\"QUEUED\"}"),
        None
    );
}

#[tokio::test]
async fn provisioning_events_fill_the_step_histogram_and_failure_counter() {
    let (store, metrics, rec) = setup();
    for (step, ms) in [("clone", 1500), ("clone", 500), ("start", 20)] {
        let ev = NewEvent::new(t0(), EventKind::ProvisionStep, "ok")
            .payload(serde_json::json!({"step": step, "call": "create", "duration_ms": ms}));
        rec.record(&append(&*store, ev).await).await;
    }
    let ev = NewEvent::new(t0(), EventKind::ProvisionFailed, "boom")
        .payload(serde_json::json!({"step": "firewall", "call": "allow", "error": "x"}));
    rec.record(&append(&*store, ev).await).await;
    let t = text(&metrics);
    assert_eq!(
        value(
            &t,
            "agentlab_provision_step_duration_seconds_count{step=\"clone\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &t,
            "agentlab_provision_step_duration_seconds_sum{step=\"clone\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &t,
            "agentlab_provision_step_duration_seconds_count{step=\"start\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&t, "agentlab_provision_failures_total{step=\"firewall\"}"),
        Some(1.0),
        "{t}"
    );
}

#[tokio::test]
async fn time_to_ready_is_observed_once_per_sandbox() {
    let (store, metrics, rec) = setup();
    let v = vmid(9100);
    let mut sb = sample_sandbox(v, t0());
    sb.state = SandboxState::Ready;
    store.insert_sandbox(&sb).await.expect("sandbox");
    let ready = |secs| {
        NewEvent::new(plus_secs(t0(), secs), EventKind::StateChanged, "to ready")
            .sandbox(v)
            .payload(serde_json::json!({"from": "BOOTING", "to": "READY"}))
    };
    let other = NewEvent::new(plus_secs(t0(), 1), EventKind::StateChanged, "prov")
        .sandbox(v)
        .payload(serde_json::json!({"from": "REQUESTED", "to": "PROVISIONING"}));
    rec.record(&append(&*store, other).await).await;
    rec.record(&append(&*store, ready(12)).await).await;
    // Stopped and started again later: not a second "time to READY".
    rec.record(&append(&*store, ready(600)).await).await;
    let t = text(&metrics);
    assert_eq!(
        value(&t, "agentlab_sandbox_time_to_ready_seconds_count"),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "agentlab_sandbox_time_to_ready_seconds_sum"),
        Some(12.0)
    );
}

#[tokio::test]
async fn leases_artifacts_and_refusals_are_counted() {
    let (store, metrics, rec) = setup();
    let v = vmid(9101);
    rec.record(
        &append(
            &*store,
            NewEvent::new(t0(), EventKind::LeaseExpired, "gone").sandbox(v),
        )
        .await,
    )
    .await;
    for size in [1000, 24] {
        let ev = NewEvent::new(t0(), EventKind::ArtifactStored, "a")
            .payload(serde_json::json!({"name": "a.tar", "size": size, "sha256": "00"}));
        rec.record(&append(&*store, ev).await).await;
    }
    for reason in ["used", "used", "wrong_address", "something-new"] {
        let ev = NewEvent::new(t0(), EventKind::BootstrapRefused, "no")
            .sandbox(v)
            .payload(serde_json::json!({"reason": reason, "peer": "10.77.0.9"}));
        rec.record(&append(&*store, ev).await).await;
    }
    let t = text(&metrics);
    assert_eq!(value(&t, "agentlab_lease_expirations_total"), Some(1.0));
    assert_eq!(value(&t, "agentlab_artifacts_stored_total"), Some(2.0));
    assert_eq!(value(&t, "agentlab_artifact_bytes_total"), Some(1024.0));
    for (reason, n) in [("used", 2.0), ("wrong_address", 1.0), ("other", 1.0)] {
        let series = format!("agentlab_bootstrap_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&t, &series), Some(n), "{series}\n{t}");
    }
    assert!(
        !t.contains("10.77.0.9") && !t.contains("something-new"),
        "no free-form label values"
    );
}

#[tokio::test]
async fn the_task_counts_events_appended_after_it_started_until_cancelled() {
    let memory: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let store = Arc::new(NotifyingStore::new(memory));
    let metrics = Arc::new(Metrics::new());
    let rec = EventRecorder::new(
        Arc::clone(&metrics),
        Arc::clone(&store) as Arc<dyn StateStore>,
    );
    append(
        &*store,
        NewEvent::new(t0(), EventKind::LeaseExpired, "before"),
    )
    .await;
    let cancel = CancellationToken::new();
    let task = spawn_event_recorder(rec, store.subscribe(), cancel.clone()).await;
    for _ in 0..300 {
        append(
            &*store,
            NewEvent::new(t0(), EventKind::LeaseExpired, "after"),
        )
        .await;
        append(&*store, NewEvent::new(t0(), EventKind::JobLog, "noise")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = value(&text(&metrics), "agentlab_lease_expirations_total");
        if n == Some(300.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counted {n:?} of 300"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task ends when cancelled")
        .expect("no panic");
}
