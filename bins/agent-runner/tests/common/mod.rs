//! Test support: a mock controller implementing the guest API, a local origin repository and
//! a helper that runs the real `agent-runner` binary.

pub mod git_http;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use agentlab_core::api::guest::{
    ArtifactReceipt, BootstrapFetchRequest, BootstrapPayload, ErrorBody, ErrorInfo, GuestAgent,
    GuestArtifactPolicy, GuestJobSpec, GuestPolicy, LogBatch, LogLine, StatusReport,
};
use agentlab_core::{JobId, SecretBundle, SecretValue};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use sha2::Digest as _;

pub const BOOT_TOKEN: &str = "boot-token-0123456789abcdef";
pub const RUNNER_TOKEN: &str = "runner-token-fedcba9876543210";
pub const VMID: u32 = 9001;

/// What the mock controller saw.
#[derive(Debug, Default)]
pub struct Recorded {
    pub fetches: u32,
    /// `status:<STATE>[:step]`, `artifact:<name>` in arrival order.
    pub events: Vec<String>,
    pub statuses: Vec<StatusReport>,
    pub logs: Vec<LogLine>,
    pub artifacts: BTreeMap<String, Vec<u8>>,
    pub unauthorized: u32,
    /// Reasons sent to `/v1/bootstrap/abandon`.
    pub abandons: Vec<String>,
    /// Upload attempts (including refused ones).
    pub upload_attempts: u32,
}

struct Shared {
    recorded: Mutex<Recorded>,
    payload: Mutex<Option<BootstrapPayload>>,
    rate_limit_first: Mutex<u32>,
    /// Answer the fetch with this status instead (e.g. 400).
    fetch_status: Mutex<Option<StatusCode>>,
    /// Fail this many uploads with 503 before accepting.
    fail_uploads: Mutex<u32>,
}

type St = Arc<Shared>;

pub struct Mock {
    pub url: String,
    shared: St,
}

fn error(status: StatusCode, code: &str) -> Response {
    let body = ErrorBody {
        error: ErrorInfo {
            code: code.to_owned(),
            message: code.to_owned(),
            details: serde_json::json!({}),
        },
    };
    (status, Json(body)).into_response()
}

fn authorized(st: &St, headers: &HeaderMap) -> bool {
    let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {RUNNER_TOKEN}"));
    if !ok {
        st.recorded.lock().unwrap().unauthorized += 1;
    }
    ok
}

async fn fetch(State(st): State<St>, Json(req): Json<BootstrapFetchRequest>) -> Response {
    st.recorded.lock().unwrap().fetches += 1;
    {
        let mut n = st.rate_limit_first.lock().unwrap();
        if *n > 0 {
            *n -= 1;
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
            return r;
        }
    }
    if req.token.expose() != BOOT_TOKEN || req.vmid.get() != VMID {
        return error(StatusCode::FORBIDDEN, "forbidden");
    }
    if let Some(s) = *st.fetch_status.lock().unwrap() {
        return error(s, "bad_request");
    }
    match st.payload.lock().unwrap().take() {
        Some(p) => Json(p).into_response(),
        None => error(StatusCode::FORBIDDEN, "forbidden"),
    }
}

async fn abandon(
    State(st): State<St>,
    Json(req): Json<agentlab_core::api::guest::BootstrapAbandonRequest>,
) -> Response {
    if req.token.expose() != BOOT_TOKEN {
        return error(StatusCode::FORBIDDEN, "forbidden");
    }
    st.recorded.lock().unwrap().abandons.push(req.reason);
    Json(serde_json::json!({})).into_response()
}

async fn status(State(st): State<St>, headers: HeaderMap, Json(r): Json<StatusReport>) -> Response {
    if !authorized(&st, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let mut rec = st.recorded.lock().unwrap();
    rec.events.push(format!(
        "status:{:?}:{}",
        r.state,
        r.step.clone().unwrap_or_default()
    ));
    rec.statuses.push(r);
    Json(serde_json::json!({})).into_response()
}

async fn logs(State(st): State<St>, headers: HeaderMap, Json(b): Json<LogBatch>) -> Response {
    if !authorized(&st, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    st.recorded.lock().unwrap().logs.extend(b.lines);
    Json(serde_json::json!({})).into_response()
}

async fn artifact(
    State(st): State<St>,
    AxPath((_job, name)): AxPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&st, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    st.recorded.lock().unwrap().upload_attempts += 1;
    {
        let mut n = st.fail_uploads.lock().unwrap();
        if *n > 0 {
            *n -= 1;
            return error(StatusCode::SERVICE_UNAVAILABLE, "upload_failed");
        }
    }
    let receipt = ArtifactReceipt {
        name: name.clone(),
        size: body.len() as u64,
        sha256: hex_sha(&body),
    };
    let mut rec = st.recorded.lock().unwrap();
    rec.events.push(format!("artifact:{name}"));
    rec.artifacts.insert(name, body.to_vec());
    Json(receipt).into_response()
}

fn hex_sha(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

impl Mock {
    /// Starts the controller on 127.0.0.1; `payload` is built from its base URL.
    pub async fn start(payload: impl FnOnce(&str) -> BootstrapPayload) -> Self {
        Self::start_on("127.0.0.1:0", payload).await
    }

    /// Like [`Mock::start`] on a given address (e.g. a port a runner already tried).
    pub async fn start_on(addr: &str, payload: impl FnOnce(&str) -> BootstrapPayload) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            recorded: Mutex::new(Recorded::default()),
            payload: Mutex::new(Some(payload(&url))),
            rate_limit_first: Mutex::new(0),
            fetch_status: Mutex::new(None),
            fail_uploads: Mutex::new(0),
        });
        let app = axum::Router::new()
            .route("/v1/bootstrap/fetch", post(fetch))
            .route("/v1/bootstrap/abandon", post(abandon))
            .route("/v1/jobs/{job}/status", post(status))
            .route("/v1/jobs/{job}/logs", post(logs))
            .route("/v1/jobs/{job}/artifacts/{name}", put(artifact))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, shared }
    }

    pub fn fail_fetch_with(&self, status: StatusCode) {
        *self.shared.fetch_status.lock().unwrap() = Some(status);
    }

    pub fn fail_uploads(&self, n: u32) {
        *self.shared.fail_uploads.lock().unwrap() = n;
    }

    pub fn rate_limit_first(&self, n: u32) {
        *self.shared.rate_limit_first.lock().unwrap() = n;
    }

    pub fn recorded<T>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        f(&self.shared.recorded.lock().unwrap())
    }

    /// The final status report (panics unless exactly one was sent, and it was last).
    pub fn final_report(&self) -> StatusReport {
        self.recorded(|r| {
            let finals: Vec<_> = r.statuses.iter().filter(|s| s.state.is_final()).collect();
            assert_eq!(finals.len(), 1, "final reports: {:?}", r.statuses);
            assert!(r.statuses.last().unwrap().state.is_final());
            finals[0].clone()
        })
    }

    /// All log lines joined with newlines.
    pub fn log_text(&self) -> String {
        self.recorded(|r| {
            r.logs
                .iter()
                .map(|l| l.line.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// Entries of the uploaded `artifacts.tar.gz`.
    pub fn bundle(&self) -> BTreeMap<String, Vec<u8>> {
        let bytes = self
            .recorded(|r| r.artifacts.get("artifacts.tar.gz").cloned())
            .expect("bundle uploaded");
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A test environment: temp dirs, an origin repository with one commit.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub origin: PathBuf,
}

impl Env {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir_all(&origin).unwrap();
        git(&origin, &["init", "-q"]);
        std::fs::write(origin.join("README.md"), "hello\n").unwrap();
        git(&origin, &["add", "README.md"]);
        git(&origin, &["commit", "-q", "-m", "initial"]);
        Self { tmp, origin }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn origin_url(&self) -> String {
        format!("file://{}", self.origin.display())
    }

    pub fn clone_path(&self) -> PathBuf {
        self.path("checkout")
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.path("secrets")
    }

    /// A payload for `command` with `secrets`, URLs under `base`.
    pub fn payload(
        &self,
        base: &str,
        command: &str,
        timeout_secs: u64,
        secrets: SecretBundle,
    ) -> BootstrapPayload {
        let job_id: JobId = "job-0123abcd".parse().unwrap();
        let jobs = format!("{base}/v1/jobs/{job_id}");
        BootstrapPayload {
            job: GuestJobSpec {
                job_id: job_id.clone(),
                repo: self.origin_url(),
                git_ref: None,
                task: "Add a line to README.md".to_owned(),
                agent: GuestAgent {
                    command: Some(command.to_owned()),
                    preset: None,
                },
                mode: "yolo".to_owned(),
                timeout_secs,
                clone_path: self.clone_path().display().to_string(),
                work_branch: format!("agentlab/{job_id}"),
                result: None,
            },
            secrets,
            runner_token: SecretValue::new(RUNNER_TOKEN),
            status_url: format!("{jobs}/status"),
            logs_url: format!("{jobs}/logs"),
            artifacts_url: format!("{jobs}/artifacts"),
            policy: GuestPolicy::default(),
            artifacts: GuestArtifactPolicy {
                upload: true,
                max_bytes: 10 * 1024 * 1024,
            },
        }
    }

    /// Writes the bootstrap file pointing at `url`.
    pub fn write_bootstrap(&self, url: &str) -> PathBuf {
        let p = self.path("bootstrap.json");
        let json = serde_json::json!({"controller_url": url, "token": BOOT_TOKEN, "vmid": VMID});
        std::fs::write(&p, json.to_string()).unwrap();
        p
    }

    /// Runs the real binary with test-friendly flags plus `extra`.
    pub async fn run_runner(&self, bootstrap: &Path, extra: &[&str]) -> Output {
        self.spawn_runner(bootstrap, extra)
            .wait_with_output()
            .await
            .unwrap()
    }

    /// Starts the real binary (stdout/stderr piped) with test-friendly flags plus `extra`.
    pub fn spawn_runner(&self, bootstrap: &Path, extra: &[&str]) -> tokio::process::Child {
        let home = self.path("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-runner"));
        if !extra.contains(&"--work-dir") {
            cmd.arg("--work-dir").arg(self.path("work"));
        }
        cmd.arg("--bootstrap")
            .arg(bootstrap)
            .arg("--secrets-dir")
            .arg(self.secrets_dir())
            .arg("--agent-home")
            .arg(&home)
            .arg("--channel-file")
            .arg(self.path("channel.json"))
            .args([
                "--bootstrap-wait-secs",
                "5",
                "--fetch-attempts",
                "3",
                "--backoff-initial-ms",
                "20",
            ])
            .args(["--backoff-max-ms", "200", "--kill-grace-secs", "1"])
            .args(extra)
            .env("GIT_AUTHOR_NAME", "Agent")
            .env("GIT_AUTHOR_EMAIL", "agent@example.invalid")
            .env("GIT_COMMITTER_NAME", "Agent")
            .env("GIT_COMMITTER_EMAIL", "agent@example.invalid")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Asserts the secrets directory exists and is empty.
    pub fn assert_secrets_wiped(&self) {
        let entries: Vec<_> = std::fs::read_dir(self.secrets_dir()).unwrap().collect();
        assert!(entries.is_empty(), "secrets dir not wiped: {entries:?}");
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
