#![cfg(test)]
//! Engine: results back to git — the job's resolved `result` and what the runner pushed.

#[path = "engine/common.rs"]
mod common;

use agentlab_core::engine::{EngineError, GuestReport, JobRequest};
use agentlab_core::model::JobPushed;
use agentlab_core::profile::ResultOverride;
use agentlab_core::{EventKind, EventQuery, JobOutcome, JobState};
use common::rig;

fn job_req(result: Option<ResultOverride>) -> JobRequest {
    JobRequest {
        repo: "file:///srv/repo.git".into(),
        git_ref: Some("release".into()),
        task: "fix the bug".into(),
        profile: "yolo-ephemeral".into(),
        result,
        ..JobRequest::default()
    }
}

#[tokio::test]
async fn the_override_is_resolved_at_submission_and_the_push_is_recorded() {
    let r = rig().await;
    let over = ResultOverride {
        push: Some(true),
        branch: Some("bots/{profile}/{job}".into()),
        ..ResultOverride::default()
    };
    let job = r.lab.run_job(job_req(Some(over))).await.unwrap();
    let spec = job.result.clone().expect("resolved result");
    assert_eq!(spec.branch, format!("bots/yolo-ephemeral/{}", job.id));
    assert!(spec.commit_leftovers);
    assert_eq!(spec.pull_request, None);
    r.lab.wait_idle().await;
    let vmid = job.sandbox.unwrap();
    let grant = r
        .lab
        .bootstrap_fetch(vmid, &r.tap.token_for(vmid))
        .await
        .unwrap();
    assert_eq!(grant.job.result.as_ref(), Some(&spec));
    let pushed = JobPushed {
        branch: spec.branch.clone(),
        commit: "1".repeat(40),
        pr_url: None,
    };
    let done = GuestReport {
        state: JobState::Completed,
        step: None,
        outcome: JobOutcome {
            exit_code: Some(0),
            ..JobOutcome::default()
        },
        pushed: Some(pushed.clone()),
    };
    let token = grant.runner_token.expose().to_owned();
    r.lab.report_status(&job.id, &token, done).await.unwrap();
    let stored = r.lab.job(&job.id).await.unwrap();
    assert_eq!(stored.pushed, Some(pushed));
    let finished = r
        .lab
        .events(&EventQuery {
            job: Some(job.id.clone()),
            kinds: vec![EventKind::JobFinished],
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(finished[0].payload["pushed"]["commit"], "1".repeat(40));
}

#[tokio::test]
async fn unsafe_results_are_refused_before_a_job_exists() {
    let r = rig().await;
    for (over, why) in [
        (
            ResultOverride {
                push: Some(true),
                branch: Some("release".into()),
                ..ResultOverride::default()
            },
            "{job}",
        ),
        (
            ResultOverride {
                push: Some(true),
                branch: Some("a..{job}".into()),
                ..ResultOverride::default()
            },
            "not a valid branch name",
        ),
        (
            ResultOverride {
                open_pr: Some(true),
                ..ResultOverride::default()
            },
            "needs result.push",
        ),
        (
            ResultOverride {
                push: Some(true),
                open_pr: Some(true),
                ..ResultOverride::default()
            },
            "owner and repository",
        ),
    ] {
        match r.lab.run_job(job_req(Some(over))).await {
            Err(EngineError::Invalid(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("expected Invalid ({why}), got {other:?}"),
        }
    }
    assert!(
        r.lab
            .list_jobs(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Without a result nothing is pushed.
    let job = r.lab.run_job(job_req(None)).await.unwrap();
    assert_eq!(job.result, None);
}
