//! The tools through a real MCP session (rmcp client ⇄ server over an in-memory pipe) against
//! the canned daemon of `agentlab_client::testing`: names and schemas, answers, progress
//! notifications, and daemon errors as `isError` results.

use std::sync::{Arc, Mutex};

use agentlab_client::testing::fixtures::{event_line, job, sandbox, ts};
use agentlab_client::testing::{Canned, Reply};
use agentlab_core::{JobState, SandboxState};
use rmcp::model::{CallToolRequestParams, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};

use super::*;
use crate::artifact::INLINE_MAX;

/// An MCP client that records the progress notifications it receives.
#[derive(Debug, Clone, Default)]
struct Recorder {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }
}

async fn session(srv: &Canned) -> (RunningService<RoleClient, Recorder>, Recorder) {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = AgentLabMcp::new(srv.client());
    tokio::spawn(async move {
        let running = server.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let recorder = Recorder::default();
    let client = recorder.clone().serve(client_io).await.unwrap();
    (client, recorder)
}

async fn call(
    client: &RunningService<RoleClient, Recorder>,
    name: &'static str,
    args: serde_json::Value,
) -> (bool, String) {
    let serde_json::Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let result = client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args))
        .await
        .unwrap();
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (result.is_error == Some(true), text)
}

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn lists_the_tools_and_names_itself() {
    let srv = Canned::start(vec![]).await;
    let (client, _) = session(&srv).await;
    let info = client.peer_info().unwrap();
    let server_info = info.server_info.as_ref().unwrap();
    assert_eq!(server_info.name, "agentlab");
    assert_eq!(server_info.version, env!("CARGO_PKG_VERSION"));
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "create_sandbox",
            "destroy_sandbox",
            "exec",
            "job_logs",
            "job_status",
            "list_artifacts",
            "list_profiles",
            "list_sandboxes",
            "read_artifact",
            "read_file",
            "renew_lease",
            "run_job",
            "show_sandbox",
            "write_file",
        ]
    );
    let run_job = tools.iter().find(|t| t.name == "run_job").unwrap();
    let schema = serde_json::Value::Object((*run_job.input_schema).clone());
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(required, ["repo", "task", "profile"]);
    assert_eq!(schema["properties"]["wait"]["type"], "boolean");
}

#[tokio::test]
async fn sandbox_tools_call_the_daemon() {
    let sb = sandbox(SandboxState::Ready, None);
    let profiles = serde_json::json!([{"name": "dev", "template_vmid": 9000, "cores": 2,
        "memory_mb": 2048, "keepalive_default": false, "ttl_minutes_default": 60}]);
    let srv = Canned::start(vec![
        ("GET /v1/profiles", Reply::json(200, &profiles)),
        ("GET /v1/sandboxes", Reply::json(200, &vec![sb.clone()])),
        ("GET /v1/sandboxes/101", Reply::json(200, &sb)),
        ("POST /v1/sandboxes", Reply::json(202, &sb)),
        ("DELETE /v1/sandboxes/101", Reply::json(200, &sb)),
        ("POST /v1/sandboxes/101/lease/renew", Reply::json(200, &sb)),
    ])
    .await;
    let (client, _) = session(&srv).await;
    let (err, text) = call(&client, "list_profiles", serde_json::json!({})).await;
    assert!(!err);
    assert_eq!(json_of(&text)[0]["name"], "dev");
    let (_, text) = call(&client, "list_sandboxes", serde_json::json!({})).await;
    assert_eq!(json_of(&text)[0]["vmid"], 101);
    let (_, text) = call(&client, "show_sandbox", serde_json::json!({"vmid": 101})).await;
    assert_eq!(json_of(&text)["state"], "READY");
    let args = serde_json::json!({"profile": "dev", "ttl_minutes": 30, "keepalive": true});
    let (err, _) = call(&client, "create_sandbox", args).await;
    assert!(!err);
    let (err, _) = call(&client, "destroy_sandbox", serde_json::json!({"vmid": 101})).await;
    assert!(!err);
    let args = serde_json::json!({"vmid": 101, "ttl_minutes": 5});
    let (err, _) = call(&client, "renew_lease", args).await;
    assert!(!err);
    assert_eq!(
        srv.seen(),
        [
            "GET /v1/profiles",
            "GET /v1/sandboxes",
            "GET /v1/sandboxes/101",
            "POST /v1/sandboxes",
            "DELETE /v1/sandboxes/101",
            "POST /v1/sandboxes/101/lease/renew",
        ]
    );
}

#[tokio::test]
async fn run_job_waits_to_the_end_and_reports_progress() {
    let events = [
        event_line(1, agentlab_core::EventKind::JobStep, "running"),
        event_line(2, agentlab_core::EventKind::JobLog, "agent says hi"),
    ]
    .concat();
    let artifacts = serde_json::json!([{"job": "job-1", "name": "notes.txt", "size": 5,
        "sha256": "ab", "created_at": ts(9)}]);
    let srv = Canned::start(vec![
        ("POST /v1/jobs", Reply::json(202, &job(JobState::Queued))),
        (
            "GET /v1/jobs/job-1/events?follow=true",
            Reply::raw(
                events,
                vec![("content-type", "application/x-ndjson".into())],
            ),
        ),
        (
            "GET /v1/jobs/job-1",
            Reply::json(200, &job(JobState::Completed)),
        ),
        ("GET /v1/jobs/job-1/artifacts", Reply::json(200, &artifacts)),
    ])
    .await;
    let (client, recorder) = session(&srv).await;
    let args = serde_json::json!({"repo": "file:///srv/repo.git", "task": "fix it",
        "profile": "dev", "wait": true});
    let (err, text) = call(&client, "run_job", args).await;
    assert!(!err, "{text}");
    let v = json_of(&text);
    assert_eq!(v["job"]["state"], "COMPLETED");
    assert_eq!(v["finished"], true);
    assert_eq!(v["artifacts"][0]["name"], "notes.txt");
    let progress = recorder.progress.lock().unwrap().clone();
    let seen: Vec<(f64, Option<String>)> = progress
        .iter()
        .map(|p| (p.progress, p.message.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (1.0, Some("job_step: running".to_owned())),
            (2.0, Some("agent says hi".to_owned()))
        ]
    );
}

#[tokio::test]
async fn run_job_without_wait_returns_the_queued_job() {
    let srv = Canned::start(vec![(
        "POST /v1/jobs",
        Reply::json(202, &job(JobState::Queued)),
    )])
    .await;
    let (client, _) = session(&srv).await;
    let args = serde_json::json!({"repo": "r", "task": "t", "profile": "dev"});
    let (err, text) = call(&client, "run_job", args).await;
    assert!(!err);
    assert_eq!(json_of(&text)["state"], "QUEUED");
    assert_eq!(srv.seen(), ["POST /v1/jobs"]);
}

#[tokio::test]
async fn daemon_errors_are_tool_errors_with_the_api_code() {
    let err = serde_json::json!({"error": {"code": "profile_not_found",
        "message": "profile nope not found", "details": null}});
    let srv = Canned::start(vec![("POST /v1/jobs", Reply::json(404, &err))]).await;
    let (client, _) = session(&srv).await;
    let args = serde_json::json!({"repo": "r", "task": "t", "profile": "nope", "wait": true});
    let (is_error, text) = call(&client, "run_job", args).await;
    assert!(is_error);
    assert_eq!(text, "profile_not_found: profile nope not found");
    let (is_error, text) = call(&client, "job_status", serde_json::json!({"job_id": "x"})).await;
    assert!(is_error);
    assert!(text.starts_with("invalid_job_id: "), "{text}");
    let (is_error, text) = call(&client, "show_sandbox", serde_json::json!({"vmid": 7})).await;
    assert!(is_error);
    assert!(text.starts_with("invalid_vmid: "), "{text}");
    let (is_error, text) = call(&client, "show_sandbox", serde_json::json!({"vmid": 777})).await;
    assert!(is_error);
    assert_eq!(text, "no_route: no route GET /v1/sandboxes/777");
}

#[tokio::test]
async fn unreachable_daemon_is_a_tool_error() {
    let dir = tempfile::tempdir().unwrap();
    let client = agentlab_client::Client::new(
        dir.path().join("none.sock"),
        std::time::Duration::from_secs(1),
    );
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let running = AgentLabMcp::new(client).serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let client = Recorder::default().serve(client_io).await.unwrap();
    let (is_error, text) = call(&client, "list_profiles", serde_json::json!({})).await;
    assert!(is_error);
    assert!(
        text.starts_with("agentlabd_unreachable: Cannot reach agentlabd"),
        "{text}"
    );
}

#[tokio::test]
async fn job_logs_returns_the_agent_output_tail() {
    let events = format!(
        "[{}]",
        [
            event_line(1, agentlab_core::EventKind::JobStep, "running"),
            event_line(2, agentlab_core::EventKind::JobLog, "one"),
            event_line(3, agentlab_core::EventKind::JobLog, "two"),
            event_line(4, agentlab_core::EventKind::JobLog, "three"),
        ]
        .iter()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join(",")
    );
    let srv = Canned::start(vec![(
        "GET /v1/jobs/job-1/events",
        Reply::raw(events, vec![]),
    )])
    .await;
    let (client, _) = session(&srv).await;
    let (err, text) = call(&client, "job_logs", serde_json::json!({"job_id": "job-1"})).await;
    assert!(!err);
    assert_eq!(text, "one\ntwo\nthree");
    let args = serde_json::json!({"job_id": "job-1", "tail": 2});
    let (_, text) = call(&client, "job_logs", args).await;
    assert_eq!(text, "two\nthree");
}

fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn read_artifact_inlines_text_and_describes_the_rest() {
    let bundle = tar_gz(&[
        ("runner.log", b"log line\n"),
        ("artifacts/notes.txt", b"notes\n"),
        ("artifacts/blob", &[0xff, 0xfe]),
    ]);
    let art = |name: &str, size: u64| {
        serde_json::json!({"job": "job-1", "name": name, "size": size, "sha256": "aa",
            "created_at": ts(1)})
    };
    let listing = serde_json::json!([
        art("notes.txt", 6),
        art("blob.bin", 3),
        art("huge.log", INLINE_MAX + 1),
        art("artifacts.tar.gz", bundle.len() as u64),
        art("broken.tgz", 8),
    ]);
    let srv = Canned::start(vec![
        ("GET /v1/jobs/job-1/artifacts", Reply::json(200, &listing)),
        (
            "GET /v1/jobs/job-1/artifacts/notes.txt",
            Reply::raw("hello\n", vec![]),
        ),
        (
            "GET /v1/jobs/job-1/artifacts/blob.bin",
            Reply::raw(vec![0x1f_u8, 0x8b, 0xff], vec![]),
        ),
        (
            "GET /v1/jobs/job-1/artifacts/artifacts.tar.gz",
            Reply::raw(bundle, vec![]),
        ),
        (
            "GET /v1/jobs/job-1/artifacts/broken.tgz",
            Reply::raw("not gzip", vec![]),
        ),
    ])
    .await;
    let (client, _) = session(&srv).await;
    let read = |name: &str| serde_json::json!({"job_id": "job-1", "name": name});
    let read_in = |path: &str| serde_json::json!({"job_id": "job-1", "name": "artifacts.tar.gz", "path": path});
    let (err, text) = call(&client, "read_artifact", read("notes.txt")).await;
    assert!(!err);
    assert_eq!(text, "hello\n");
    let (err, text) = call(&client, "read_artifact", read("blob.bin")).await;
    assert!(!err);
    assert!(text.contains("is binary (3 bytes)"), "{text}");
    assert!(
        text.contains("agentlab job artifacts download job-1 --name blob.bin"),
        "{text}"
    );
    let (err, text) = call(&client, "read_artifact", read("huge.log")).await;
    assert!(!err);
    assert!(text.contains("over the 262144-byte limit"), "{text}");

    let (err, text) = call(&client, "read_artifact", read("artifacts.tar.gz")).await;
    assert!(!err, "{text}");
    assert!(text.contains("archive of 3 files"), "{text}");
    assert!(text.contains("         9  runner.log\n"), "{text}");
    assert!(text.contains("         6  artifacts/notes.txt\n"), "{text}");
    let (err, text) = call(&client, "read_artifact", read_in("artifacts/notes.txt")).await;
    assert!(!err, "{text}");
    assert_eq!(text, "notes\n");
    let (err, text) = call(&client, "read_artifact", read_in("./runner.log")).await;
    assert!(!err, "{text}");
    assert_eq!(text, "log line\n");
    let (err, text) = call(&client, "read_artifact", read_in("artifacts/blob")).await;
    assert!(!err);
    assert!(
        text.starts_with("File artifacts/blob in artifacts.tar.gz of job-1 is binary"),
        "{text}"
    );
    let (err, text) = call(&client, "read_artifact", read_in("nope")).await;
    assert!(err);
    assert!(text.starts_with("artifact_path_not_found: artifacts.tar.gz of job-1 has no file nope (it has: runner.log, "), "{text}");

    let args = serde_json::json!({"job_id": "job-1", "name": "notes.txt", "path": "x"});
    let (err, text) = call(&client, "read_artifact", args).await;
    assert!(err);
    assert!(text.starts_with("not_an_archive: "), "{text}");
    let (err, text) = call(&client, "read_artifact", read("broken.tgz")).await;
    assert!(err);
    assert!(
        text.starts_with("bad_archive: Cannot read broken.tgz of job-1"),
        "{text}"
    );
    let (err, text) = call(&client, "read_artifact", read("nope")).await;
    assert!(err);
    assert!(
        text.starts_with("artifact_not_found: Job job-1 has no artifact named \"nope\""),
        "{text}"
    );
    assert!(
        !srv.seen().iter().any(|r| r.contains("huge.log")),
        "an oversized artifact is not downloaded"
    );
}

#[tokio::test]
async fn job_status_and_list_artifacts_answer_with_the_api_objects() {
    let artifacts = serde_json::json!([{"job": "job-1", "name": "artifacts.tar.gz",
        "size": 602, "sha256": "ab", "created_at": ts(9)}]);
    let srv = Canned::start(vec![
        (
            "GET /v1/jobs/job-1",
            Reply::json(200, &job(JobState::Running)),
        ),
        ("GET /v1/jobs/job-1/artifacts", Reply::json(200, &artifacts)),
    ])
    .await;
    let (client, _) = session(&srv).await;
    let (err, text) = call(
        &client,
        "job_status",
        serde_json::json!({"job_id": "job-1"}),
    )
    .await;
    assert!(!err);
    assert_eq!(json_of(&text)["state"], "RUNNING");
    let (err, text) = call(
        &client,
        "list_artifacts",
        serde_json::json!({"job_id": "job-1"}),
    )
    .await;
    assert!(!err);
    assert_eq!(json_of(&text)[0]["size"], 602);
}

#[tokio::test]
async fn malformed_arguments_are_tool_errors() {
    let srv = Canned::start(vec![]).await;
    let (client, _) = session(&srv).await;
    for args in [
        serde_json::json!({"vmid": "x"}),
        serde_json::json!({}),
        serde_json::json!({"vmid": 101, "extra": 1}),
    ] {
        let (is_error, text) = call(&client, "show_sandbox", args).await;
        assert!(is_error);
        assert!(
            text.starts_with("failed to deserialize parameters: "),
            "{text}"
        );
    }
    assert!(srv.seen().is_empty(), "nothing reaches the daemon");
}

#[path = "sandbox_io_tests.rs"]
mod sandbox_io_tests;
