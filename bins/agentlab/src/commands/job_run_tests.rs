//! `job run` against a canned daemon: follows the job's stream, then exits with the outcome.

use agentlab_core::{EventKind, JobState};

use super::*;
use crate::test_server::fixtures::{event_line, job};
use crate::test_server::{Canned, CannedCtx, Reply};

fn args(detach: bool) -> RunArgs {
    RunArgs {
        repo: "file:///srv/repo.git".into(),
        task: "fix it".into(),
        profile: "dev".into(),
        git_ref: None,
        agent: None,
        ttl: None,
        keepalive: false,
        workspace: None,
        detach,
        push: false,
        branch: None,
        no_commit_leftovers: false,
        open_pr: false,
        pr_title: None,
        pr_base: None,
    }
}

#[tokio::test]
async fn detach_returns_after_the_submit() {
    let srv = Canned::start(vec![(
        "POST /v1/jobs",
        Reply::json(202, &job(JobState::Queued)),
    )])
    .await;
    assert_eq!(run(&srv.ctx(true), args(true)).await.unwrap(), Code::Ok);
    assert_eq!(*srv.requests.lock().unwrap(), vec!["POST /v1/jobs"]);
}

#[tokio::test]
async fn waits_for_the_stream_end_and_maps_the_outcome() {
    for (state, code) in [
        (JobState::Completed, Code::Ok),
        (JobState::Failed, Code::Failure),
        (JobState::Timeout, Code::Timeout),
        (JobState::Cancelled, Code::Cancelled),
    ] {
        let stream = [
            event_line(1, EventKind::StateChanged, "REQUESTED -> PROVISIONING"),
            "{}\n".to_owned(),
            event_line(2, EventKind::JobLog, "agent says hi"),
        ]
        .concat();
        let ndjson = vec![("content-type", "application/x-ndjson".to_owned())];
        let srv = Canned::start(vec![
            ("POST /v1/jobs", Reply::json(202, &job(JobState::Queued))),
            (
                "GET /v1/jobs/job-1/events?follow=true",
                Reply::raw(stream, ndjson),
            ),
            ("GET /v1/jobs/job-1", Reply::json(200, &job(state))),
            (
                "GET /v1/jobs/job-1/artifacts",
                Reply::json(200, &Vec::<()>::new()),
            ),
        ])
        .await;
        assert_eq!(
            run(&srv.ctx(true), args(false)).await.unwrap(),
            code,
            "{state}"
        );
        assert_eq!(
            *srv.requests.lock().unwrap(),
            vec![
                "POST /v1/jobs",
                "GET /v1/jobs/job-1/events?follow=true",
                "GET /v1/jobs/job-1",
                "GET /v1/jobs/job-1/artifacts",
            ]
        );
    }
}

#[tokio::test]
async fn submit_errors_surface_with_their_code() {
    let srv = Canned::start(vec![]).await;
    let err = run(&srv.ctx(true), args(false)).await.unwrap_err();
    assert_eq!(format!("{err:#}"), "no route POST /v1/jobs (no_route)");
}
