//! A smart-HTTP git server for tests: `git http-backend` behind HTTP Basic auth.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;

#[derive(Debug, Default)]
pub struct Seen {
    pub authorized: u32,
    pub challenged: u32,
}

struct Shared {
    root: PathBuf,
    expected: String,
    /// Credentials a push (`git-receive-pack`) needs.
    expected_push: String,
}

/// Serves the repositories under `root`; returns the base URL and the request counters.
pub async fn serve(root: PathBuf, user: &str, token: &str) -> (String, Arc<Mutex<Seen>>) {
    serve_split(root, user, token, token).await
}

/// Like [`serve`], but pushes need `push_token` while fetches and clones take `token`.
pub async fn serve_split(
    root: PathBuf,
    user: &str,
    token: &str,
    push_token: &str,
) -> (String, Arc<Mutex<Seen>>) {
    let basic = |t: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{t}"))
        )
    };
    let shared = Arc::new(Shared {
        root,
        expected: basic(token),
        expected_push: basic(push_token),
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen_out = seen.clone();
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::any(handle))
        .with_state((shared, seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen_out)
}

async fn handle(
    State((shared, seen)): State<(Arc<Shared>, Arc<Mutex<Seen>>)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let push = uri.path().ends_with("/git-receive-pack")
        || uri
            .query()
            .is_some_and(|q| q.contains("service=git-receive-pack"));
    let expected = if push {
        &shared.expected_push
    } else {
        &shared.expected
    };
    if auth != Some(expected.as_str()) {
        seen.lock().unwrap().challenged += 1;
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"git\"")
            .body(Body::empty())
            .unwrap();
    }
    seen.lock().unwrap().authorized += 1;
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "bob")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in &headers {
        let key = format!("HTTP_{}", name.as_str().to_uppercase().replace('-', "_"));
        cmd.env(key, value.to_str().unwrap_or(""));
    }
    if let Some(ct) = headers.get("content-type") {
        cmd.env("CONTENT_TYPE", ct.to_str().unwrap_or(""));
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&body).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let split = split.or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head_len, sep) = split.expect("CGI headers");
    let head = String::from_utf8_lossy(&raw[..head_len]).into_owned();
    let mut resp = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code: u16 = v.split_whitespace().next().unwrap().parse().unwrap();
            resp = resp.status(code);
        } else {
            resp = resp.header(k.trim(), v);
        }
    }
    resp.body(Body::from(raw[head_len + sep..].to_vec()))
        .unwrap()
}
