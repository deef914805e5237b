//! The typed calls against the canned daemon: the route and query each one sends, the body it
//! decodes, and the error envelope it surfaces.

use agentlab_core::api::control::{CreateSandboxRequest, RunJobRequest};
use agentlab_core::{EventKind, JobState, SandboxState};

use super::*;
use crate::testing::fixtures::{event_line, job, sandbox, ts};
use crate::testing::{Canned, Reply};

fn profiles() -> serde_json::Value {
    serde_json::json!([{"name": "dev", "template_vmid": 9000, "cores": 2, "memory_mb": 2048,
        "keepalive_default": false, "ttl_minutes_default": 60}])
}

#[tokio::test]
async fn sandbox_calls_use_their_routes() {
    let sb = sandbox(SandboxState::Ready, None);
    let detail = &sb;
    let srv = Canned::start(vec![
        ("GET /v1/profiles", Reply::json(200, &profiles())),
        (
            "GET /v1/sandboxes?state=READY%2CRUNNING&profile=dev&all=true",
            Reply::json(200, &vec![sb.clone()]),
        ),
        ("GET /v1/sandboxes/101", Reply::json(200, detail)),
        ("POST /v1/sandboxes", Reply::json(202, &sb)),
        ("DELETE /v1/sandboxes/101", Reply::json(200, &sb)),
        ("POST /v1/sandboxes/101/lease/renew", Reply::json(200, &sb)),
    ])
    .await;
    let c = srv.client();
    let p = c.list_profiles().await.unwrap();
    assert_eq!((p[0].name.as_str(), p[0].template_vmid), ("dev", 9000));
    let filter = SandboxFilter {
        states: vec![SandboxState::Ready, SandboxState::Running],
        profile: Some("dev".into()),
        all: true,
    };
    assert_eq!(c.list_sandboxes(&filter).await.unwrap()[0].vmid, sb.vmid);
    assert_eq!(
        c.show_sandbox(sb.vmid).await.unwrap().sandbox.name,
        "agentlab-101"
    );
    let req = CreateSandboxRequest {
        profile: "dev".into(),
        name: None,
        ttl_minutes: Some(30),
        keepalive: None,
        workspace: None,
    };
    assert_eq!(c.create_sandbox(&req).await.unwrap().vmid, sb.vmid);
    assert_eq!(c.destroy_sandbox(sb.vmid).await.unwrap().vmid, sb.vmid);
    assert_eq!(c.renew_lease(sb.vmid, Some(5)).await.unwrap().vmid, sb.vmid);
    assert_eq!(
        srv.seen(),
        [
            "GET /v1/profiles",
            "GET /v1/sandboxes?state=READY%2CRUNNING&profile=dev&all=true",
            "GET /v1/sandboxes/101",
            "POST /v1/sandboxes",
            "DELETE /v1/sandboxes/101",
            "POST /v1/sandboxes/101/lease/renew",
        ]
    );
}

#[tokio::test]
async fn job_calls_use_their_routes() {
    let j = job(JobState::Completed);
    let events = format!("[{}]", event_line(3, EventKind::JobLog, "hello").trim_end());
    let artifacts = serde_json::json!([{"job": "job-1", "name": "out.txt", "size": 5,
        "sha256": "ab", "created_at": ts(9)}]);
    let srv = Canned::start(vec![
        ("POST /v1/jobs", Reply::json(202, &j)),
        ("GET /v1/jobs/job-1", Reply::json(200, &j)),
        ("POST /v1/jobs/job-1/cancel", Reply::json(200, &j)),
        (
            "GET /v1/jobs/job-1/events?tail=2",
            Reply::raw(events, vec![]),
        ),
        (
            "GET /v1/jobs/job-1/events?after=2&follow=true",
            Reply::raw(event_line(3, EventKind::JobLog, "live"), vec![]),
        ),
        ("GET /v1/jobs/job-1/artifacts", Reply::json(200, &artifacts)),
        (
            "GET /v1/jobs/job-1/artifacts/out%20put.txt",
            Reply::raw("bytes", vec![("x-sha256", "ab".into())]),
        ),
    ])
    .await;
    let c = srv.client();
    let req = RunJobRequest {
        repo: "file:///srv/repo.git".into(),
        git_ref: None,
        task: "fix it".into(),
        profile: "dev".into(),
        agent: None,
        ttl_minutes: None,
        keepalive: None,
        workspace: None,
        result: None,
    };
    assert_eq!(c.run_job(&req).await.unwrap().id, j.id);
    assert_eq!(c.show_job(&j.id).await.unwrap().state, JobState::Completed);
    assert_eq!(c.cancel_job(&j.id).await.unwrap().id, j.id);
    let ev = c.job_events(&j.id, Some(2)).await.unwrap();
    assert_eq!((ev.len(), ev[0].message.as_str()), (1, "hello"));
    let mut live = c.follow_job_events(&j.id, Some(2)).await.unwrap();
    let e: agentlab_core::Event = live.next_json().await.unwrap().unwrap();
    assert_eq!(e.message, "live");
    let list = c.list_artifacts(&j.id).await.unwrap();
    assert_eq!((list[0].name.as_str(), list[0].size), ("out.txt", 5));
    let mut dl = c.download_artifact(&j.id, "out put.txt").await.unwrap();
    assert_eq!(dl.header("x-sha256"), Some("ab"));
    assert_eq!(&dl.next_chunk().await.unwrap().unwrap()[..], b"bytes");
}

#[tokio::test]
async fn errors_carry_the_api_code_and_message() {
    let err = serde_json::json!({"error": {"code": "profile_not_found",
        "message": "profile nope not found", "details": {"profile": "nope"}}});
    let srv = Canned::start(vec![("POST /v1/jobs", Reply::json(404, &err))]).await;
    let req = RunJobRequest {
        repo: "r".into(),
        git_ref: None,
        task: "t".into(),
        profile: "nope".into(),
        agent: None,
        ttl_minutes: None,
        keepalive: None,
        workspace: None,
        result: None,
    };
    let e = srv.client().run_job(&req).await.unwrap_err();
    let api = e.api().unwrap();
    assert_eq!((api.status, api.code.as_str()), (404, "profile_not_found"));
    assert_eq!(api.message, "profile nope not found");
}
