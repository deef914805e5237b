//! Guest route tests through `tower::ServiceExt::oneshot`: token refusal without an oracle,
//! rate limiting, runner authentication, logs, artifacts and their limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use agentlab_core::engine::{JobRequest, Lab, LabDeps, LabSettings};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;
use agentlab_core::{EventKind, EventQuery, SecretBundle, SecretValue, Vmid};

use crate::artifacts::ArtifactStore;
use crate::guest::ratelimit::RateLimiter;
use crate::guest::{GuestState, router};

pub(super) struct G {
    pub(super) app: Router,
    pub(super) redactors:
        Arc<Mutex<HashMap<agentlab_core::JobId, Arc<agentlab_core::redact::Redactor>>>>,
    pub(super) lab: Arc<Lab>,
    pub(super) hv: Arc<FakeHypervisor>,
    pub(super) dir: tempfile::TempDir,
    pub(super) state: GuestState,
}

async fn setup(rate: u32, artifact_max: u64) -> G {
    setup_with(rate, artifact_max, true).await
}

pub(super) async fn setup_with(rate: u32, artifact_max: u64, bind: bool) -> G {
    setup_full(rate, artifact_max, bind, Default::default()).await
}

pub(super) async fn setup_full(
    rate: u32,
    artifact_max: u64,
    bind: bool,
    quotas: agentlab_core::config::QuotasConfig,
) -> G {
    let hv = Arc::new(FakeHypervisor::new());
    let secrets = Arc::new(MemorySecretStore::new());
    let mut b = SecretBundle::default();
    b.env
        .insert("API_KEY".into(), SecretValue::new("sk-live-guest-secret"));
    secrets.insert("default", b);
    let deps = LabDeps {
        hypervisor: hv.clone(),
        firewall: Arc::new(FakeFirewall::new()),
        secrets,
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(ManualClock::at_epoch()),
    };
    let defaults = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/defaults.yaml"),
    )
    .unwrap();
    let with_secrets = "---\nname: with-secrets\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\nsecrets_bundle: default\nagent:\n  command: make\n";
    let profiles =
        Profiles::from_yaml_str(&format!("{defaults}\n{with_secrets}"), "test.yaml").unwrap();
    let settings = LabSettings {
        guest_poll_interval: Duration::from_millis(1),
        controller_url: "http://127.0.0.1:9".into(),
        bind_bootstrap_address: bind,
        quotas,
        ..LabSettings::default()
    };
    let lab = Lab::new(deps, settings, profiles);
    lab.reconcile().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let redactors = Arc::new(Mutex::new(HashMap::new()));
    let state = GuestState {
        lab: lab.clone(),
        artifacts: ArtifactStore::new(dir.path().to_path_buf()),
        limiter: Arc::new(RateLimiter::new(rate)),
        redactors: redactors.clone(),
        artifact_max_bytes: artifact_max,
        channels: Arc::default(),
        cancel: tokio_util::sync::CancellationToken::new(),
    };
    G {
        app: router(state.clone(), 64 * 1024),
        redactors,
        lab,
        hv,
        dir,
        state,
    }
}

impl G {
    pub(super) async fn send(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        body: Body,
        ip: [u8; 4],
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut req = req.body(body).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            retry,
        )
    }

    /// A fetch from the sandbox's own address (10.77.0.2 for an unknown sandbox).
    pub(super) async fn fetch(
        &self,
        vmid: Vmid,
        token: &str,
    ) -> (StatusCode, Value, Option<String>) {
        let ip = match self.lab.sandbox(vmid).await.ok().and_then(|s| s.ip) {
            Some(std::net::IpAddr::V4(v4)) => v4.octets(),
            _ => [10, 77, 0, 2],
        };
        self.fetch_from(vmid, token, ip).await
    }

    pub(super) async fn fetch_from(
        &self,
        vmid: Vmid,
        token: &str,
        ip: [u8; 4],
    ) -> (StatusCode, Value, Option<String>) {
        let body = json!({"token": token, "vmid": vmid}).to_string();
        self.send("POST", "/v1/bootstrap/fetch", None, Body::from(body), ip)
            .await
    }

    /// The stored log lines of `job`.
    pub(super) async fn job_logs(&self, job: &agentlab_core::JobId) -> Vec<String> {
        let q = EventQuery {
            job: Some(job.clone()),
            kinds: vec![EventKind::JobLog],
            ..EventQuery::default()
        };
        self.lab
            .events(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    pub(super) async fn job(&self) -> (agentlab_core::JobId, Vmid, String) {
        let job = self
            .lab
            .run_job(JobRequest {
                repo: "file:///r".into(),
                task: "t".into(),
                profile: "with-secrets".into(),
                ..JobRequest::default()
            })
            .await
            .unwrap();
        self.lab.wait_idle().await;
        let vmid = job.sandbox.unwrap();
        let token = self
            .hv
            .vm(vmid)
            .unwrap()
            .bootstrap
            .unwrap()
            .token
            .expose()
            .to_owned();
        (job.id, vmid, token)
    }
}

#[tokio::test]
async fn fetch_hands_out_the_job_once_and_refuses_alike() {
    let g = setup(100, 1 << 20).await;
    let (id, vmid, token) = g.job().await;
    let other = Vmid::new(vmid.get() + 1).unwrap();
    let (s1, wrong_vmid, _) = g.fetch(other, &token).await;
    let (s2, unknown, _) = g.fetch(vmid, "not-a-token").await;
    let (s, payload, _) = g.fetch(vmid, &token).await;
    assert_eq!(s, StatusCode::OK, "{payload}");
    assert_eq!(payload["job"]["job_id"], id.as_str());
    assert_eq!(payload["secrets"]["env"]["API_KEY"], "sk-live-guest-secret");
    assert_eq!(
        payload["status_url"],
        format!("http://127.0.0.1:9/v1/jobs/{id}/status")
    );
    let (s3, replay, _) = g.fetch(vmid, &token).await;
    for (s, body) in [(s1, &wrong_vmid), (s2, &unknown), (s3, &replay)] {
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(body, &wrong_vmid, "403 bodies must be identical");
    }
    let (s, body, _) = g
        .send(
            "POST",
            "/v1/bootstrap/fetch",
            None,
            Body::from("{\"token\":"),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
}

#[tokio::test]
async fn fetch_is_rate_limited_per_token() {
    let g = setup(2, 1 << 20).await;
    for _ in 0..2 {
        assert_eq!(
            g.fetch(Vmid::new(9100).unwrap(), "x").await.0,
            StatusCode::FORBIDDEN
        );
    }
    let (s, body, retry) = g.fetch(Vmid::new(9100).unwrap(), "x").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn runner_routes_need_the_jobs_own_token() {
    let g = setup(100, 1 << 20).await;
    let (a, va, ta) = g.job().await;
    let (b, vb, tb) = g.job().await;
    let ra = g.fetch(va, &ta).await.1["runner_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rb = g.fetch(vb, &tb).await.1["runner_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let running = Body::from(r#"{"state":"RUNNING","step":"clone"}"#);
    let (s, body, _) = g
        .send(
            "POST",
            &format!("/v1/jobs/{b}/status"),
            Some(&ra),
            running,
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, _, _) = g
        .send(
            "POST",
            &format!("/v1/jobs/{a}/logs"),
            None,
            Body::from(r#"{"lines":[]}"#),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let logs = json!({"lines": [{"stream": "stdout", "line": "key is sk-live-guest-secret"}, {"stream": "stderr", "line": "warn"}]});
    let (s, _, _) = g
        .send(
            "POST",
            &format!("/v1/jobs/{a}/logs"),
            Some(&ra),
            Body::from(logs.to_string()),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let lines = g.job_logs(&a).await;
    assert_eq!(lines, ["key is [REDACTED]", "[stderr] warn"]);
    let (s, _, _) = g
        .send(
            "POST",
            &format!("/v1/jobs/{b}/status"),
            Some(&rb),
            Body::from(r#"{"state":"COMPLETED","exit_code":0}"#),
            [10, 77, 0, 3],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        g.lab.job(&b).await.unwrap().state,
        agentlab_core::JobState::Completed
    );
}

#[tokio::test]
async fn artifacts_are_hashed_and_limited() {
    let g = setup(100, 1024).await;
    let (a, va, ta) = g.job().await;
    let ra = g.fetch(va, &ta).await.1["runner_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let data = vec![7u8; 600];
    let (s, receipt, _) = g
        .send(
            "PUT",
            &format!("/v1/jobs/{a}/artifacts/out.bin"),
            Some(&ra),
            Body::from(data.clone()),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{receipt}");
    use sha2::Digest;
    assert_eq!(receipt["sha256"], hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(receipt["size"], 600);
    // The per-job budget (1024 bytes) is shared by all artifacts of the job.
    let (s, body, _) = g
        .send(
            "PUT",
            &format!("/v1/jobs/{a}/artifacts/more.bin"),
            Some(&ra),
            Body::from(data),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    let (s, _, _) = g
        .send(
            "PUT",
            &format!("/v1/jobs/{a}/artifacts/..%2Fescape"),
            Some(&ra),
            Body::from("x"),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let arts = g.lab.deps().store.list_artifacts(&a).await.unwrap();
    assert_eq!(arts.len(), 1);
    assert_eq!(arts[0].name, "out.bin");
}

#[tokio::test]
async fn log_redaction_survives_a_daemon_restart() {
    let g = setup(100, 1 << 20).await;
    let (a, va, ta) = g.job().await;
    let ra = g.fetch(va, &ta).await.1["runner_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A restarted daemon has no per-job redactor in memory.
    g.redactors.lock().unwrap().clear();
    let logs = json!({"lines": [{"stream": "stdout", "line": "sk-live-guest-secret again"}]});
    let (s, _, _) = g
        .send(
            "POST",
            &format!("/v1/jobs/{a}/logs"),
            Some(&ra),
            Body::from(logs.to_string()),
            [10, 77, 0, 2],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let lines = g.job_logs(&a).await;
    assert_eq!(lines, ["[REDACTED] again"]);
}
