//! Handler tests: every route against the fakes through `tower::ServiceExt::oneshot`,
//! including each error code.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use agentlab_core::config::LimitsConfig;
use agentlab_core::engine::{Lab, LabDeps, LabSettings};
use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;

use crate::artifacts::ArtifactStore;
use crate::control::limits::ApiLimits;
use crate::control::{AppState, router};

pub(super) struct T {
    pub(super) app: Router,
    pub(super) lab: Arc<Lab>,
    hv: Arc<FakeHypervisor>,
    _dir: tempfile::TempDir,
}

async fn setup() -> T {
    setup_with(LimitsConfig::default()).await
}

/// The router over fresh fakes, with these `limits:`.
pub(super) async fn setup_with(limits: LimitsConfig) -> T {
    let hv = Arc::new(FakeHypervisor::new());
    let deps = LabDeps {
        hypervisor: hv.clone(),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(ManualClock::at_epoch()),
    };
    let profiles = Profiles::load_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles"),
    )
    .unwrap();
    let settings = LabSettings {
        guest_poll_interval: Duration::from_millis(1),
        shutdown_grace: Duration::ZERO,
        ..LabSettings::default()
    };
    let lab = Lab::new(deps, settings, profiles);
    lab.reconcile().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = AppState {
        lab: lab.clone(),
        artifacts: ArtifactStore::new(dir.path().to_path_buf()),
        version: "test",
        cancel: tokio_util::sync::CancellationToken::new(),
        limits: Arc::new(ApiLimits::new(limits)),
        channels: Arc::default(),
        tokens: std::sync::Arc::new(agentlab_core::fake::MemoryStore::new()),
        disks: Default::default(),
    };
    T {
        app: router(state),
        lab,
        hv,
        _dir: dir,
    }
}

impl T {
    pub(super) async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    pub(super) async fn expect_err(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
        status: StatusCode,
        code: &str,
    ) -> Value {
        let (s, v) = self.call(method, uri, body).await;
        assert_eq!(s, status, "{uri}: {v}");
        assert_eq!(v["error"]["code"], code, "{uri}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        v
    }
}

#[tokio::test]
async fn health_status_and_openapi() {
    let t = setup().await;
    assert_eq!(
        t.call(Method::GET, "/healthz", None).await,
        (StatusCode::OK, json!({"ok": true}))
    );
    let (s, v) = t.call(Method::GET, "/v1/status", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["backend"], "fake");
    assert_eq!(v["backend_healthy"], true);
    let (s, v) = t.call(Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["paths"]["/v1/sandboxes/{vmid}"]["delete"].is_object());
    let checked_in: Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
    assert_eq!(
        v, checked_in,
        "docs/openapi.json is stale: regenerate with `agentlabd --openapi > docs/openapi.json`"
    );
    t.expect_err(
        Method::GET,
        "/v1/nope",
        None,
        StatusCode::NOT_FOUND,
        "route_not_found",
    )
    .await;
    t.expect_err(
        Method::PUT,
        "/v1/status",
        None,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn sandbox_routes_and_errors() {
    let t = setup().await;
    let (s, sb) = t
        .call(
            Method::POST,
            "/v1/sandboxes",
            Some(r#"{"profile":"interactive-dev","ttl_minutes":30}"#),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(sb["state"], "REQUESTED");
    t.lab.wait_idle().await;
    let vmid = sb["vmid"].as_u64().unwrap();
    let (s, v) = t
        .call(Method::GET, &format!("/v1/sandboxes/{vmid}"), None)
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("READY")));
    let (_, list) = t
        .call(
            Method::GET,
            "/v1/sandboxes?state=READY&profile=interactive-dev",
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, list) = t
        .call(Method::GET, "/v1/sandboxes?state=FAILED", None)
        .await;
    assert!(list.as_array().unwrap().is_empty());
    let (s, v) = t
        .call(
            Method::POST,
            &format!("/v1/sandboxes/{vmid}/lease/renew"),
            Some(r#"{"ttl_minutes":90}"#),
        )
        .await;
    assert_eq!(
        (s, v["lease"]["ttl_minutes"].as_u64()),
        (StatusCode::OK, Some(90))
    );
    let (s, _) = t
        .call(
            Method::POST,
            &format!("/v1/sandboxes/{vmid}/lease/renew"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t
        .call(Method::POST, &format!("/v1/sandboxes/{vmid}/stop"), None)
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("STOPPED")));
    let (s, v) = t
        .call(Method::POST, &format!("/v1/sandboxes/{vmid}/start"), None)
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("BOOTING")));
    t.lab.wait_idle().await;
    let (s, ev) = t
        .call(
            Method::GET,
            &format!("/v1/sandboxes/{vmid}/events?tail=2"),
            None,
        )
        .await;
    assert_eq!((s, ev.as_array().unwrap().len()), (StatusCode::OK, 2));
    let (s, v) = t
        .call(Method::DELETE, &format!("/v1/sandboxes/{vmid}"), None)
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("DESTROYED"))
    );
    // Errors.
    t.expect_err(
        Method::GET,
        "/v1/sandboxes/9999",
        None,
        StatusCode::NOT_FOUND,
        "sandbox_not_found",
    )
    .await;
    t.expect_err(
        Method::GET,
        "/v1/sandboxes/abc",
        None,
        StatusCode::BAD_REQUEST,
        "invalid_vmid",
    )
    .await;
    t.expect_err(
        Method::GET,
        "/v1/sandboxes?state=BOGUS",
        None,
        StatusCode::BAD_REQUEST,
        "invalid_state_filter",
    )
    .await;
    let v = t
        .expect_err(
            Method::POST,
            "/v1/sandboxes",
            Some(r#"{"profile":"#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        )
        .await;
    assert_eq!(v["error"]["details"]["line"], 1);
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some(r#"{"profil":"x"}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    )
    .await;
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some(r#"{"profile":"nope"}"#),
        StatusCode::NOT_FOUND,
        "profile_not_found",
    )
    .await;
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some(r#"{"profile":"interactive-dev","ttl_minutes":0}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
    )
    .await;
    t.expect_err(
        Method::POST,
        &format!("/v1/sandboxes/{vmid}/stop"),
        None,
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
    t.expect_err(
        Method::POST,
        &format!("/v1/sandboxes/{vmid}/lease/renew"),
        None,
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
    let big = format!(r#"{{"profile":"{}"}}"#, "x".repeat(100 * 1024));
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some(&big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    t.hv.fail_always(
        FakeOp::UsedIds,
        Fault::new(FaultKind::Unavailable, "pve down"),
    );
    t.expect_err(
        Method::POST,
        "/v1/sandboxes",
        Some(r#"{"profile":"interactive-dev"}"#),
        StatusCode::SERVICE_UNAVAILABLE,
        "backend_unavailable",
    )
    .await;
}

#[tokio::test]
async fn job_routes_and_errors() {
    let t = setup().await;
    let body =
        r#"{"repo":"https://example.invalid/r.git","task":"do it","profile":"yolo-ephemeral"}"#;
    let (s, job) = t.call(Method::POST, "/v1/jobs", Some(body)).await;
    assert_eq!(
        (s, job["state"].as_str()),
        (StatusCode::ACCEPTED, Some("QUEUED"))
    );
    assert!(
        job.get("runner_token_hash").is_none(),
        "token hash must not be served"
    );
    t.lab.wait_idle().await;
    let id = job["id"].as_str().unwrap();
    let (s, v) = t.call(Method::GET, &format!("/v1/jobs/{id}"), None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("QUEUED")));
    let (_, list) = t
        .call(Method::GET, "/v1/jobs?state=QUEUED&limit=5", None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, ev) = t
        .call(Method::GET, &format!("/v1/jobs/{id}/events"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        ev.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "provision_step")
    );
    let (s, arts) = t
        .call(Method::GET, &format!("/v1/jobs/{id}/artifacts"), None)
        .await;
    assert_eq!((s, arts), (StatusCode::OK, json!([])));
    t.expect_err(
        Method::GET,
        &format!("/v1/jobs/{id}/artifacts/x.tar.gz"),
        None,
        StatusCode::NOT_FOUND,
        "artifact_not_found",
    )
    .await;
    let (s, v) = t
        .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("CANCELLED"))
    );
    t.expect_err(
        Method::POST,
        &format!("/v1/jobs/{id}/cancel"),
        None,
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
    t.expect_err(
        Method::GET,
        "/v1/jobs/job-0000",
        None,
        StatusCode::NOT_FOUND,
        "job_not_found",
    )
    .await;
    t.expect_err(
        Method::GET,
        "/v1/jobs/xyz",
        None,
        StatusCode::BAD_REQUEST,
        "invalid_job_id",
    )
    .await;
    t.expect_err(
        Method::POST,
        "/v1/jobs",
        Some(r#"{"repo":"","task":"t","profile":"yolo-ephemeral"}"#),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_repo_url",
    )
    .await;
}

#[tokio::test]
async fn workspace_routes_and_errors() {
    let t = setup().await;
    let (s, ws) = t
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(r#"{"name":"proj","size_gb":5}"#),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    t.expect_err(
        Method::POST,
        "/v1/workspaces",
        Some(r#"{"name":"proj","size_gb":5}"#),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let (_, sb) = t
        .call(
            Method::POST,
            "/v1/sandboxes",
            Some(r#"{"profile":"yolo-ephemeral"}"#),
        )
        .await;
    t.lab.wait_idle().await;
    let vmid = sb["vmid"].as_u64().unwrap();
    let (s, v) = t
        .call(
            Method::POST,
            "/v1/workspaces/proj/attach",
            Some(&format!(r#"{{"vmid":{vmid}}}"#)),
        )
        .await;
    assert_eq!((s, v["attached_to"].as_u64()), (StatusCode::OK, Some(vmid)));
    t.expect_err(
        Method::DELETE,
        "/v1/workspaces/proj",
        None,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let (s, v) = t
        .call(
            Method::POST,
            "/v1/workspaces/proj/rebind",
            Some(r#"{"profile":"interactive-dev"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["old_vmid"].as_u64(), Some(vmid));
    t.lab.wait_idle().await;
    let (s, v) = t
        .call(
            Method::POST,
            &format!("/v1/workspaces/{}/detach", ws["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((s, v["attached_to"].clone()), (StatusCode::OK, Value::Null));
    t.expect_err(
        Method::POST,
        "/v1/workspaces/proj/detach",
        None,
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
    let (_, list) = t.call(Method::GET, "/v1/workspaces", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, v) = t.call(Method::GET, "/v1/workspaces/proj", None).await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("proj")));
    let (s, _) = t.call(Method::DELETE, "/v1/workspaces/proj", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    t.expect_err(
        Method::GET,
        "/v1/workspaces/proj",
        None,
        StatusCode::NOT_FOUND,
        "workspace_not_found",
    )
    .await;
}

#[tokio::test]
async fn profile_routes_and_errors() {
    let t = setup().await;
    let (s, list) = t.call(Method::GET, "/v1/profiles", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let (s, p) = t
        .call(Method::GET, "/v1/profiles/yolo-ephemeral", None)
        .await;
    assert_eq!(
        (s, p["name"].as_str()),
        (StatusCode::OK, Some("yolo-ephemeral"))
    );
    t.expect_err(
        Method::GET,
        "/v1/profiles/nope",
        None,
        StatusCode::NOT_FOUND,
        "profile_not_found",
    )
    .await;
    let good = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles/defaults.yaml"),
    )
    .unwrap();
    let (s, v) = t
        .call(Method::POST, "/v1/profiles/validate", Some(&good))
        .await;
    assert_eq!((s, v["valid"].as_bool()), (StatusCode::OK, Some(true)));
    let bad = good.replacen("memory_mb", "memroy_mb", 1);
    let v = t
        .expect_err(
            Method::POST,
            "/v1/profiles/validate",
            Some(&bad),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_profile",
        )
        .await;
    assert_eq!(v["error"]["details"]["suggestion"], "memory_mb");
}
