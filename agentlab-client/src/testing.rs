//! A canned agentlabd for tests of the client's callers (feature `testing`): answers
//! `METHOD path?query` with fixed responses on a temporary Unix socket and records every
//! request line; optionally it accepts stream upgrades and hands each stream to a fake guest
//! ([`GuestFn`]). Test support only: it panics when it cannot set itself up.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentlab_core::api::channel::{STREAM_PROTOCOL, StreamRequest};
use agentlab_core::api::frame::{Frame, FrameCodec};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio_util::codec::Framed;

use crate::client::Client;

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// Response body.
    pub body: Bytes,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value)
            .expect("serializable reply")
            .into();
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body,
        }
    }

    /// A raw 200 answer with headers.
    pub fn raw(body: impl Into<Bytes>, headers: Vec<(&'static str, String)>) -> Self {
        Self {
            status: 200,
            headers,
            body: body.into(),
        }
    }
}

/// The fake guest's side of a stream (its first frame, the request, already read).
pub type GuestStream = Framed<TokioIo<hyper::upgrade::Upgraded>, FrameCodec>;

/// A fake guest: called with each stream's request and the stream, for every stream upgrade
/// without a canned route (it answers `Ready` or `Error` itself).
pub type GuestFn = Arc<dyn Fn(StreamRequest, GuestStream) -> BoxFuture<'static, ()> + Send + Sync>;

/// The running server; dropping it removes the socket directory.
#[derive(Debug)]
pub struct Canned {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    /// `METHOD path?query` of every request received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Canned {
    /// Serves `routes` (key `METHOD path?query`); anything else gets a 404 envelope.
    pub async fn start(routes: Vec<(&str, Reply)>) -> Self {
        Self::with_guest(routes, None).await
    }

    /// Like [`Canned::start`], with `guest` answering stream upgrades that have no route.
    pub async fn with_guest(routes: Vec<(&str, Reply)>, guest: Option<GuestFn>) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("agentlabd.sock");
        let listener = UnixListener::bind(&socket).expect("bind the canned socket");
        let routes: Arc<HashMap<String, Reply>> =
            Arc::new(routes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (routes, seen, guest) = (routes.clone(), seen.clone(), guest.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        answer(req, routes.clone(), seen.clone(), guest.clone())
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            _dir: dir,
            socket,
            requests,
        }
    }

    /// A client for this server (5 s timeout).
    pub fn client(&self) -> Client {
        Client::new(&self.socket, Duration::from_secs(5))
    }

    /// The request lines received so far.
    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().expect("request log").clone()
    }
}

async fn answer(
    mut req: Request<Incoming>,
    routes: Arc<HashMap<String, Reply>>,
    seen: Arc<Mutex<Vec<String>>>,
    guest: Option<GuestFn>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let key = format!("{} {target}", req.method());
    let upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes() == STREAM_PROTOCOL.as_bytes());
    if let Some(guest) = guest.filter(|_| upgrade && !routes.contains_key(&key)) {
        seen.lock().expect("request log").push(key);
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut framed = Framed::new(TokioIo::new(upgraded), FrameCodec);
            if let Some(Ok(Frame::Request(r))) = framed.next().await {
                guest(r, framed).await;
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header(hyper::header::CONNECTION, "upgrade")
            .header(hyper::header::UPGRADE, STREAM_PROTOCOL)
            .body(Full::new(Bytes::new()))
            .expect("valid upgrade response"));
    }
    let _ = req.into_body().collect().await;
    seen.lock().expect("request log").push(key.clone());
    let reply = routes.get(&key).cloned().unwrap_or_else(|| {
        let err = serde_json::json!({"error": {"code": "no_route", "message": format!("no route {key}")}});
        Reply::json(404, &err)
    });
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v);
    }
    Ok(resp
        .body(Full::new(reply.body))
        .expect("valid canned response"))
}

/// Record fixtures for command tests.
pub mod fixtures {
    use agentlab_core::{
        Event, EventKind, Job, JobState, Lease, Sandbox, SandboxState, Timestamp, Vmid,
    };
    use chrono::TimeZone;

    /// A fixed instant plus `secs`.
    pub fn ts(secs: i64) -> Timestamp {
        chrono::Utc
            .timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid timestamp")
    }

    /// Sandbox 101 in `state`.
    pub fn sandbox(state: SandboxState, last_error: Option<&str>) -> Sandbox {
        Sandbox {
            vmid: Vmid::new(101).expect("valid vmid"),
            name: "agentlab-101".into(),
            profile: "dev".into(),
            state,
            node: None,
            ip: None,
            mac: None,
            iface: None,
            vm_created: true,
            job: None,
            workspace: None,
            lease: Lease {
                expires_at: ts(3600),
                keepalive: false,
                renewable: false,
                ttl_minutes: 60,
            },
            last_error: last_error.map(str::to_owned),
            created_at: ts(0),
            updated_at: ts(0),
        }
    }

    /// Job `job-1` in `state`.
    pub fn job(state: JobState) -> Job {
        Job {
            id: "job-1".parse().expect("valid job id"),
            repo: "file:///srv/repo.git".into(),
            git_ref: None,
            task: "fix it".into(),
            profile: "dev".into(),
            agent: None,
            state,
            sandbox: Some(Vmid::new(101).expect("valid vmid")),
            keepalive: false,
            ttl_minutes: 60,
            workspace: None,
            deadline: None,
            runner_token_hash: None,
            step: None,
            outcome: None,
            created_at: ts(0),
            updated_at: ts(0),
            ended_at: None,
            result: None,
            pushed: None,
        }
    }

    /// An event of sandbox 101 / job-1 as one NDJSON line.
    pub fn event_line(id: i64, kind: EventKind, message: &str) -> String {
        let e = Event {
            id,
            ts: ts(id),
            kind,
            sandbox: Some(Vmid::new(101).expect("valid vmid")),
            job: Some("job-1".parse().expect("valid job id")),
            message: message.into(),
            payload: serde_json::Value::Null,
        };
        format!(
            "{}\n",
            serde_json::to_string(&e).expect("serializable event")
        )
    }
}
