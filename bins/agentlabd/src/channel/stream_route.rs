//! `POST /v1/sandboxes/{vmid}/stream` on the control socket: a client's exec, shell, copy
//! or forward, relayed frame by frame to a stream on the sandbox's channel.
//!
//! Before the `101`: 400 `invalid_vmid` / `upgrade_required`, 404 `sandbox_not_found`, 409
//! `sandbox_gone` (destroying or destroyed) or `agent_not_connected`. After it, everything
//! is a frame: the client's first frame is the request; a bad request, a failed open or a
//! guest-side failure comes back as [`Frame::Error`]. Each stream is a `stream_opened` and a
//! `stream_closed` event on the sandbox (who, what, exit code, duration, bytes — never the
//! data, and for an exec only the program name and the number of arguments).
//!
//! When the channel is not connected but the backend can run commands through the
//! hypervisor's guest agent, the upgrade is accepted anyway: an exec without a PTY then runs
//! through [`super::fallback`] (events carry `"via": "guest_agent"`), anything else gets an
//! `agent_not_connected: …` error frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use tokio_util::codec::Framed;

use agentlab_core::Vmid;
use agentlab_core::api::channel::{STREAM_PROTOCOL, StreamRequest};
use agentlab_core::api::frame::{Frame, FrameCodec};
use agentlab_core::engine::{ChannelRefusal, Lab, StreamRecord, StreamVia};

use crate::channel::guest_route::{switching, wants_upgrade};
use crate::channel::{ChannelHub, fallback};
use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiPath, vmid as parse_vmid};
use crate::socket::PeerCred;

/// How long the client has to send its request frame.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The handler.
pub async fn stream(
    State(st): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    mut req: Request,
) -> Response {
    match admit(&st, &raw, &mut req).await {
        Ok((vmid, on_upgrade)) => {
            let ext = req.extensions();
            let client = match (
                ext.get::<crate::control::auth::Caller>(),
                ext.get::<axum::extract::ConnectInfo<PeerCred>>(),
            ) {
                (Some(remote), _) => remote.to_string(),
                (None, Some(local)) => local.0.to_string(),
                (None, None) => "unknown client".to_owned(),
            };
            let lab = Arc::clone(&st.lab);
            let hub = Arc::clone(&st.channels);
            let copy_max = st.limits.config.copy_max_bytes;
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(up) => relay(lab, hub, vmid, TokioIo::new(up), client, copy_max).await,
                    Err(e) => tracing::warn!(sandbox = %vmid, error = %e, "stream upgrade failed"),
                }
            });
            switching(STREAM_PROTOCOL)
        }
        Err(e) => e.into_response(),
    }
}

async fn admit(
    st: &AppState,
    raw: &str,
    req: &mut Request,
) -> Result<(Vmid, hyper::upgrade::OnUpgrade), ApiError> {
    let vmid = parse_vmid(raw)?;
    if !wants_upgrade(req.headers(), STREAM_PROTOCOL) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "upgrade_required",
            "Expected Upgrade: agentlab-stream/1",
        ));
    }
    match st.lab.stream_target(vmid).await {
        Ok(_) => {}
        Err(ChannelRefusal::Gone) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "sandbox_gone",
                format!("Sandbox {vmid} is destroyed or being destroyed"),
            ));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "sandbox_not_found",
                format!("No sandbox {vmid}"),
            ));
        }
    }
    // Without a channel, an exec may still run through the hypervisor's guest agent
    // (fallback.rs): the request (known only after the upgrade) decides.
    if !st.channels.is_connected(vmid) && st.lab.deps().hypervisor.guest_exec().is_none() {
        return Err(not_connected(vmid));
    }
    req.extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .map(|u| (vmid, u))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "upgrade_required",
                "This connection cannot be upgraded",
            )
        })
}

fn not_connected(vmid: Vmid) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "agent_not_connected",
        format!(
            "Sandbox {vmid}'s guest agent is not connected (the sandbox is stopped, still booting, or its agent-runner is not running)"
        ),
    )
}

/// What an event may say about a request: the program and the argument count, a path or a
/// port — never argument values, which may hold secrets.
fn describe(r: &StreamRequest) -> (String, &'static str) {
    match r {
        StreamRequest::Exec(e) => {
            let prog = e.argv.first().map_or("", String::as_str);
            let prog = prog.rsplit('/').next().unwrap_or(prog);
            (
                format!("{prog} ({} arguments)", e.argv.len().saturating_sub(1)),
                e.user.as_str(),
            )
        }
        StreamRequest::CopyIn(c) => (c.path.clone(), c.user.as_str()),
        StreamRequest::CopyOut(c) => (c.path.clone(), c.user.as_str()),
        StreamRequest::Forward(f) => (format!("port {}", f.port), "-"),
    }
}

async fn relay<T>(
    lab: Arc<Lab>,
    hub: Arc<ChannelHub>,
    vmid: Vmid,
    io: T,
    client: String,
    copy_max: u64,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut client_io = Framed::new(io, FrameCodec);
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, client_io.next()).await {
        Ok(Some(Ok(Frame::Request(r)))) => r,
        Ok(Some(Ok(_))) => {
            let _ = client_io
                .send(Frame::Error("the first frame must be the request".into()))
                .await;
            return;
        }
        Ok(Some(Err(e))) => {
            let _ = client_io.send(Frame::Error(e.to_string())).await;
            return;
        }
        Ok(None) | Err(_) => return,
    };
    if let Err(e) = request.validate() {
        let _ = client_io
            .send(Frame::Error(format!("bad request: {e}")))
            .await;
        return;
    }
    let via = if hub.is_connected(vmid) {
        StreamVia::Channel
    } else if fallback::applies(&request) {
        StreamVia::GuestAgent
    } else {
        let e = not_connected(vmid);
        let _ = client_io
            .send(Frame::Error(format!("{}: {}", e.code, e.message)))
            .await;
        return;
    };
    let id = hub.next_stream_id();
    let kind = request.kind();
    let limit = matches!(
        request,
        StreamRequest::CopyIn(_) | StreamRequest::CopyOut(_)
    )
    .then_some(copy_max);
    let (what, user) = describe(&request);
    lab.record_stream_opened_via(vmid, id, kind, user, &what, &client, via)
        .await;
    let started = Instant::now();
    let mut record = StreamRecord {
        id,
        via,
        kind,
        exit_code: None,
        error: None,
        duration: Duration::ZERO,
        bytes_in: 0,
        bytes_out: 0,
    };
    if let (StreamVia::GuestAgent, StreamRequest::Exec(e)) = (via, &request) {
        fallback::run(&lab, vmid, e, &mut client_io, &mut record).await;
        record.duration = started.elapsed();
        lab.record_stream_closed(vmid, &record).await;
        return;
    }
    match hub.open(vmid).await {
        Err(e) => {
            record.error = Some(e.to_string());
            let _ = client_io.send(Frame::Error(e.to_string())).await;
        }
        Ok(guest) => {
            let mut guest_io = Framed::new(guest, FrameCodec);
            if let Err(e) = guest_io.send(Frame::Request(request)).await {
                record.error = Some(format!("sending the request: {e}"));
                let _ = client_io.send(Frame::Error(e.to_string())).await;
            } else {
                pump(client_io, guest_io, &mut record, limit).await;
            }
        }
    }
    record.duration = started.elapsed();
    lab.record_stream_closed(vmid, &record).await;
}

/// The error of a copy over `limits.copy_max_bytes`.
fn over_limit(max: u64) -> String {
    format!("the copy is larger than limits.copy_max_bytes ({max} bytes); stopped")
}

/// Relays frames both ways until the guest side ends. When the client goes away first,
/// the guest stream is closed (the guest then stops what runs) and given a moment to end.
/// `limit` caps the data bytes of a copy, either way.
async fn pump<C, G>(client: C, guest: G, record: &mut StreamRecord, limit: Option<u64>)
where
    C: futures::Stream<Item = Result<Frame, agentlab_core::api::frame::FrameError>>
        + futures::Sink<Frame, Error = agentlab_core::api::frame::FrameError>
        + Unpin,
    G: futures::Stream<Item = Result<Frame, agentlab_core::api::frame::FrameError>>
        + futures::Sink<Frame, Error = agentlab_core::api::frame::FrameError>
        + Unpin,
{
    let (mut c_tx, mut c_rx) = client.split();
    let (mut g_tx, mut g_rx) = guest.split();
    let bytes_in = std::sync::atomic::AtomicU64::new(0);
    let limit_hit = std::sync::atomic::AtomicBool::new(false);
    let up = async {
        while let Some(Ok(f)) = c_rx.next().await {
            if matches!(f, Frame::Request(_)) {
                break;
            }
            if let Frame::Stdin(b) | Frame::Data(b) = &f {
                let total = bytes_in
                    .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed)
                    + b.len() as u64;
                if limit.is_some_and(|max| total > max) {
                    limit_hit.store(true, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
            }
            if g_tx.send(f).await.is_err() {
                break;
            }
        }
        let _ = g_tx.close().await;
    };
    let down = async {
        let mut out = 0u64;
        let mut exit = None;
        let mut error = None;
        while let Some(f) = g_rx.next().await {
            let f = match f {
                Ok(f) => f,
                Err(e) => {
                    error = Some(format!("channel: {e}"));
                    let _ = c_tx.send(Frame::Error(format!("channel: {e}"))).await;
                    break;
                }
            };
            let f = match f {
                // The client's copy went over the limit: the guest's complaint about the cut
                // stream is replaced by the reason.
                Frame::Error(_) | Frame::Exit(_)
                    if limit_hit.load(std::sync::atomic::Ordering::Relaxed) =>
                {
                    Frame::Error(over_limit(limit.unwrap_or_default()))
                }
                f => f,
            };
            match &f {
                Frame::Stdout(b) | Frame::Stderr(b) | Frame::Data(b) => out += b.len() as u64,
                Frame::Exit(x) => exit = Some(x.code),
                Frame::Error(m) => error = Some(m.clone()),
                _ => {}
            }
            if let (Some(max), Frame::Data(_)) = (limit, &f)
                && out > max
            {
                error = Some(over_limit(max));
                let _ = c_tx.send(Frame::Error(over_limit(max))).await;
                break;
            }
            if c_tx.send(f).await.is_err() {
                error.get_or_insert_with(|| "the client went away".to_owned());
                break;
            }
        }
        if limit_hit.load(std::sync::atomic::Ordering::Relaxed) && error.is_none() {
            error = Some(over_limit(limit.unwrap_or_default()));
            let _ = c_tx
                .send(Frame::Error(over_limit(limit.unwrap_or_default())))
                .await;
        }
        let _ = c_tx.close().await;
        (out, exit, error)
    };
    tokio::pin!(up, down);
    let (out, exit, error) = tokio::select! {
        r = &mut down => r,
        () = &mut up => match tokio::time::timeout(Duration::from_secs(10), &mut down).await {
            Ok(r) => r,
            Err(_) => (0, None, Some("the guest did not end the stream after the client left".to_owned())),
        },
    };
    record.bytes_in = bytes_in.load(std::sync::atomic::Ordering::Relaxed);
    record.bytes_out = out;
    record.exit_code = exit;
    record.error = error;
}
