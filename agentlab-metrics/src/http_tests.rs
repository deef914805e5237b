use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use agentlab_core::fake::{ManualClock, MemoryStore};
use agentlab_core::testkit::store::t0;
use agentlab_core::{Clock, StateStore};

use super::{CONTENT_TYPE, instrument, router};
use crate::families::Metrics;
use crate::scrape::Exporter;
use crate::testutil::{text, value};

async fn send(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if status == StatusCode::OK && uri == "/metrics" {
        assert_eq!(
            ct.as_ref().and_then(|v| v.to_str().ok()),
            Some(CONTENT_TYPE)
        );
    }
    (status, body)
}

#[tokio::test]
async fn get_metrics_serves_the_registry() {
    let metrics = Arc::new(Metrics::new());
    metrics.jobs_queued.inc();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0()));
    let app = router(Exporter::new(metrics, store, clock));
    let (status, body) = send(&app, "GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        value(&body, "agentlab_jobs_queued_total"),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("# TYPE agentlab_sandboxes gauge"), "{body}");
    assert_eq!(
        send(&app, "POST", "/metrics").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template_not_raw_path() {
    let metrics = Arc::new(Metrics::new());
    let app = Router::new()
        .route(
            "/v1/jobs/{id}/logs",
            post(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/v1/bootstrap/fetch",
            post(|| async { StatusCode::TOO_MANY_REQUESTS }),
        );
    let app = instrument(app, Arc::clone(&metrics));
    for id in ["j-1", "j-2", "j-3"] {
        let uri = format!("/v1/jobs/{id}/logs");
        assert_eq!(send(&app, "POST", &uri).await.0, StatusCode::NO_CONTENT);
    }
    send(&app, "POST", "/v1/bootstrap/fetch").await;
    assert_eq!(
        send(&app, "GET", "/nope/123").await.0,
        StatusCode::NOT_FOUND
    );
    let t = text(&metrics);
    assert_eq!(
        value(
            &t,
            "agentlab_guest_requests_total{route=\"/v1/jobs/{id}/logs\",method=\"POST\",status=\"204\"}"
        ),
        Some(3.0),
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            "agentlab_guest_requests_total{route=\"/v1/bootstrap/fetch\",method=\"POST\",status=\"429\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &t,
            "agentlab_guest_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ),
        Some(1.0),
        "{t}"
    );
    assert!(
        !t.contains("j-1") && !t.contains("/nope"),
        "no raw paths: {t}"
    );
}
