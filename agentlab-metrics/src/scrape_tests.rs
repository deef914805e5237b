use std::sync::Arc;
use std::time::Duration;

use agentlab_core::fake::{ManualClock, MemoryStore};
use agentlab_core::testkit::store::{plus_secs, sample_job, sample_sandbox, t0, vmid};
use agentlab_core::{EventKind, JobState, NewEvent, SandboxState, StateStore};

use super::Exporter;
use crate::families::Metrics;
use crate::testutil::value;

async fn sandbox(store: &MemoryStore, n: u32, state: SandboxState, profile: &str) {
    let mut sb = sample_sandbox(vmid(n), t0());
    sb.state = state;
    sb.profile = profile.to_owned();
    store.insert_sandbox(&sb).await.expect("sandbox");
}

#[tokio::test]
async fn gauges_come_from_the_store_at_scrape_time() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    sandbox(&store, 9100, SandboxState::Ready, "yolo").await;
    sandbox(&store, 9101, SandboxState::Ready, "yolo").await;
    sandbox(&store, 9102, SandboxState::Provisioning, "strict").await;
    sandbox(&store, 9103, SandboxState::Destroyed, "yolo").await;
    let mut job = sample_job(t0());
    job.state = JobState::Completed;
    store.insert_job(&job).await.expect("job");
    store.insert_job(&sample_job(t0())).await.expect("job");
    for i in 0..5 {
        let ev = NewEvent::new(t0(), EventKind::JobLog, format!("line {i}"));
        store.append_event(ev).await.expect("event");
    }
    clock.advance(Duration::from_secs(90));

    let exporter = Exporter::new(
        Arc::new(Metrics::new()),
        Arc::clone(&store) as Arc<dyn StateStore>,
        Arc::clone(&clock) as Arc<dyn agentlab_core::Clock>,
    );
    let t = exporter.render().await.expect("render");
    assert!(t.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    assert_eq!(
        value(&t, "agentlab_sandboxes{state=\"READY\",profile=\"yolo\"}"),
        Some(2.0),
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            "agentlab_sandboxes{state=\"PROVISIONING\",profile=\"strict\"}"
        ),
        Some(1.0)
    );
    assert!(
        !t.contains("state=\"DESTROYED\""),
        "DESTROYED sandboxes are not a gauge: {t}"
    );
    assert_eq!(
        value(
            &t,
            "agentlab_sandbox_unchanged_seconds_max{state=\"PROVISIONING\"}"
        ),
        Some(90.0)
    );
    assert_eq!(value(&t, "agentlab_jobs{state=\"COMPLETED\"}"), Some(1.0));
    assert_eq!(value(&t, "agentlab_jobs{state=\"QUEUED\"}"), Some(1.0));
    assert_eq!(value(&t, "agentlab_events_stored"), Some(5.0));

    // The provisioning sandbox is destroyed: its series disappears at the next scrape.
    let mut sb = store.get_sandbox(vmid(9102)).await.expect("get");
    sb.state = SandboxState::Failed;
    sb.updated_at = plus_secs(t0(), 90);
    store
        .update_sandbox(&sb, SandboxState::Provisioning)
        .await
        .expect("update");
    let t = exporter.render().await.expect("render");
    assert_eq!(
        value(
            &t,
            "agentlab_sandboxes{state=\"PROVISIONING\",profile=\"strict\"}"
        ),
        None,
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            "agentlab_sandboxes{state=\"FAILED\",profile=\"strict\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &t,
            "agentlab_sandbox_unchanged_seconds_max{state=\"FAILED\"}"
        ),
        Some(0.0)
    );
}
