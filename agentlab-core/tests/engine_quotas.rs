#![cfg(test)]
//! Engine: sandbox quotas (total and per profile, race-free at the last slot), job creation
//! over quota, and retention passes.

#[path = "engine/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use agentlab_core::config::QuotasConfig;
use agentlab_core::engine::{
    EngineError, JobRequest, Lab, LabDeps, LabSettings, RetentionPolicy, SandboxRequest,
};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::{EventKind, EventQuery, JobFilter, NewEvent, SandboxState};
use tokio_util::sync::CancellationToken;

fn lab_with(quotas: QuotasConfig) -> (Arc<Lab>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_epoch());
    let deps = LabDeps {
        hypervisor: Arc::new(FakeHypervisor::new()),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: clock.clone(),
    };
    let settings = LabSettings {
        quotas,
        ..common::settings()
    };
    (Lab::new(deps, settings, common::profiles()), clock)
}

fn req(profile: &str) -> SandboxRequest {
    SandboxRequest {
        profile: profile.into(),
        ..SandboxRequest::default()
    }
}

async fn quota_events(lab: &Lab) -> Vec<serde_json::Value> {
    let q = EventQuery {
        kinds: vec![EventKind::QuotaExceeded],
        ..EventQuery::default()
    };
    lab.events(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

#[tokio::test]
async fn creation_over_the_total_is_refused_naming_the_limit_until_a_slot_frees() {
    let (lab, _) = lab_with(QuotasConfig {
        max_sandboxes: Some(2),
        ..QuotasConfig::default()
    });
    let a = lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    lab.create_sandbox(req("interactive-dev")).await.unwrap();
    let err = lab.create_sandbox(req("yolo-ephemeral")).await.unwrap_err();
    let EngineError::QuotaExceeded(q) = &err else {
        panic!("expected a quota refusal, got {err:?}");
    };
    assert_eq!((q.limit, q.value, q.used), ("max_sandboxes", 2, 2));
    assert_eq!(err.code(), "quota_exceeded");
    let events = quota_events(&lab).await;
    assert_eq!(events.len(), 1, "one event per refusal");
    assert_eq!(events[0]["limit"], "max_sandboxes");
    lab.wait_idle().await;
    lab.destroy_sandbox(a.vmid).await.unwrap();
    assert_eq!(
        lab.sandbox(a.vmid).await.unwrap().state,
        SandboxState::Destroyed
    );
    lab.create_sandbox(req("yolo-ephemeral"))
        .await
        .expect("the destroyed sandbox's slot is free again");
    lab.shutdown().await;
}

#[tokio::test]
async fn per_profile_quota_limits_only_its_profile() {
    let (lab, _) = lab_with(QuotasConfig {
        max_sandboxes_per_profile: [("yolo-ephemeral".to_owned(), 1)].into(),
        ..QuotasConfig::default()
    });
    lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    let err = lab.create_sandbox(req("yolo-ephemeral")).await.unwrap_err();
    let EngineError::QuotaExceeded(q) = &err else {
        panic!("expected a quota refusal, got {err:?}");
    };
    assert_eq!(
        (q.limit, q.value, q.used, q.profile.as_deref()),
        ("max_sandboxes_per_profile", 1, 1, Some("yolo-ephemeral"))
    );
    assert!(
        err.to_string()
            .contains("quotas.max_sandboxes_per_profile.yolo-ephemeral")
    );
    for _ in 0..3 {
        lab.create_sandbox(req("interactive-dev")).await.unwrap();
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_both_take_the_last_slot() {
    let (lab, _) = lab_with(QuotasConfig {
        max_sandboxes: Some(3),
        ..QuotasConfig::default()
    });
    lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let lab = Arc::clone(&lab);
            tokio::spawn(async move { lab.create_sandbox(req("yolo-ephemeral")).await })
        })
        .collect();
    let mut won = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(_) => won += 1,
            Err(EngineError::QuotaExceeded(q)) => assert_eq!(q.limit, "max_sandboxes"),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one create takes the last slot");
    assert_eq!(quota_events(&lab).await.len(), 11);
    lab.shutdown().await;
}

#[tokio::test]
async fn a_job_over_quota_is_refused_before_it_is_recorded() {
    let (lab, _) = lab_with(QuotasConfig {
        max_sandboxes: Some(1),
        ..QuotasConfig::default()
    });
    let job = |task: &str| JobRequest {
        repo: "https://example.com/r.git".into(),
        task: task.into(),
        profile: "yolo-ephemeral".into(),
        ..JobRequest::default()
    };
    lab.run_job(job("first")).await.unwrap();
    let err = lab.run_job(job("second")).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::QuotaExceeded(q) if q.limit == "max_sandboxes"),
        "{err:?}"
    );
    let jobs = lab.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), 1, "the refused job left no record");
    assert_eq!(quota_events(&lab).await.len(), 1);
    lab.shutdown().await;
}

#[tokio::test]
async fn a_retention_pass_prunes_old_events_and_records_what_it_did() {
    let (lab, clock) = lab_with(QuotasConfig::default());
    let store = Arc::clone(&lab.deps().store);
    for i in 0..25 {
        store
            .append_event(NewEvent::new(
                agentlab_core::Clock::now(clock.as_ref()),
                EventKind::Warning,
                format!("old {i}"),
            ))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(40 * 86_400));
    let policy = RetentionPolicy {
        events_days: Some(30),
        jobs_days: Some(30),
        event_batch: 10,
        job_batch: 10,
    };
    let cancel = CancellationToken::new();
    let report = lab.prune_retention(&policy, &cancel).await.unwrap();
    assert_eq!(
        (report.events, report.jobs, report.cancelled),
        (25, 0, false)
    );
    let left = lab.events(&EventQuery::default()).await.unwrap();
    assert_eq!(left.len(), 1, "only the pass's own event is left: {left:?}");
    assert_eq!(left[0].kind, EventKind::RetentionPruned);
    assert_eq!(left[0].payload["events"], 25);
    let again = lab.prune_retention(&policy, &cancel).await.unwrap();
    assert_eq!(again.events, 0);
    assert_eq!(
        lab.events(&EventQuery::default()).await.unwrap().len(),
        1,
        "a pass that deleted nothing records nothing"
    );
    cancel.cancel();
    assert!(
        lab.prune_retention(&policy, &cancel)
            .await
            .unwrap()
            .cancelled
    );
}
