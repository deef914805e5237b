//! Artifact uploads against `quotas:`: refused with 413 `quota_exceeded` naming the limit,
//! an event on the job, and no file left behind.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use agentlab_core::config::QuotasConfig;
use agentlab_core::{EventKind, EventQuery, JobId};

use super::tests::{G, setup_full};

async fn runner(g: &G) -> (JobId, String) {
    let (job, vmid, token) = g.job().await;
    let fetched = g.fetch(vmid, &token).await.1;
    (job, fetched["runner_token"].as_str().unwrap().to_owned())
}

async fn put(
    g: &G,
    job: &JobId,
    token: &str,
    name: &str,
    len: usize,
    announce: bool,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method("PUT")
        .uri(format!("/v1/jobs/{job}/artifacts/{name}"))
        .header("authorization", format!("Bearer {token}"));
    if announce {
        req = req.header("content-length", len.to_string());
    }
    let mut req = req.body(Body::from(vec![1u8; len])).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [10, 77, 0, 2],
            40000,
        ))));
    let resp = g.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn files(g: &G, job: &JobId) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(g.dir.path().join(job.as_str()))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn quota_events(g: &G, job: &JobId) -> Vec<Value> {
    let q = EventQuery {
        job: Some(job.clone()),
        kinds: vec![EventKind::QuotaExceeded],
        ..EventQuery::default()
    };
    let events = g.lab.events(&q).await.unwrap();
    events.into_iter().map(|e| e.payload).collect()
}

#[tokio::test]
async fn uploads_over_the_per_job_or_total_quota_are_refused_naming_the_limit() {
    let quotas = QuotasConfig {
        max_artifact_bytes_per_job: Some(1000),
        max_artifact_bytes_total: Some(1500),
        ..QuotasConfig::default()
    };
    let g = setup_full(100, 1 << 20, true, quotas).await;
    let (a, ra) = runner(&g).await;
    assert_eq!(
        put(&g, &a, &ra, "out.bin", 600, false).await.0,
        StatusCode::OK
    );

    // Streamed without a length: refused once it passes the job's remaining 400 bytes.
    let (s, body) = put(&g, &a, &ra, "more.bin", 600, false).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let err = &body["error"];
    assert_eq!(err["code"], "quota_exceeded");
    assert_eq!(err["details"]["limit"], "max_artifact_bytes_per_job");
    assert_eq!(err["details"]["value"], 1000);
    assert_eq!(err["details"]["used"], 600);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("quotas.max_artifact_bytes_per_job"),
        "{err}"
    );
    assert_eq!(files(&g, &a), ["out.bin"], "nothing partial is left");
    let ev = quota_events(&g, &a).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["limit"], "max_artifact_bytes_per_job");

    // Replacing an artifact counts its new size only.
    assert_eq!(
        put(&g, &a, &ra, "out.bin", 900, false).await.0,
        StatusCode::OK
    );

    // Another job: 900 stored in total, 600 left; an announced 700 is refused at once.
    let (b, rb) = runner(&g).await;
    let (s, body) = put(&g, &b, &rb, "b.bin", 700, true).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        body["error"]["details"]["limit"],
        "max_artifact_bytes_total"
    );
    assert_eq!(body["error"]["details"]["used"], 900);
    assert_eq!(body["error"]["details"]["requested"], 700);
    assert!(files(&g, &b).is_empty(), "nothing partial is left");
    assert_eq!(quota_events(&g, &b).await.len(), 1);
    assert_eq!(put(&g, &b, &rb, "b.bin", 600, true).await.0, StatusCode::OK);
    assert_eq!(
        g.lab.deps().store.artifact_bytes_total().await.unwrap(),
        1500
    );
}
