#![cfg(test)]
//! Engine: jobs, guest reports, tokens, deadlines and leases under a manual clock.

#[path = "engine/common.rs"]
mod common;

use std::sync::Arc;

use agentlab_core::engine::{EngineError, GuestReport, JobRequest, SandboxRequest};
use agentlab_core::fake::hypervisor::FakeOp;
use agentlab_core::fake::{FakeHypervisor, ManualClock};
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::{
    EventKind, EventQuery, JobOutcome, JobState, SandboxState, SecretBundle, SecretValue,
};
use common::{Rig, rig, rig_with};

fn job_req(profile: &str) -> JobRequest {
    JobRequest {
        repo: "file:///srv/repo.git".into(),
        task: "fix the bug".into(),
        profile: profile.into(),
        ..JobRequest::default()
    }
}

fn report(state: JobState, exit: Option<i32>) -> GuestReport {
    GuestReport {
        state,
        step: Some("agent".into()),
        outcome: JobOutcome {
            exit_code: exit,
            ..JobOutcome::default()
        },
        pushed: None,
    }
}

/// Runs a job to the point where the guest has fetched its payload; returns (job id, runner token).
async fn fetched(r: &Rig, profile: &str) -> (agentlab_core::JobId, String, agentlab_core::Vmid) {
    let job = r.lab.run_job(job_req(profile)).await.unwrap();
    assert_eq!(job.state, JobState::Queued);
    r.lab.wait_idle().await;
    let vmid = job.sandbox.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Ready);
    let token = r.tap.token_for(vmid);
    let grant = r.lab.bootstrap_fetch(vmid, &token).await.unwrap();
    assert_eq!(grant.job.id, job.id);
    (job.id, grant.runner_token.expose().to_owned(), vmid)
}

#[tokio::test]
async fn ephemeral_job_completes_and_its_sandbox_is_destroyed() {
    let r = rig().await;
    let mut bundle = SecretBundle::default();
    bundle.env.insert(
        "ANTHROPIC_API_KEY".into(),
        SecretValue::new("sk-test-123456"),
    );
    r.secrets.insert("default", bundle);
    let (id, token, vmid) = fetched(&r, "yolo-ephemeral").await;
    r.lab
        .report_status(&id, &token, report(JobState::Running, None))
        .await
        .unwrap();
    assert_eq!(r.lab.job(&id).await.unwrap().state, JobState::Running);
    assert_eq!(r.state(vmid).await, SandboxState::Running);
    r.lab
        .append_logs(&id, &token, vec!["line one".into(), "line two".into()])
        .await
        .unwrap();
    r.lab
        .report_status(&id, &token, report(JobState::Completed, Some(0)))
        .await
        .unwrap();
    r.lab.wait_idle().await;
    let job = r.lab.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.outcome.unwrap().exit_code, Some(0));
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
    assert!(r.hv.owned_vm_ids().is_empty());
    let logs = r
        .lab
        .events(&EventQuery {
            job: Some(id.clone()),
            kinds: vec![EventKind::JobLog],
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        logs.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
        ["line one", "line two"]
    );
}

#[tokio::test]
async fn failing_agent_marks_job_and_sandbox_failed() {
    let r = rig().await;
    let (id, token, vmid) = fetched(&r, "yolo-ephemeral").await;
    r.lab
        .report_status(&id, &token, report(JobState::Failed, Some(3)))
        .await
        .unwrap();
    r.lab.wait_idle().await;
    let job = r.lab.job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.outcome.unwrap().exit_code, Some(3));
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
}

#[tokio::test]
async fn tokens_are_single_use_expire_and_are_bound() {
    let r = rig().await;
    let job = r.lab.run_job(job_req("yolo-ephemeral")).await.unwrap();
    let job2 = r.lab.run_job(job_req("yolo-ephemeral")).await.unwrap();
    r.lab.wait_idle().await;
    let (v1, v2) = (job.sandbox.unwrap(), job2.sandbox.unwrap());
    let (t1, t2) = (r.tap.token_for(v1), r.tap.token_for(v2));
    // Wrong vmid.
    assert!(matches!(
        r.lab.bootstrap_fetch(v2, &t1).await,
        Err(EngineError::Forbidden)
    ));
    // Unknown token.
    assert!(matches!(
        r.lab.bootstrap_fetch(v1, "nope").await,
        Err(EngineError::Forbidden)
    ));
    let g1 = r.lab.bootstrap_fetch(v1, &t1).await.unwrap();
    let rt1 = g1.runner_token.expose().to_owned();
    r.lab
        .report_status(&job.id, &rt1, report(JobState::Running, None))
        .await
        .unwrap();
    // Replay (the job already runs, so it is only refused).
    assert!(matches!(
        r.lab.bootstrap_fetch(v1, &t1).await,
        Err(EngineError::Forbidden)
    ));
    assert_eq!(r.lab.job(&job.id).await.unwrap().state, JobState::Running);
    // Expiry (default TTL 10 min).
    r.advance_min(11);
    assert!(matches!(
        r.lab.bootstrap_fetch(v2, &t2).await,
        Err(EngineError::Forbidden)
    ));
    // Runner token of job 1 used for job 2.
    let err = r
        .lab
        .report_status(&job2.id, &rt1, report(JobState::Running, None))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Forbidden));
    assert!(matches!(
        r.lab.append_logs(&job2.id, &rt1, vec!["x".into()]).await,
        Err(EngineError::Forbidden)
    ));
    r.lab
        .report_status(&job.id, &rt1, report(JobState::Running, None))
        .await
        .unwrap();
    // The expired token failed job 2 at once, with the cause.
    let j2 = r.lab.job(&job2.id).await.unwrap();
    assert_eq!(j2.state, JobState::Failed);
    assert!(j2.outcome.unwrap().error.unwrap().contains("expired"));
}

#[tokio::test]
async fn concurrent_fetches_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).await.unwrap());
    let r = rig_with(
        store,
        Arc::new(FakeHypervisor::new()),
        Arc::new(ManualClock::at_epoch()),
    )
    .await;
    let job = r.lab.run_job(job_req("yolo-ephemeral")).await.unwrap();
    r.lab.wait_idle().await;
    let v = job.sandbox.unwrap();
    let t = r.tap.token_for(v);
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (lab, t) = (r.lab.clone(), t.clone());
        handles.push(tokio::spawn(async move {
            lab.bootstrap_fetch(v, &t).await.is_ok()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += usize::from(h.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn sandbox_without_job_gets_no_job() {
    let r = rig().await;
    let sb = r
        .lab
        .create_sandbox(SandboxRequest {
            profile: "interactive-dev".into(),
            ..SandboxRequest::default()
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    let t = r.tap.token_for(sb.vmid);
    assert!(matches!(
        r.lab.bootstrap_fetch(sb.vmid, &t).await,
        Err(EngineError::NoJob(_))
    ));
}

#[tokio::test]
async fn deadline_times_out_then_grace_then_destroy() {
    let r = rig().await;
    let (id, token, vmid) = fetched(&r, "yolo-ephemeral").await;
    r.lab
        .report_status(&id, &token, report(JobState::Running, None))
        .await
        .unwrap();
    let job = r.lab.job(&id).await.unwrap();
    let deadline = job.deadline.unwrap();
    let lease_end = r.lab.sandbox(vmid).await.unwrap().lease.expires_at;
    assert!(
        deadline < lease_end,
        "deadline must come before the lease ends"
    );
    // Just before the deadline nothing happens.
    r.clock.set(deadline - chrono::Duration::seconds(1));
    r.lab.tick().await.unwrap();
    assert_eq!(r.lab.job(&id).await.unwrap().state, JobState::Running);
    // At the deadline: TIMEOUT, sandbox kept for the report grace.
    r.clock.set(deadline);
    r.lab.tick().await.unwrap();
    assert_eq!(r.lab.job(&id).await.unwrap().state, JobState::Timeout);
    assert_eq!(r.state(vmid).await, SandboxState::Timeout);
    r.clock.set(deadline + chrono::Duration::seconds(60));
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Timeout);
    // After the grace (120 s) it is destroyed.
    r.clock.set(deadline + chrono::Duration::seconds(121));
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
    let kinds = r.kinds(vmid).await;
    assert!(
        kinds.contains(&EventKind::JobTimeout)
            || r.lab
                .events(&EventQuery {
                    job: Some(id),
                    kinds: vec![EventKind::JobTimeout],
                    ..EventQuery::default()
                })
                .await
                .unwrap()
                .len()
                == 1
    );
}

#[tokio::test]
async fn lease_expiry_shuts_down_then_destroys() {
    let r = rig().await;
    let sb = r
        .lab
        .create_sandbox(SandboxRequest {
            profile: "interactive-dev".into(),
            ttl_minutes: Some(30),
            ..SandboxRequest::default()
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    r.advance_min(29);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(sb.vmid).await, SandboxState::Ready);
    r.advance_min(1);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(sb.vmid).await, SandboxState::Destroyed);
    assert!(r.kinds(sb.vmid).await.contains(&EventKind::LeaseExpired));
    let ops: Vec<FakeOp> = r.hv.calls_for(sb.vmid).iter().map(|c| c.op).collect();
    let stop = ops
        .iter()
        .position(|o| *o == FakeOp::Stop)
        .expect("graceful stop");
    let destroy = ops
        .iter()
        .position(|o| *o == FakeOp::Destroy)
        .expect("destroy");
    assert!(stop < destroy);
}

#[tokio::test]
async fn keepalive_job_stays_and_supports_stop_start_renew() {
    let r = rig().await;
    let (id, token, vmid) = fetched(&r, "yolo-workspace").await;
    r.lab
        .report_status(&id, &token, report(JobState::Completed, Some(0)))
        .await
        .unwrap();
    r.lab.wait_idle().await;
    assert_eq!(r.state(vmid).await, SandboxState::Completed);
    // Renew after completion.
    r.advance_min(100);
    let sb = r.lab.renew_lease(vmid, Some(60)).await.unwrap();
    assert_eq!(
        sb.lease.expires_at,
        r.clock_now() + chrono::Duration::minutes(60)
    );
    // Start on a running completed sandbox is a no-op.
    assert_eq!(
        r.lab.start_sandbox(vmid).await.unwrap().state,
        SandboxState::Completed
    );
    assert_eq!(
        r.lab.stop_sandbox(vmid).await.unwrap().state,
        SandboxState::Stopped
    );
    assert_eq!(
        r.lab.start_sandbox(vmid).await.unwrap().state,
        SandboxState::Booting
    );
    r.lab.wait_idle().await;
    assert_eq!(r.state(vmid).await, SandboxState::Ready);
    // Lease end destroys it.
    r.advance_min(61);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
    assert!(r.hv.owned_vm_ids().is_empty());
}

#[tokio::test]
async fn idle_keepalive_sandbox_is_stopped() {
    let r = rig().await;
    let sb = r
        .lab
        .create_sandbox(SandboxRequest {
            profile: "interactive-dev".into(),
            ..SandboxRequest::default()
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    let idle = r
        .lab
        .profiles()
        .get("interactive-dev")
        .unwrap()
        .behavior
        .idle_stop_minutes
        .unwrap();
    r.advance_min(u64::from(idle) - 1);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(sb.vmid).await, SandboxState::Ready);
    r.advance_min(1);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(sb.vmid).await, SandboxState::Stopped);
}

#[tokio::test]
async fn cancel_destroys_ephemeral_sandbox() {
    let r = rig().await;
    let (id, _token, vmid) = fetched(&r, "yolo-ephemeral").await;
    let job = r.lab.cancel_job(&id).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
    assert!(matches!(
        r.lab.cancel_job(&id).await,
        Err(EngineError::InvalidState(_))
    ));
}

#[tokio::test]
async fn missing_secret_bundle_fails_the_job_at_bootstrap() {
    let r = rig().await;
    let defaults = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/defaults.yaml"),
    )
    .unwrap();
    let extra = "---\nname: needs-secrets\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\nsecrets_bundle: missing\nagent:\n  command: make\n";
    let profiles =
        agentlab_core::profile::Profiles::from_yaml_str(&format!("{defaults}\n{extra}"), "t.yaml")
            .unwrap();
    let lab = agentlab_core::engine::Lab::new(r.lab.deps().clone(), common::settings(), profiles);
    let job = lab.run_job(job_req("needs-secrets")).await.unwrap();
    lab.wait_idle().await;
    let vmid = job.sandbox.unwrap();
    let token =
        r.hv.vm(vmid)
            .unwrap()
            .bootstrap
            .unwrap()
            .token
            .expose()
            .to_owned();
    assert!(matches!(
        lab.bootstrap_fetch(vmid, &token).await,
        Err(EngineError::Secrets(_))
    ));
    let job = lab.job(&job.id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    let outcome = job.outcome.unwrap();
    assert_eq!(outcome.failed_step.as_deref(), Some("bootstrap:secrets"));
    assert!(outcome.error.unwrap().contains("missing"));
}

#[tokio::test]
async fn the_ephemeral_destroy_waits_until_the_final_report_is_answered() {
    let r = rig().await;
    let mut released = r.lab.subscribe_released();
    let (id, token, vmid) = fetched(&r, "yolo-ephemeral").await;
    let (job, after) = r
        .lab
        .report_status_deferred(&id, &token, report(JobState::Completed, Some(0)))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Completed);
    let after = after.expect("an ephemeral job's end holds its destroy");
    r.lab.wait_idle().await;
    // Still there while the answer is being written.
    assert_eq!(r.state(vmid).await, SandboxState::Completed);
    assert_eq!(r.hv.owned_vm_ids(), vec![vmid]);
    drop(after);
    r.lab.wait_idle().await;
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
    assert!(r.hv.owned_vm_ids().is_empty());
    // The release is announced with the sandbox's address (the daemon closes its connections).
    let rel = released.try_recv().expect("announced");
    assert_eq!(rel.vmid, vmid);
    assert!(rel.ip.is_some());
}

#[tokio::test]
async fn a_lost_answer_still_ends_in_a_destroy_by_tick() {
    let r = rig().await;
    let (id, token, vmid) = fetched(&r, "yolo-ephemeral").await;
    let (_, after) = r
        .lab
        .report_status_deferred(&id, &token, report(JobState::Failed, Some(1)))
        .await
        .unwrap();
    // The process "dies" holding it: nothing runs its drop.
    std::mem::forget(after);
    r.lab.tick().await.unwrap();
    r.lab.wait_idle().await;
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
}
