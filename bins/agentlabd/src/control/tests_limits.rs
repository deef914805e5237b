//! Handler tests of the request bounds: body sizes, YAML limits and parsing off the async
//! workers, field validation (`limits:`) and query/path errors in the JSON envelope.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use agentlab_core::config::LimitsConfig;

use super::tests::{T, setup_with};

async fn setup() -> T {
    setup_with(LimitsConfig::default()).await
}

/// A flat YAML list of about `bytes` bytes: within every nesting limit, but slow to parse.
fn flat_list(bytes: usize) -> String {
    format!("[{}]", "a, ".repeat(bytes / 3))
}

/// Sends `body` to `uri` on the router as a spawned task (so it runs on a worker thread).
fn spawn_call(t: &T, uri: &str, body: String) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let app = t.app.clone();
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .body(Body::from(body))
        .unwrap();
    tokio::spawn(async move {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}

#[tokio::test]
async fn a_megabyte_of_brackets_is_refused_before_parsing() {
    let t = setup().await;
    let body = "[".repeat((1 << 20) - 1);
    let v = t
        .expect_err(
            Method::POST,
            "/v1/profiles/validate",
            Some(&body),
            StatusCode::BAD_REQUEST,
            "yaml_limit_exceeded",
        )
        .await;
    assert_eq!(v["error"]["details"]["kind"], "limit");
    assert_eq!(v["error"]["details"]["line"], 1);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("max_yaml_depth"), "{msg}");
    let deep_block: String = (0..100).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    t.expect_err(
        Method::POST,
        "/v1/profiles/validate",
        Some(&deep_block),
        StatusCode::BAD_REQUEST,
        "yaml_limit_exceeded",
    )
    .await;
}

#[tokio::test]
async fn bodies_over_the_limits_are_413_on_every_body_route() {
    let t = setup().await;
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(65 * 1024));
    for uri in [
        "/v1/sandboxes",
        "/v1/sandboxes/9100/lease/renew",
        "/v1/jobs",
        "/v1/workspaces",
        "/v1/workspaces/w/attach",
        "/v1/workspaces/w/rebind",
    ] {
        t.expect_err(
            Method::POST,
            uri,
            Some(&big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        )
        .await;
    }
    // Profiles may be larger, up to their own limit.
    let (s, v) = t
        .call(Method::POST, "/v1/profiles/validate", Some(&big))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let huge = "#".repeat((1 << 20) + 1);
    t.expect_err(
        Method::POST,
        "/v1/profiles/validate",
        Some(&huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
}

/// Two slow validations must not hold up the async workers: `/healthz`, sent after them, is
/// answered while both are still parsing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_two_validations_parse() {
    let t = setup_with(LimitsConfig {
        max_profile_body_bytes: 4 << 20,
        max_yaml_flow_collections: usize::MAX,
        yaml_parse_timeout_ms: 600_000,
        ..LimitsConfig::default()
    })
    .await;
    let slow = [
        spawn_call(&t, "/v1/profiles/validate", flat_list(2 << 20)),
        spawn_call(&t, "/v1/profiles/validate", flat_list(2 << 20)),
    ];
    // Let both reach the parser (on the old code they then occupy both workers).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let app = t.app.clone();
    let health = tokio::spawn(async move {
        let req = Request::builder()
            .uri("/healthz")
            .body(Body::empty())
            .unwrap();
        app.oneshot(req).await.unwrap().status()
    });
    assert_eq!(health.await.unwrap(), StatusCode::OK);
    assert!(
        slow.iter().all(|h| !h.is_finished()),
        "/healthz was answered only after the validations finished"
    );
    for h in slow {
        let (s, v) = h.await.unwrap();
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["code"], "invalid_profile");
    }
}

#[tokio::test]
async fn parsing_has_a_time_budget_and_bounded_slots() {
    let t = setup_with(LimitsConfig {
        max_profile_body_bytes: 4 << 20,
        max_yaml_flow_collections: usize::MAX,
        yaml_parse_timeout_ms: 20,
        yaml_parse_concurrency: 1,
        ..LimitsConfig::default()
    })
    .await;
    let first = spawn_call(&t, "/v1/profiles/validate", flat_list(512 << 10));
    let (s, v) = first.await.unwrap();
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_complex")),
        "{v}"
    );
    // The timed-out parse still holds the only slot, so the next request cannot start one.
    t.expect_err(
        Method::POST,
        "/v1/profiles/validate",
        Some("name: x\n"),
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
    )
    .await;
}

#[tokio::test]
async fn bad_fields_get_typed_errors() {
    let t = setup().await;
    let job = |repo: &str, extra: &str| {
        format!(
            r#"{{"repo":{},"task":"t","profile":"yolo-ephemeral"{extra}}}"#,
            serde_json::to_string(repo).unwrap()
        )
    };
    for repo in [
        "file:///srv/repo",
        "/srv/repo",
        "ext::sh -c id",
        "--upload-pack=touch /tmp/x",
        "https://h/r\nx",
        "https://h/r\u{1b}]52;c;aGk=\u{7}",
    ] {
        let v = t
            .expect_err(
                Method::POST,
                "/v1/jobs",
                Some(&job(repo, "")),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_repo_url",
            )
            .await;
        assert_eq!(v["error"]["details"]["field"], "repo");
    }
    let https = "https://example.invalid/r.git";
    for r in ["-b", "--upload-pack=x", "a..b", "x.lock"] {
        t.expect_err(
            Method::POST,
            "/v1/jobs",
            Some(&job(https, &format!(r#","git_ref":"{r}""#))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_git_ref",
        )
        .await;
    }
    let v = t
        .expect_err(
            Method::POST,
            "/v1/jobs",
            Some(&job(https, r#","ttl_minutes":4294967295"#)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
        )
        .await;
    assert_eq!(v["error"]["details"]["max"], 10080);
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some(r#"{"profile":"interactive-dev","name":"../../etc/x"}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_name",
    )
    .await;
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some(r#"{"profile":"interactive-dev","ttl_minutes":4294967295}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
    )
    .await;
    t.expect_err(
        Method::POST,
        "/v1/workspaces",
        Some(r#"{"name":"big","size_gb":4294967295}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
    )
    .await;
    t.expect_err(
        Method::POST,
        "/v1/workspaces/big/rebind",
        Some(r#"{"profile":"interactive-dev","ttl_minutes":4294967295}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
    )
    .await;
    // A valid sandbox, then a renewal past the bound.
    let (s, sb) = t
        .call(
            Method::POST,
            "/v1/sandboxes",
            Some(r#"{"profile":"interactive-dev","name":"web-1.dev"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sb}");
    t.lab.wait_idle().await;
    t.expect_err(
        Method::POST,
        &format!("/v1/sandboxes/{}/lease/renew", sb["vmid"]),
        Some(r#"{"ttl_minutes":4294967295}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
    )
    .await;
}

#[tokio::test]
async fn file_repos_need_the_opt_in() {
    let t = setup_with(LimitsConfig {
        allow_file_repos: true,
        ..LimitsConfig::default()
    })
    .await;
    let (s, v) = t
        .call(
            Method::POST,
            "/v1/jobs",
            Some(r#"{"repo":"file:///srv/r","task":"t","profile":"yolo-ephemeral"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

#[tokio::test]
async fn query_and_path_errors_use_the_json_envelope() {
    let t = setup().await;
    for uri in [
        "/v1/sandboxes?all=maybe",
        "/v1/sandboxes?bogus=1",
        "/v1/jobs?limit=-1",
        "/v1/jobs?limit=99999999999",
        "/v1/sandboxes/9100/events?tail=x",
        "/v1/jobs/job-x/events?follow=yes",
    ] {
        let v = t
            .expect_err(
                Method::GET,
                uri,
                None,
                StatusCode::BAD_REQUEST,
                "invalid_query",
            )
            .await;
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid query string")
        );
    }
    t.expect_err(
        Method::GET,
        "/v1/profiles/%FF",
        None,
        StatusCode::BAD_REQUEST,
        "invalid_path",
    )
    .await;
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some("\u{0}"),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
}
