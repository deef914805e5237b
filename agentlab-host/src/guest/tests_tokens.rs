//! Guest route tests for the token lifecycle: rate limits per token (many sandboxes behind one
//! address), the address binding, runner tokens revoked at the job's end, redaction after a
//! restart (runner token included), and uploads that are interrupted, retried and repeated.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use agentlab_core::api::guest::BootstrapPayload;
use agentlab_core::{EventKind, EventQuery, JobId};

use super::tests::{G, setup_with};
use crate::guest::router;

const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

async fn count(g: &G, job: &JobId, kind: EventKind) -> usize {
    let q = EventQuery {
        job: Some(job.clone()),
        kinds: vec![kind],
        ..EventQuery::default()
    };
    g.lab.events(&q).await.unwrap().len()
}

async fn runner_token(g: &G) -> (JobId, String, serde_json::Value) {
    let (id, vmid, token) = g.job().await;
    let (s, payload, _) = g.fetch(vmid, &token).await;
    assert_eq!(s, StatusCode::OK, "{payload}");
    let rt = payload["runner_token"].as_str().unwrap().to_owned();
    (id, rt, payload)
}

#[tokio::test]
async fn twenty_sandboxes_behind_one_address_all_fetch_while_one_token_is_limited() {
    // Loopback guests (fake backend): the daemon does not bind tokens to addresses there.
    let g = setup_with(2, 1 << 20, false).await;
    let mut jobs = Vec::new();
    for _ in 0..20 {
        jobs.push(g.job().await);
    }
    for (id, vmid, token) in &jobs {
        let (s, body, _) = g.fetch_from(*vmid, token, LOOPBACK).await;
        assert_eq!(s, StatusCode::OK, "{id}: {body}");
    }
    let (_, vmid, _) = &jobs[0];
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(g.fetch_from(*vmid, "hammer", LOOPBACK).await.0);
    }
    assert_eq!(
        codes,
        [
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn one_address_spraying_tokens_is_limited_too() {
    let g = setup_with(2, 1 << 20, true).await;
    let (_, vmid, _) = g.job().await;
    let limit = 2 * crate::guest::ratelimit::ADDRESS_FACTOR;
    for i in 0..limit {
        let s = g
            .fetch_from(vmid, &format!("guess-{i}"), [10, 77, 9, 9])
            .await
            .0;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, _, retry) = g.fetch_from(vmid, "guess-last", [10, 77, 9, 9]).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some());
}

#[tokio::test]
async fn a_fetch_from_another_address_is_refused_and_recorded() {
    let g = setup_with(100, 1 << 20, true).await;
    let (id, vmid, token) = g.job().await;
    let (s, body, _) = g.fetch_from(vmid, &token, [10, 77, 0, 99]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let q = EventQuery {
        sandbox: Some(vmid),
        kinds: vec![EventKind::BootstrapRefused],
        ..EventQuery::default()
    };
    let refused = g.lab.events(&q).await.unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].payload["reason"], "wrong_address");
    assert_eq!(refused[0].payload["peer"], "10.77.0.99");
    // The sandbox itself still gets its job.
    let (s, payload, _) = g.fetch(vmid, &token).await;
    assert_eq!(s, StatusCode::OK, "{payload}");
    assert_eq!(payload["job"]["job_id"], id.as_str());
}

#[tokio::test]
async fn an_abandon_fails_the_job_at_once() {
    let g = setup_with(100, 1 << 20, true).await;
    let (id, vmid, token) = g.job().await;
    let ip = [10, 77, 0, 2];
    let body = json!({"token": token, "vmid": vmid, "reason": "payload unreadable"});
    let (s, _, _) = g
        .send(
            "POST",
            "/v1/bootstrap/abandon",
            None,
            Body::from(body.to_string()),
            ip,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let job = g.lab.job(&id).await.unwrap();
    assert_eq!(job.state, agentlab_core::JobState::Failed);
    assert!(
        job.outcome
            .unwrap()
            .error
            .unwrap()
            .contains("payload unreadable")
    );
    let (s, _, _) = g
        .send(
            "POST",
            "/v1/bootstrap/abandon",
            None,
            Body::from(body.to_string()),
            ip,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn runner_calls_after_the_end_are_refused() {
    let g = setup_with(100, 1 << 20, true).await;
    let (id, rt, _) = runner_token(&g).await;
    let ip = [10, 77, 0, 2];
    let art = format!("/v1/jobs/{id}/artifacts/out.txt");
    let put = |body: &'static str| g.send("PUT", &art, Some(&rt), Body::from(body), ip);
    assert_eq!(put("first").await.0, StatusCode::OK);
    // The same content again is accepted without a second record.
    assert_eq!(put("first").await.0, StatusCode::OK);
    assert_eq!(count(&g, &id, EventKind::ArtifactStored).await, 1);
    let done = r#"{"state":"COMPLETED","exit_code":0}"#;
    let status = format!("/v1/jobs/{id}/status");
    assert_eq!(
        g.send("POST", &status, Some(&rt), Body::from(done), ip)
            .await
            .0,
        StatusCode::OK
    );
    let (s, body, _) = g
        .send("POST", &status, Some(&rt), Body::from(done), ip)
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("job_ended"))
    );
    assert_eq!(count(&g, &id, EventKind::JobFinished).await, 1);
    let logs = json!({"lines": [{"stream": "stdout", "line": "late sk-live-guest-secret"}]});
    let (s, body, _) = g
        .send(
            "POST",
            &format!("/v1/jobs/{id}/logs"),
            Some(&rt),
            Body::from(logs.to_string()),
            ip,
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("job_ended"))
    );
    assert!(g.job_logs(&id).await.is_empty());
    let (s, _, _) = put("overwritten").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let stored = std::fs::read(g.state.artifacts.path(&id, "out.txt")).unwrap();
    assert_eq!(stored, b"first");
}

#[tokio::test]
async fn redaction_after_a_restart_covers_the_runner_token_and_encodings() {
    let g = setup_with(100, 1 << 20, true).await;
    let (id, rt, _) = runner_token(&g).await;
    // A restarted daemon has no per-job redactor in memory.
    g.redactors.lock().unwrap().clear();
    let b64 = base64::engine::general_purpose::STANDARD.encode("sk-live-guest-secret");
    let lines = [
        format!("token {rt}"),
        format!("b64 {b64}"),
        "raw sk-live-guest-secret".to_owned(),
    ];
    let logs = json!({"lines": lines.iter().map(|l| json!({"stream": "stdout", "line": l})).collect::<Vec<_>>()});
    let (s, _, _) = g
        .send(
            "POST",
            &format!("/v1/jobs/{id}/logs"),
            Some(&rt),
            Body::from(logs.to_string()),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let stored = g.job_logs(&id).await.join("\n");
    for leak in [rt.as_str(), b64.as_str(), "sk-live-guest-secret"] {
        assert!(!stored.contains(leak), "{leak} leaked: {stored}");
    }
    // An artifact name that is a secret is refused.
    let (s, _, _) = g
        .send(
            "PUT",
            &format!("/v1/jobs/{id}/artifacts/sk-live-guest-secret"),
            Some(&rt),
            Body::from("x"),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

fn parts(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".part"))
                .collect()
        })
        .unwrap_or_default()
}

async fn serve(g: &G, addr: SocketAddr) -> (tokio::task::JoinHandle<()>, SocketAddr) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        router(g.state.clone(), 64 * 1024).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (task, addr)
}

#[tokio::test]
async fn an_interrupted_upload_leaves_no_part_file_and_a_retry_after_a_restart_arrives() {
    let g = setup_with(100, 1 << 20, true).await;
    let (id, rt, payload) = runner_token(&g).await;
    let (server, addr) = serve(&g, "127.0.0.1:0".parse().unwrap()).await;
    let job_dir = g.dir.path().join(id.as_str());

    // The connection drops in the middle of the body.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v1/jobs/{id}/artifacts/artifacts.tar.gz HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {rt}\r\ncontent-length: 100000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[1u8; 4096]).await.unwrap();
    tcp.flush().await.unwrap();
    for _ in 0..200 {
        if !parts(&job_dir).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(parts(&job_dir).len(), 1, "the upload never started");
    drop(tcp);
    let mut left = parts(&job_dir);
    for _ in 0..400 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        left = parts(&job_dir);
    }
    assert!(left.is_empty(), "temporary upload files left: {left:?}");
    assert_eq!(g.state.artifacts.used(&id, None).await, 0);

    // The listener goes away; the runner keeps retrying until it is back.
    server.abort();
    let _ = server.await;
    let mut payload: BootstrapPayload = serde_json::from_value(payload).unwrap();
    payload.artifacts_url = format!("http://{addr}/v1/jobs/{id}/artifacts");
    let client = agentlab_guest::client::RunnerClient::new(&payload).unwrap();
    let file = g.dir.path().join("bundle.bin");
    std::fs::write(&file, vec![7u8; 50_000]).unwrap();
    let backoff = agentlab_guest::client::Backoff {
        attempts: 50,
        initial: Duration::from_millis(20),
        max: Duration::from_millis(50),
    };
    let upload = tokio::spawn(async move {
        client
            .upload("artifacts.tar.gz", &file, backoff)
            .await
            .map(|r| r.size)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (server, _) = serve(&g, addr).await;
    assert_eq!(upload.await.unwrap().unwrap(), 50_000);
    let arts = g.lab.deps().store.list_artifacts(&id).await.unwrap();
    assert_eq!(arts.len(), 1);
    assert_eq!(arts[0].size, 50_000);
    assert!(parts(&job_dir).is_empty());
    server.abort();
}

#[tokio::test]
async fn part_files_of_an_earlier_run_are_removed_at_start_and_never_counted() {
    let g = setup_with(100, 1 << 20, true).await;
    let id = JobId::generate();
    let dir = g.dir.path().join(id.as_str());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".a.tar.gz.1-1.part"), vec![0u8; 1000]).unwrap();
    std::fs::write(dir.join("kept.txt"), b"hello").unwrap();
    assert_eq!(g.state.artifacts.used(&id, None).await, 5);
    let later = std::time::SystemTime::now() + Duration::from_secs(1);
    assert_eq!(g.state.artifacts.clean_partials(later).await, 1);
    assert!(parts(&dir).is_empty());
    assert!(dir.join("kept.txt").exists());
}
