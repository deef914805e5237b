//! The remote routes in process: tokens, scopes, profile limits, socket-only routes, rate
//! limits (TLS and the real listener are covered by `tests/e2e_remote.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use agentlab_core::config::{LimitsConfig, RemoteConfig};
use agentlab_core::engine::{Lab, LabDeps, LabSettings};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;

use crate::artifacts::ArtifactStore;
use crate::control::auth::{Access, access};
use crate::control::limits::ApiLimits;
use crate::control::{AppState, remote_router, socket_router};

struct R {
    socket: Router,
    remote: Router,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn setup(remote: RemoteConfig) -> R {
    let clock = Arc::new(ManualClock::at_epoch());
    let deps = LabDeps {
        hypervisor: Arc::new(FakeHypervisor::new()),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: clock.clone(),
    };
    let profiles = Profiles::load_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles"),
    )
    .unwrap();
    let lab = Lab::new(deps, LabSettings::default(), profiles);
    let dir = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let state = AppState {
        lab,
        artifacts: ArtifactStore::new(dir.path().to_path_buf()),
        version: "test",
        cancel: cancel.clone(),
        limits: Arc::new(ApiLimits::new(LimitsConfig::default())),
        channels: Arc::default(),
        tokens: Arc::new(MemoryStore::new()),
        disks: Default::default(),
    };
    R {
        socket: socket_router(state.clone(), Router::new(), cancel.clone()),
        remote: remote_router(state, &remote, Router::new(), cancel),
        clock,
        _dir: dir,
    }
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    peer: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let mut req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let addr: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, v)
}

const PEER: &str = "192.0.2.7:40000";

async fn token(r: &R, name: &str, scopes: &[&str], profiles: &[&str], ttl: u64) -> String {
    let (s, _, v) = send(
        &r.socket,
        Method::POST,
        "/v1/tokens",
        None,
        Some(json!({"name": name, "scopes": scopes, "profiles": profiles, "ttl_secs": ttl})),
        PEER,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn tokens_and_scopes_decide_every_remote_request() {
    let r = setup(RemoteConfig::default()).await;
    let (s, h, v) = send(&r.remote, Method::GET, "/v1/sandboxes", None, None, PEER).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "token_required"));
    assert!(h.contains_key(header::WWW_AUTHENTICATE));
    let (s, _, _) = send(&r.remote, Method::GET, "/healthz", None, None, PEER).await;
    assert_eq!(s, StatusCode::OK, "the liveness probe needs no token");

    let ci = token(
        &r,
        "ci",
        &["job:*", "sandbox:read"],
        &["yolo-ephemeral"],
        3600,
    )
    .await;
    let (s, _, v) = send(
        &r.remote,
        Method::GET,
        "/v1/sandboxes",
        Some(&ci),
        None,
        PEER,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, v) = send(
        &r.remote,
        Method::POST,
        "/v1/sandboxes",
        Some(&ci),
        Some(json!({"profile": "yolo-ephemeral"})),
        PEER,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "scope_missing"),
        "{v}"
    );
    assert_eq!(v["error"]["details"]["required"], "sandbox:create");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sandbox:create")
    );
    let (s, _, v) = send(
        &r.remote,
        Method::POST,
        "/v1/jobs",
        Some(&ci),
        Some(
            json!({"repo": "https://example.com/r.git", "task": "t", "profile": "interactive-dev"}),
        ),
        PEER,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "profile_not_allowed"),
        "{v}"
    );

    let (s, _, v) = send(&r.remote, Method::GET, "/v1/tokens", Some(&ci), None, PEER).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "socket_only"), "{v}");
    let (s, _, v) = send(
        &r.remote,
        Method::POST,
        "/v1/tokens",
        Some(&ci),
        Some(json!({"name": "x", "scopes": ["*"]})),
        PEER,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "socket_only"), "{v}");

    let forged = format!("{}x", &ci[..ci.len() - 1]);
    let (s, _, v) = send(
        &r.remote,
        Method::GET,
        "/v1/jobs",
        Some(&forged),
        None,
        PEER,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "token_invalid"),
        "{v}"
    );
    let (s, _, v) = send(
        &r.remote,
        Method::GET,
        "/v1/jobs",
        Some("hunter2"),
        None,
        PEER,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "token_invalid"),
        "{v}"
    );
}

#[tokio::test]
async fn revoked_and_expired_tokens_stop_working_at_once() {
    let r = setup(RemoteConfig::default()).await;
    let a = token(&r, "a", &["*"], &[], 60).await;
    let b = token(&r, "b", &["*"], &[], 3600).await;
    let (s, _, _) = send(&r.remote, Method::GET, "/v1/jobs", Some(&a), None, PEER).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = send(&r.socket, Method::DELETE, "/v1/tokens/b", None, None, PEER).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["revoked_at"].is_string());
    let (s, _, v) = send(&r.remote, Method::GET, "/v1/jobs", Some(&b), None, PEER).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "token_revoked"),
        "{v}"
    );
    r.clock.advance(Duration::from_secs(61));
    let (s, _, v) = send(&r.remote, Method::GET, "/v1/jobs", Some(&a), None, PEER).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "token_expired"),
        "{v}"
    );

    let (s, _, v) = send(&r.socket, Method::GET, "/v1/tokens", None, None, PEER).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.to_string();
    assert!(
        !text.contains(&a[18..]) && !text.contains(&b[18..]),
        "no secret listed: {text}"
    );
    assert_eq!(v.as_array().unwrap().len(), 2);
    let listed_a = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "a")
        .unwrap();
    assert!(listed_a["last_used_at"].is_string(), "use is recorded: {v}");
}

#[tokio::test]
async fn bad_token_requests_are_typed() {
    let r = setup(RemoteConfig::default()).await;
    for (body, want) in [
        (
            json!({"name": "a b", "scopes": ["*"]}),
            "invalid_token_name",
        ),
        (json!({"name": "a", "scopes": []}), "scope_required"),
        (
            json!({"name": "a", "scopes": ["jobs:read"]}),
            "invalid_request",
        ),
        (
            json!({"name": "a", "scopes": ["*"], "profiles": ["nope"]}),
            "unknown_profile",
        ),
        (
            json!({"name": "a", "scopes": ["*"], "ttl_secs": 0}),
            "invalid_ttl",
        ),
    ] {
        let (s, _, v) = send(
            &r.socket,
            Method::POST,
            "/v1/tokens",
            None,
            Some(body),
            PEER,
        )
        .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, want),
            "{v}"
        );
    }
    token(&r, "dup", &["*"], &[], 60).await;
    let (s, _, v) = send(
        &r.socket,
        Method::POST,
        "/v1/tokens",
        None,
        Some(json!({"name": "dup", "scopes": ["*"]})),
        PEER,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "token_exists"), "{v}");
    let (s, _, v) = send(
        &r.socket,
        Method::DELETE,
        "/v1/tokens/nope",
        None,
        None,
        PEER,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "token_not_found"),
        "{v}"
    );
}

#[tokio::test]
async fn a_flood_gets_429_with_retry_after_per_client() {
    let r = setup(RemoteConfig {
        rate_per_sec: 1,
        burst: 3,
        ..RemoteConfig::default()
    })
    .await;
    for _ in 0..3 {
        let (s, _, _) = send(&r.remote, Method::GET, "/healthz", None, None, PEER).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, h, v) = send(&r.remote, Method::GET, "/healthz", None, None, PEER).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{v}"
    );
    let retry: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry <= 1, "{retry}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("remote.rate_per_sec")
    );
    let (s, _, _) = send(
        &r.remote,
        Method::GET,
        "/healthz",
        None,
        None,
        "192.0.2.8:1",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "another client has its own budget");
}

#[tokio::test]
async fn the_socket_is_rate_limited_too() {
    let r = setup(RemoteConfig::default()).await;
    let mut limited = 0;
    for _ in 0..(LimitsConfig::default().socket_burst + 20) {
        let (s, _, _) = send(&r.socket, Method::GET, "/healthz", None, None, PEER).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited > 0, "a flood on the socket is refused too");
}

#[test]
fn every_documented_route_has_a_remote_rule() {
    let doc = crate::control::openapi::document();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let rule = access(&m, path);
            assert!(rule.is_some(), "{method} {path} has no remote rule");
            if let Some(Access::Scope(req)) = rule {
                assert!(req.is_known(), "{method} {path}: {req} is not in SCOPES");
            }
        }
    }
}
