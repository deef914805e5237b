//! The client against a tiny HTTP server on a temporary Unix socket: typed bodies, the error
//! envelope, raw downloads, live NDJSON streams, timeouts and "daemon unreachable".

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use agentlab_core::api::control::StatusResponse;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use super::*;
use crate::stream::LineBuffer;

type Body = BoxBody<Bytes, Infallible>;
type Feed = Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>;

struct Daemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    feed: mpsc::Sender<Bytes>,
}

impl Daemon {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agentlabd.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let (feed, rx) = mpsc::channel(16);
        let rx: Feed = Arc::new(Mutex::new(Some(rx)));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| route(req, rx.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            _dir: dir,
            socket,
            feed,
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.socket, Duration::from_secs(5))
    }
}

fn reply(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn paged(body: &'static str, next: Option<&str>) -> Response<Body> {
    let mut resp = reply(200, body);
    if let Some(next) = next {
        resp.headers_mut().insert(
            NEXT_CURSOR,
            hyper::header::HeaderValue::from_str(next).unwrap(),
        );
    }
    resp
}

async fn route(req: Request<Incoming>, feed: Feed) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = body.collect().await.unwrap().to_bytes();
    let resp = match (parts.method.as_str(), target.as_str()) {
        ("GET", "/v1/status") => reply(
            200,
            r#"{"version":"0.1.0","backend":"fake","backend_healthy":true,"backend_detail":null,"sandboxes":{"READY":2},"jobs":{}}"#,
        ),
        ("POST", "/v1/echo") => {
            let got: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let text = String::from_utf8_lossy(&body).into_owned();
            reply(
                202,
                serde_json::json!({"json": got, "text": text, "content_type": content_type})
                    .to_string(),
            )
        }
        ("GET", "/v1/sandboxes/999") => reply(
            404,
            r#"{"error":{"code":"sandbox_not_found","message":"Sandbox 999 not found","details":{"vmid":999}}}"#,
        ),
        // Three pages of names; the cursor is the last name of the previous page.
        ("GET", "/v1/pages?x=1") => paged(r#"["a","b"]"#, Some("b")),
        ("GET", "/v1/pages?x=1&cursor=b") => paged(r#"["c","d"]"#, Some("d w")),
        ("GET", "/v1/pages?x=1&cursor=d+w") => paged(r#"["e"]"#, None),
        ("GET", "/v1/tail?tail=3") => paged(r#"["x"]"#, Some("7")),
        ("GET", "/v1/tail?after=7") => paged(r#"["y"]"#, None),
        ("GET", "/v1/plain-error") => reply(500, "boom"),
        ("GET", "/v1/empty-error") => reply(503, ""),
        ("GET", "/v1/bad-json") => reply(200, "not json"),
        ("DELETE", "/v1/workspaces/ws-1") => reply(204, ""),
        ("GET", "/v1/slow") => std::future::pending().await,
        ("GET", "/v1/jobs/job-1/artifacts/a%20b.txt") => Response::builder()
            .header("x-sha256", "abc123")
            .body(Full::new(Bytes::from_static(b"artifact bytes")).boxed())
            .unwrap(),
        ("GET", "/v1/jobs/job-1/events?follow=true") => {
            let rx = feed.lock().unwrap().take().unwrap();
            let frames = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            Response::builder()
                .header("content-type", "application/x-ndjson")
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        }
        _ => reply(404, format!("no route {target}")),
    };
    Ok(resp)
}

fn event_json(id: i64, message: &str) -> String {
    serde_json::json!({
        "id": id, "ts": "2026-11-27T04:00:00Z", "kind": "job_log", "sandbox": 101,
        "job": "job-1", "message": message, "payload": null
    })
    .to_string()
}

#[tokio::test]
async fn get_decodes_typed_bodies() {
    let d = Daemon::start().await;
    let s: StatusResponse = d.client().get("/v1/status").await.unwrap();
    assert_eq!(s.backend, "fake");
    assert_eq!(s.sandboxes.get("READY"), Some(&2));
}

#[tokio::test]
async fn post_sends_json_and_text_bodies() {
    let d = Daemon::start().await;
    let body = serde_json::json!({"profile": "dev"});
    let got: serde_json::Value = d.client().post("/v1/echo", &body).await.unwrap();
    assert_eq!(got["json"]["profile"], "dev");
    assert_eq!(got["content_type"], "application/json");
    let got: serde_json::Value = d
        .client()
        .post_text("/v1/echo", "name: dev\n".to_owned())
        .await
        .unwrap();
    assert_eq!(got["text"], "name: dev\n");
    assert_eq!(got["content_type"], "application/yaml");
    d.client()
        .delete_no_content("/v1/workspaces/ws-1")
        .await
        .unwrap();
}

#[tokio::test]
async fn error_envelope_becomes_api_error() {
    let d = Daemon::start().await;
    let err = d
        .client()
        .get::<serde_json::Value>("/v1/sandboxes/999")
        .await
        .unwrap_err();
    let ClientError::Api(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.status, 404);
    assert_eq!(api.code, "sandbox_not_found");
    assert_eq!(api.details["vmid"], 999);
    assert_eq!(err.to_string(), "Sandbox 999 not found (sandbox_not_found)");
}

#[tokio::test]
async fn non_envelope_errors_and_bad_json_are_reported() {
    let d = Daemon::start().await;
    let err = d
        .client()
        .get::<serde_json::Value>("/v1/plain-error")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "boom (http_500)");
    let err = d
        .client()
        .get::<serde_json::Value>("/v1/empty-error")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "HTTP 503 Service Unavailable (http_503)");
    let err = d
        .client()
        .get::<serde_json::Value>("/v1/bad-json")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("/v1/bad-json"), "{err}");
}

#[tokio::test]
async fn download_exposes_headers_and_chunks() {
    let d = Daemon::start().await;
    let path = format!("/v1/jobs/job-1/artifacts/{}", seg("a b.txt"));
    let mut dl = d.client().download(&path).await.unwrap();
    assert_eq!(dl.header("x-sha256"), Some("abc123"));
    let mut data = Vec::new();
    while let Some(chunk) = dl.next_chunk().await.unwrap() {
        data.extend_from_slice(&chunk);
    }
    assert_eq!(data, b"artifact bytes");
}

#[tokio::test]
async fn ndjson_stream_yields_events_live_and_skips_keepalives() {
    let d = Daemon::start().await;
    let mut stream = d
        .client()
        .stream_lines("/v1/jobs/job-1/events?follow=true")
        .await
        .unwrap();
    let first = event_json(1, "héllo");
    let (a, b) = first.as_bytes().split_at(first.find('é').unwrap() + 1);
    d.feed.send(Bytes::copy_from_slice(a)).await.unwrap();
    d.feed
        .send(Bytes::from([b, b"\n{}\n\n"].concat()))
        .await
        .unwrap();
    let e: agentlab_core::Event = stream.next_json().await.unwrap().unwrap();
    assert_eq!(
        (e.id, e.message.as_str()),
        (1, "héllo"),
        "a split UTF-8 character survives"
    );
    // The second event is sent only after the first was received: the stream is live.
    d.feed
        .send(Bytes::from(format!("{}\r\n", event_json(2, "two"))))
        .await
        .unwrap();
    let e: agentlab_core::Event = stream.next_json().await.unwrap().unwrap();
    assert_eq!(e.message, "two");
    d.feed
        .send(Bytes::from_static(
            b"{\"error\":{\"code\":\"internal\",\"message\":\"store failed\"}}\n",
        ))
        .await
        .unwrap();
    let err = stream
        .next_json::<agentlab_core::Event>()
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "store failed (internal)");
    drop(d.feed);
    assert!(
        stream
            .next_json::<agentlab_core::Event>()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn slow_daemon_times_out() {
    let d = Daemon::start().await;
    let client = Client::new(&d.socket, Duration::from_millis(200));
    let err = client
        .get::<serde_json::Value>("/v1/slow")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("--timeout"), "{err}");
}

#[tokio::test]
async fn missing_socket_is_unreachable_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nope.sock");
    let err = Client::new(&socket, Duration::from_secs(5))
        .get::<serde_json::Value>("/healthz")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&socket.display().to_string()), "{msg}");
    assert!(msg.contains("no socket file"), "{msg}");
    assert!(msg.contains("sudo systemctl start agentlabd"), "{msg}");
    assert!(
        msg.contains("agentlabd --config /etc/agentlab/config.yaml"),
        "{msg}"
    );
}

#[tokio::test]
async fn stale_socket_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let err = Client::new(&socket, Duration::from_secs(5))
        .get::<serde_json::Value>("/healthz")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing is listening"), "{err}");
}

#[test]
fn line_buffer_splits_lines() {
    let mut b = LineBuffer::default();
    b.push(b"one\r\ntw");
    assert_eq!(b.pop_line().as_deref(), Some("one"));
    assert_eq!(b.pop_line(), None);
    b.push(b"o\n\nthree");
    assert_eq!(b.pop_line().as_deref(), Some("two"));
    assert_eq!(b.pop_line().as_deref(), Some(""));
    assert_eq!(b.pop_line(), None);
    assert_eq!(b.take_rest().as_deref(), Some("three"));
    assert_eq!(b.take_rest(), None);
}

#[test]
fn query_and_segment_encoding() {
    assert_eq!(
        with_query("/v1/jobs", &[("state", None), ("limit", None)]),
        "/v1/jobs"
    );
    assert_eq!(
        with_query(
            "/v1/sandboxes",
            &[
                ("state", Some("READY,RUNNING".into())),
                ("all", Some("true".into()))
            ]
        ),
        "/v1/sandboxes?state=READY%2CRUNNING&all=true"
    );
    assert_eq!(seg("my ws/1"), "my%20ws%2F1");
    assert_eq!(seg("ws-1_a.b~"), "ws-1_a.b~");
}

#[test]
fn decode_error_falls_back_for_foreign_bodies() {
    let e = decode_error(
        409,
        br#"{"error":{"code":"invalid_state","message":"Sandbox 101 is DESTROYED"}}"#,
    );
    assert_eq!((e.status, e.code.as_str()), (409, "invalid_state"));
    assert_eq!(e.details, serde_json::Value::Null);
    let e = decode_error(404, b"");
    assert_eq!(e.to_string(), "HTTP 404 Not Found (http_404)");
}

#[tokio::test]
async fn get_all_follows_next_cursors_to_the_last_page() {
    let d = Daemon::start().await;
    let c = d.client();
    let all: Vec<String> = c.get_all("/v1/pages?x=1", "cursor", None).await.unwrap();
    assert_eq!(all, ["a", "b", "c", "d", "e"]);
    let some: Vec<String> = c.get_all("/v1/pages?x=1", "cursor", Some(3)).await.unwrap();
    assert_eq!(some, ["a", "b", "c"], "stops once `max` items are read");
    let tail: Vec<String> = c
        .get_pages("/v1/tail?tail=3", "/v1/tail", "after", None)
        .await
        .unwrap();
    assert_eq!(
        tail,
        ["x", "y"],
        "later pages continue from the cursor alone"
    );
}

/// A socket that exists but may not be opened names its group and how to join it, and does
/// not advise starting a daemon that is already running.
#[test]
fn permission_denied_names_the_sockets_group_not_a_start_hint() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agentlabd.sock");
    std::fs::write(&sock, b"").unwrap();
    let gid = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&sock).unwrap());
    let group = group_name(gid).unwrap_or_else(|| gid.to_string());
    let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let err = ClientError::Unreachable {
        target: sock.display().to_string(),
        reason: unreachable_reason(&e, &sock),
    };
    let msg = err.to_string();
    assert!(msg.contains(&format!("group {group}")), "{msg}");
    assert!(msg.contains(&format!("usermod -aG {group}")), "{msg}");
    assert!(!msg.contains("systemctl start"), "{msg}");
    // Nothing there at all: the start hint stays.
    let e = std::io::Error::from(std::io::ErrorKind::NotFound);
    let err = ClientError::Unreachable {
        target: sock.display().to_string(),
        reason: unreachable_reason(&e, &sock),
    };
    assert!(err.to_string().contains("systemctl start agentlabd"));
}

#[test]
fn remote_errors_name_the_endpoint_and_its_hint() {
    let err = ClientError::Unreachable {
        target: "https://h:8845".into(),
        reason: "connection refused".into(),
    };
    let msg = err.to_string();
    assert!(
        msg.contains("remote.listen") && !msg.contains("systemctl"),
        "{msg}"
    );
    let opts = crate::RemoteOptions {
        url: "https://h".into(),
        token: Some("two words".into()),
        trust: crate::Trust::FirstUse("/nonexistent/known".into()),
    };
    assert!(matches!(
        Client::remote(&opts, Duration::from_secs(1)),
        Err(ClientError::Config(_))
    ));
    let opts = crate::RemoteOptions {
        token: Some("alab_0123456789ab_secret".into()),
        ..opts
    };
    let c = Client::remote(&opts, Duration::from_secs(1)).unwrap();
    assert_eq!(c.target(), "https://h:8845");
    assert!(c.socket().is_none());
    assert!(
        !format!("{c:?}{opts:?}").contains("secret"),
        "no token in Debug"
    );
}
