//! `GET /v1/channel` on the guest listener: a guest agent's channel upgrade.
//!
//! Checks, in order: the address's rate limit (429), the `Upgrade` token (400), the vmid
//! header (400), the bearer key (401 when missing), then the engine's key check (403
//! `forbidden` for every refusal, with the reason recorded on the sandbox). Then `101` and
//! the connection becomes the sandbox's yamux channel in [`ChannelHub::serve`].

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio_util::compat::TokioAsyncReadCompatExt as _;

use agentlab_core::Vmid;
use agentlab_core::api::channel::{CHANNEL_PROTOCOL, VMID_HEADER};

use crate::channel::ChannelHub;
use crate::guest::GuestState;
use crate::guest::conns::AbortHandle;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

/// Whether `headers` ask for the `protocol` upgrade.
pub fn wants_upgrade(headers: &HeaderMap, protocol: &str) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(protocol))
}

/// The `101` answer for `protocol`.
pub fn switching(protocol: &'static str) -> Response {
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    r.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static(protocol));
    r
}

/// The handler.
pub async fn channel(
    State(st): State<GuestState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let peer_ip = peer.ip().to_canonical();
    if let Err(wait) = st.limiter.check_address(peer_ip, Instant::now()) {
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many channel attempts from this address",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    if !wants_upgrade(req.headers(), CHANNEL_PROTOCOL) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "upgrade_required",
            "Expected Upgrade: agentlab-channel/1",
        );
    }
    let Some(vmid) = req
        .headers()
        .get(VMID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Vmid>().ok())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_vmid",
            "Missing or invalid x-agentlab-vmid header",
        );
    };
    let Some(key) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
    else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing channel key",
        );
    };
    if st
        .lab
        .check_channel_key(vmid, &key, Some(peer_ip))
        .await
        .is_err()
    {
        return refuse(StatusCode::FORBIDDEN, "forbidden", "Channel refused");
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "upgrade_required",
            "This connection cannot be upgraded",
        );
    };
    let abort = req.extensions_mut().remove::<AbortHandle>();
    let hub = std::sync::Arc::clone(&st.channels);
    let lab = std::sync::Arc::clone(&st.lab);
    let cancel = st.cancel.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(sandbox = %vmid, error = %e, "channel upgrade failed");
                return;
            }
        };
        tracing::info!(sandbox = %vmid, peer = %peer, "guest agent channel connected");
        lab.record_channel(vmid, true, &peer.to_string()).await;
        // The channel ends when the guest is gone, reconnected or the daemon stops: nothing
        // more is owed to it then, and a FIN to a destroyed sandbox would be retransmitted
        // for minutes. So its socket closes with a reset.
        if let Some(abort) = abort {
            abort.reset_on_close();
        }
        let why = serve(&hub, vmid, upgraded, cancel).await;
        tracing::info!(sandbox = %vmid, reason = %why, "guest agent channel ended");
        lab.record_channel(vmid, false, &why).await;
    });
    switching(CHANNEL_PROTOCOL)
}

async fn serve(
    hub: &ChannelHub,
    vmid: Vmid,
    upgraded: hyper::upgrade::Upgraded,
    cancel: tokio_util::sync::CancellationToken,
) -> String {
    hub.serve(vmid, TokioIo::new(upgraded).compat(), cancel)
        .await
}
