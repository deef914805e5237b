//! HTTP: [`router`] serves `GET /metrics`; [`instrument`] counts an axum router's requests
//! in `agentlab_guest_requests_total{route,method,status}`, labelled with the matched route
//! template (never the raw path, so ids in paths do not multiply the series).

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::families::{Metrics, RouteLabels};
use crate::scrape::Exporter;

/// The content type of `/metrics` answers (OpenMetrics text 1.0.0, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(exporter): State<Exporter>) -> Response {
    match exporter.render().await {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "metrics scrape failed");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

/// A router with one route, `GET /metrics`, rendered by `exporter`. Mount it on any listener
/// (the daemon's metrics listener, an authenticated remote API).
pub fn router(exporter: Exporter) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(exporter)
}

async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    m.guest_requests
        .get_or_create(&RouteLabels {
            route,
            method,
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    resp
}

/// `router` with every request counted in `agentlab_guest_requests_total` (apply it after
/// the routes are added, so each request carries its matched route).
pub fn instrument(router: Router, metrics: Arc<Metrics>) -> Router {
    router.layer(middleware::from_fn_with_state(metrics, track))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
