//! Control API request rate: the release `agentlabd` on the fake backend (see `mem.rs`),
//! seeded through its control socket with sandboxes, jobs and workspaces, then every read
//! route driven by an open-loop load: `AGENTLAB_PERF_API_RATE` requests per second (default
//! 1000) for `AGENTLAB_PERF_API_SECS` seconds (default 3) over `CONNECTIONS` keep-alive
//! HTTP/1.1 connections (hyper's client) on the Unix socket. Request `i` is due at
//! `start + i / rate`; its latency runs from that due time to the end of its response body,
//! so a request that waits behind a slow one (on its connection or in the daemon) counts its
//! wait: no coordinated omission. Only the load generator's own lateness is left out: when
//! its timer (1 ms granularity) wakes after the due time while the connection was idle, the
//! request is timed from the wake-up. The reference is `GET /healthz` under the same load
//! (the socket, HTTP and the machine).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::time::Instant;

use crate::mem;
use crate::{Row, env_usize, p50_p99};

/// Keep-alive connections the load is spread over.
const CONNECTIONS: usize = 8;
/// Sandboxes, jobs and workspaces created before the load.
const SANDBOXES: usize = 20;
const JOBS: usize = 40;
const WORKSPACES: usize = 5;

/// What one route's load gave.
struct Load {
    /// Latency of each answered request from its due time.
    latencies: Vec<Duration>,
    /// Requests answered with a status other than 200, or not answered.
    errors: usize,
    /// Answered requests per second, from the first answer to the last.
    rate: f64,
}

pub async fn run() -> Vec<Row> {
    let Some(bin) = mem::binary() else {
        eprintln!("perf: no agentlabd release binary (AGENTLABD_BIN); control API rows skipped");
        return vec![Row::new(
            "control API: skipped (no agentlabd binary)",
            0.0,
            "req/s",
        )];
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let (daemon, socket, routes) = tokio::task::spawn_blocking(move || {
        let (daemon, socket) = mem::start(&bin, &d);
        let routes = seed(&socket);
        (daemon, socket, routes)
    })
    .await
    .expect("seed");
    let rate = env_usize("AGENTLAB_PERF_API_RATE", 1000) as f64;
    let secs = env_usize("AGENTLAB_PERF_API_SECS", 3) as f64;
    let mut healthz = load(&socket, "/healthz", rate, secs).await;
    let (h50, h99) = p50_p99(&mut healthz.latencies);
    let mut rows = Vec::new();
    for (label, path) in routes {
        let mut l = load(&socket, &path, rate, secs).await;
        if l.errors > 0 {
            eprintln!("perf: GET {path}: {} requests failed", l.errors);
        }
        let (p50, p99) = p50_p99(&mut l.latencies);
        let name = format!("API GET {label}");
        rows.push(Row::new(format!("{name} rate"), l.rate, "req/s").target(">= 1000/s"));
        rows.push(Row::new(format!("{name} p50"), p50, "ms").vs(h50));
        rows.push(
            Row::new(format!("{name} p99"), p99, "ms")
                .vs(h99)
                .target("< 5 ms"),
        );
    }
    rows.push(Row::new("API GET /healthz p99 (the reference)", h99, "ms"));
    drop(daemon);
    rows
}

/// Creates the records through the control API and returns the read routes to load (the
/// route's name, and the path with ids filled in).
fn seed(socket: &Path) -> Vec<(&'static str, String)> {
    let post = |path: &str, body: &str| {
        let r = mem::request_full(socket, "POST", path, body);
        let status = r.lines().next().unwrap_or_default().to_owned();
        assert!(
            status.contains(" 201") || status.contains(" 202"),
            "POST {path}: {status}"
        );
        let json = r.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str::<serde_json::Value>(json).expect("JSON answer")
    };
    let mut vmid = 0;
    for _ in 0..SANDBOXES {
        let sb = post(
            "/v1/sandboxes",
            r#"{"profile":"yolo-ephemeral","keepalive":true,"ttl_minutes":600}"#,
        );
        vmid = sb["vmid"].as_u64().expect("vmid");
    }
    mem::settle(socket, SANDBOXES);
    let mut job = String::new();
    for i in 0..JOBS {
        let j = post(
            "/v1/jobs",
            &format!(
                r#"{{"repo":"https://example.invalid/r{i}.git","task":"task {i}","profile":"yolo-ephemeral","ttl_minutes":600}}"#
            ),
        );
        job = j["id"].as_str().expect("job id").to_owned();
    }
    let mut ws = String::new();
    for i in 0..WORKSPACES {
        let w = post(
            "/v1/workspaces",
            &format!(r#"{{"name":"ws{i}","size_gb":5}}"#),
        );
        ws = w["id"].as_str().expect("workspace id").to_owned();
    }
    // Let the jobs' provisioning settle a little (it keeps writing while they run).
    std::thread::sleep(Duration::from_secs(2));
    let route = |label: &'static str| {
        let path = label
            .replace("{id}", &job)
            .replace("{vmid}", &vmid.to_string())
            .replace("{ws}", &ws)
            .replace("{name}", "yolo-ephemeral");
        (label, path)
    };
    [
        "/v1/status",
        "/v1/jobs?limit=20",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/events?tail=100",
        "/v1/jobs/{id}/artifacts",
        "/v1/sandboxes",
        "/v1/sandboxes/{vmid}",
        "/v1/sandboxes/{vmid}/events?tail=100",
        "/v1/profiles",
        "/v1/profiles/{name}",
        "/v1/workspaces",
        "/v1/workspaces/{ws}",
        "/v1/openapi.json",
    ]
    .into_iter()
    .map(route)
    .collect()
}

/// Drives `GET path` at `rate` per second for `secs` seconds, open loop.
async fn load(socket: &PathBuf, path: &str, rate: f64, secs: f64) -> Load {
    let total = (rate * secs) as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut senders = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let stream = UnixStream::connect(socket).await.expect("connect");
        let (sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        senders.push(sender);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let mut set = tokio::task::JoinSet::new();
    for (c, mut sender) in senders.into_iter().enumerate() {
        let path = path.to_owned();
        set.spawn(async move {
            let mut latencies = Vec::with_capacity(total / CONNECTIONS + 1);
            let mut errors = 0;
            let mut first = None;
            let mut last = start;
            for i in (c..total).step_by(CONNECTIONS) {
                let due = start + period.mul_f64(i as f64);
                tokio::time::sleep_until(due).await;
                // An ideal client sends at `due`, or when this connection's previous answer
                // arrived if that was later (that wait is the daemon's: it counts). Sending
                // later than that is this client's timer (tokio's is 1 ms coarse): not counted.
                let slop = Instant::now().saturating_duration_since(due.max(last));
                let ok = async {
                    sender.ready().await.ok()?;
                    let req = Request::get(path.as_str())
                        .header("host", "agentlabd")
                        .body(Empty::<Bytes>::new())
                        .ok()?;
                    let resp = sender.send_request(req).await.ok()?;
                    let status = resp.status();
                    resp.into_body().collect().await.ok()?;
                    (status == 200).then_some(())
                }
                .await;
                last = Instant::now();
                first.get_or_insert(last);
                match ok {
                    Some(()) => latencies.push((last - due).saturating_sub(slop)),
                    None => errors += 1,
                }
            }
            (latencies, errors, first, last)
        });
    }
    let mut out = Load {
        latencies: Vec::with_capacity(total),
        errors: 0,
        rate: 0.0,
    };
    let (mut first, mut last) = (None::<Instant>, start);
    while let Some(r) = set.join_next().await {
        let (l, e, f, t) = r.expect("load task");
        out.latencies.extend(l);
        out.errors += e;
        first = match (first, f) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = last.max(t);
    }
    // n answers span n - 1 intervals from the first answer to the last.
    let span = first.map_or(Duration::ZERO, |f| last - f);
    out.rate = (out.latencies.len().saturating_sub(1)) as f64 / span.as_secs_f64().max(1e-9);
    out
}
