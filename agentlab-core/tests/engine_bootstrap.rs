#![cfg(test)]
//! Engine: bootstrap refusals are events and fail the QUEUED job at once, the boot deadline
//! names "bootstrap never fetched", the give-up route, the address binding, and runner tokens
//! revoked at every end of a job.

#[path = "engine/common.rs"]
mod common;

use std::net::IpAddr;

use agentlab_core::engine::{EngineError, GuestReport, JobRequest};
use agentlab_core::{EventKind, JobId, JobOutcome, JobState, SandboxState, Vmid};
use common::{Rig, rig};

fn job_req() -> JobRequest {
    JobRequest {
        repo: "file:///srv/repo.git".into(),
        task: "fix the bug".into(),
        profile: "yolo-ephemeral".into(),
        ..JobRequest::default()
    }
}

fn running() -> GuestReport {
    GuestReport {
        state: JobState::Running,
        step: Some("agent".into()),
        outcome: JobOutcome::default(),
        pushed: None,
    }
}

async fn queued(r: &Rig) -> (JobId, Vmid, String) {
    let job = r.lab.run_job(job_req()).await.unwrap();
    r.lab.wait_idle().await;
    let vmid = job.sandbox.unwrap();
    (job.id, vmid, r.tap.token_for(vmid))
}

async fn refusal_reasons(r: &Rig, vmid: Vmid) -> Vec<String> {
    let q = agentlab_core::EventQuery {
        sandbox: Some(vmid),
        kinds: vec![EventKind::BootstrapRefused],
        ..agentlab_core::EventQuery::default()
    };
    r.lab
        .events(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn failed_with(r: &Rig, id: &JobId, needle: &str) {
    let job = r.lab.job(id).await.unwrap();
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let o = job.outcome.unwrap();
    assert_eq!(o.failed_step.as_deref(), Some("bootstrap"));
    let err = o.error.unwrap();
    assert!(err.contains(needle), "{err}");
}

#[tokio::test]
async fn a_used_token_on_a_queued_job_fails_it_at_once() {
    // The daemon stored the token's use and the runner token, but the answer never reached
    // the runner (crash, lost connection): its retry is refused as `used`.
    let r = rig().await;
    let (id, vmid, token) = queued(&r).await;
    r.lab.bootstrap_fetch(vmid, &token).await.unwrap();
    assert!(matches!(
        r.lab.bootstrap_fetch(vmid, &token).await,
        Err(EngineError::Forbidden)
    ));
    failed_with(&r, &id, "used").await;
    assert_eq!(refusal_reasons(&r, vmid).await, ["used"]);
    assert_eq!(r.state(vmid).await, SandboxState::Failed);
    // The ephemeral sandbox goes at the next tick.
    r.lab.tick().await.unwrap();
    r.lab.wait_idle().await;
    assert_eq!(r.state(vmid).await, SandboxState::Destroyed);
}

#[tokio::test]
async fn an_expired_token_fails_the_job_with_that_cause() {
    let r = rig().await;
    let (id, vmid, token) = queued(&r).await;
    r.advance_min(11);
    assert!(matches!(
        r.lab.bootstrap_fetch(vmid, &token).await,
        Err(EngineError::Forbidden)
    ));
    failed_with(&r, &id, "expired").await;
    assert_eq!(refusal_reasons(&r, vmid).await, ["expired"]);
}

#[tokio::test]
async fn an_unknown_token_is_an_event_but_fails_nothing() {
    let r = rig().await;
    let (id, vmid, token) = queued(&r).await;
    assert!(matches!(
        r.lab.bootstrap_fetch(vmid, "guessed").await,
        Err(EngineError::Forbidden)
    ));
    assert_eq!(refusal_reasons(&r, vmid).await, ["unknown"]);
    assert_eq!(r.lab.job(&id).await.unwrap().state, JobState::Queued);
    r.lab.bootstrap_fetch(vmid, &token).await.unwrap();
}

#[tokio::test]
async fn a_job_whose_sandbox_never_fetched_fails_at_the_boot_deadline() {
    let r = rig().await;
    let (id, vmid, _token) = queued(&r).await;
    r.advance_min(9);
    r.lab.tick().await.unwrap();
    assert_eq!(r.lab.job(&id).await.unwrap().state, JobState::Queued);
    r.advance_min(2);
    r.lab.tick().await.unwrap();
    failed_with(&r, &id, "bootstrap never fetched").await;
    assert_eq!(refusal_reasons(&r, vmid).await, ["never_fetched"]);
}

#[tokio::test]
async fn a_runner_that_gives_up_fails_its_job_at_once() {
    let r = rig().await;
    let (id, vmid, token) = queued(&r).await;
    r.lab
        .bootstrap_abandon(vmid, &token, &format!("bad payload\nfor {token}"), None)
        .await
        .unwrap();
    failed_with(&r, &id, "runner gave up its bootstrap fetch: bad payload").await;
    let msgs = r.messages(vmid, EventKind::BootstrapAbandoned).await;
    assert_eq!(msgs.len(), 1);
    assert!(
        !msgs[0].contains(&token) && !msgs[0].contains('\n'),
        "{msgs:?}"
    );
    // The token is used up.
    assert!(matches!(
        r.lab.bootstrap_fetch(vmid, &token).await,
        Err(EngineError::Forbidden)
    ));
    // A wrong token cannot abandon someone else's job.
    let (id2, vmid2, _) = queued(&r).await;
    assert!(matches!(
        r.lab.bootstrap_abandon(vmid2, "guessed", "x", None).await,
        Err(EngineError::Forbidden)
    ));
    assert_eq!(r.lab.job(&id2).await.unwrap().state, JobState::Queued);
}

#[tokio::test]
async fn the_token_is_bound_to_the_sandbox_address() {
    let r = rig().await;
    let (id, vmid, token) = queued(&r).await;
    let own = r.lab.sandbox(vmid).await.unwrap().ip.unwrap();
    let other: IpAddr = "10.77.0.200".parse().unwrap();
    assert_ne!(own, other);
    assert!(matches!(
        r.lab.bootstrap_fetch_from(vmid, &token, Some(other)).await,
        Err(EngineError::Forbidden)
    ));
    assert_eq!(refusal_reasons(&r, vmid).await, ["wrong_address"]);
    assert_eq!(r.lab.job(&id).await.unwrap().state, JobState::Queued);
    // The token was not spent; the sandbox itself (also as an IPv4-mapped address) gets it.
    let mapped = match own {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    r.lab
        .bootstrap_fetch_from(vmid, &token, Some(mapped))
        .await
        .unwrap();
}

#[tokio::test]
async fn runner_tokens_are_revoked_at_every_end_of_a_job() {
    let r = rig().await;
    // Final report.
    let (id, vmid, token) = queued(&r).await;
    let rt = r
        .lab
        .bootstrap_fetch(vmid, &token)
        .await
        .unwrap()
        .runner_token;
    let rt = rt.expose().to_owned();
    r.lab.report_status(&id, &rt, running()).await.unwrap();
    let done = GuestReport {
        state: JobState::Completed,
        step: None,
        outcome: JobOutcome {
            exit_code: Some(0),
            ..JobOutcome::default()
        },
        pushed: None,
    };
    r.lab.report_status(&id, &rt, done.clone()).await.unwrap();
    assert!(matches!(
        r.lab.report_status(&id, &rt, done).await,
        Err(EngineError::JobEnded(_))
    ));
    assert!(matches!(
        r.lab.append_logs(&id, &rt, vec!["late".into()]).await,
        Err(EngineError::JobEnded(_))
    ));
    let finished = r
        .lab
        .events(&agentlab_core::EventQuery {
            job: Some(id.clone()),
            kinds: vec![EventKind::JobFinished],
            ..agentlab_core::EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(finished.len(), 1, "one job_finished: {finished:?}");
    // Cancel, deadline and sandbox destroy.
    for end in ["cancel", "deadline", "destroy"] {
        let (id, vmid, token) = queued(&r).await;
        let rt = r
            .lab
            .bootstrap_fetch(vmid, &token)
            .await
            .unwrap()
            .runner_token;
        let rt = rt.expose().to_owned();
        r.lab.report_status(&id, &rt, running()).await.unwrap();
        match end {
            "cancel" => {
                r.lab.cancel_job(&id).await.unwrap();
            }
            "deadline" => {
                r.clock.set(r.lab.job(&id).await.unwrap().deadline.unwrap());
                r.lab.tick().await.unwrap();
            }
            _ => {
                r.lab.destroy_sandbox(vmid).await.unwrap();
            }
        }
        r.lab.wait_idle().await;
        assert!(r.lab.job(&id).await.unwrap().state.is_terminal(), "{end}");
        assert!(
            matches!(
                r.lab.append_logs(&id, &rt, vec!["late".into()]).await,
                Err(EngineError::JobEnded(_))
            ),
            "{end}"
        );
    }
}
