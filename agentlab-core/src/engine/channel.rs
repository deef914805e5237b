//! The engine's side of the sandbox channel ([`crate::api::channel`]): checking a guest
//! agent's channel key, and recording channel and stream events. The connections themselves
//! live in the daemon (or an embedder's listener); the engine only decides and records.

use std::net::IpAddr;
use std::time::Duration;

use crate::event::{EventKind, NewEvent};
use crate::ids::Vmid;
use crate::model::Sandbox;
use crate::state::SandboxState;

use super::Lab;

/// Why a channel upgrade was refused. The guest sees only "forbidden"; the reason is an
/// event on the sandbox (when it exists) and a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelRefusal {
    /// This daemon offers no channel (no channel secret configured).
    #[error("the daemon offers no sandbox channel")]
    Disabled,
    /// No such sandbox.
    #[error("unknown sandbox")]
    Unknown,
    /// The sandbox is being destroyed or is destroyed.
    #[error("the sandbox is gone")]
    Gone,
    /// The key is not this sandbox's.
    #[error("wrong channel key")]
    WrongKey,
    /// The connection does not come from the sandbox's address.
    #[error("wrong source address")]
    WrongAddress,
}

impl ChannelRefusal {
    /// `disabled`, `unknown`, `gone`, `wrong_key` or `wrong_address`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Unknown => "unknown",
            Self::Gone => "gone",
            Self::WrongKey => "wrong_key",
            Self::WrongAddress => "wrong_address",
        }
    }
}

/// Which way a stream reaches into the sandbox (the `via` of its events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamVia {
    /// The sandbox's channel to its guest agent (`agent-runner`).
    #[default]
    Channel,
    /// The hypervisor's guest agent (an exec fallback when the channel is not connected).
    GuestAgent,
}

impl StreamVia {
    /// `channel` or `guest_agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::GuestAgent => "guest_agent",
        }
    }
}

/// What the daemon records when a stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Stream id (unique per daemon run).
    pub id: u64,
    /// Which way it went.
    pub via: StreamVia,
    /// `exec`, `shell`, `copy_in`, `copy_out` or `forward`.
    pub kind: &'static str,
    /// Exit code of an exec or shell.
    pub exit_code: Option<i32>,
    /// Why it failed, if it did (never data).
    pub error: Option<String>,
    /// How long it lasted.
    pub duration: Duration,
    /// Bytes sent into the sandbox.
    pub bytes_in: u64,
    /// Bytes received from the sandbox.
    pub bytes_out: u64,
}

/// Whether a sandbox in `state` accepts channel streams and connections.
pub(crate) fn reachable(state: SandboxState) -> bool {
    !matches!(
        state,
        SandboxState::Destroying | SandboxState::Destroyed | SandboxState::Requested
    )
}

impl Lab {
    /// Checks a guest agent's channel upgrade: the sandbox exists and is not being destroyed,
    /// `key` is its channel key, and (where bootstrap fetches are bound to the sandbox's
    /// address) `peer` is its address. A refusal of a known sandbox is a `channel_refused`
    /// event.
    pub async fn check_channel_key(
        &self,
        vmid: Vmid,
        key: &str,
        peer: Option<IpAddr>,
    ) -> Result<Sandbox, ChannelRefusal> {
        let Some(secret) = self.settings.channel_secret.as_ref() else {
            return Err(ChannelRefusal::Disabled);
        };
        let Ok(sb) = self.deps.store.get_sandbox(vmid).await else {
            tracing::warn!(sandbox = %vmid, peer = ?peer, "channel for an unknown sandbox refused");
            return Err(ChannelRefusal::Unknown);
        };
        let refusal = if !reachable(sb.state) {
            Some(ChannelRefusal::Gone)
        } else if !secret.verify(vmid, &sb.created_at, key) {
            Some(ChannelRefusal::WrongKey)
        } else if let (true, Some(peer), Some(ip)) =
            (self.settings.bind_bootstrap_address, peer, sb.ip)
            && peer.to_canonical() != ip
        {
            Some(ChannelRefusal::WrongAddress)
        } else {
            None
        };
        if let Some(r) = refusal {
            tracing::warn!(sandbox = %vmid, reason = r.reason(), peer = ?peer, "channel refused");
            self.event(
                NewEvent::new(
                    self.now(),
                    EventKind::ChannelRefused,
                    format!("channel refused ({})", r.reason()),
                )
                .sandbox(vmid)
                .payload(serde_json::json!({"reason": r.reason(), "peer": peer})),
            )
            .await;
            return Err(r);
        }
        Ok(sb)
    }

    /// The sandbox `vmid` if a client may open streams into it now (else why not).
    pub async fn stream_target(&self, vmid: Vmid) -> Result<Sandbox, ChannelRefusal> {
        let sb = self
            .deps
            .store
            .get_sandbox(vmid)
            .await
            .map_err(|_| ChannelRefusal::Unknown)?;
        if reachable(sb.state) {
            Ok(sb)
        } else {
            Err(ChannelRefusal::Gone)
        }
    }

    /// Records that `vmid`'s channel connected (`peer`) or ended (`reason`).
    pub async fn record_channel(&self, vmid: Vmid, connected: bool, detail: &str) {
        let (kind, message, payload) = if connected {
            (
                EventKind::ChannelConnected,
                "guest agent channel connected".to_owned(),
                serde_json::json!({"peer": detail}),
            )
        } else {
            (
                EventKind::ChannelDisconnected,
                format!("guest agent channel ended: {detail}"),
                serde_json::json!({"reason": detail}),
            )
        };
        self.event(
            NewEvent::new(self.now(), kind, message)
                .sandbox(vmid)
                .payload(payload),
        )
        .await;
    }

    /// Records the start of a stream: `what` is the program, path or port (already
    /// redacted by the caller), `client` who asked (e.g. `uid 1000`).
    pub async fn record_stream_opened(
        &self,
        vmid: Vmid,
        id: u64,
        kind: &'static str,
        user: &str,
        what: &str,
        client: &str,
    ) {
        self.record_stream_opened_via(vmid, id, kind, user, what, client, StreamVia::Channel)
            .await;
    }

    /// [`Lab::record_stream_opened`] for a stream that goes `via` another way than the
    /// channel (the payload's `via`; the message says so).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_stream_opened_via(
        &self,
        vmid: Vmid,
        id: u64,
        kind: &'static str,
        user: &str,
        what: &str,
        client: &str,
        via: StreamVia,
    ) {
        self.activity.stream_opened(vmid, self.now());
        let through = match via {
            StreamVia::Channel => "",
            StreamVia::GuestAgent => " (through the hypervisor's guest agent)",
        };
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::StreamOpened,
                format!("{kind} #{id} opened by {client} as {user}: {what}{through}"),
            )
            .sandbox(vmid)
            .payload(serde_json::json!({
                "id": id, "kind": kind, "user": user, "what": what, "client": client,
                "via": via.as_str(),
            })),
        )
        .await;
    }

    /// Records the end of a stream.
    pub async fn record_stream_closed(&self, vmid: Vmid, r: &StreamRecord) {
        self.activity.stream_closed(vmid, self.now());
        let outcome = match (&r.error, r.exit_code) {
            (Some(e), _) => format!("failed: {e}"),
            (None, Some(c)) => format!("exit code {c}"),
            (None, None) => "closed".to_owned(),
        };
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::StreamClosed,
                format!(
                    "{} #{} {outcome} after {} ms ({} bytes in, {} bytes out)",
                    r.kind,
                    r.id,
                    r.duration.as_millis(),
                    r.bytes_in,
                    r.bytes_out
                ),
            )
            .sandbox(vmid)
            .payload(serde_json::json!({
                "id": r.id, "kind": r.kind, "exit_code": r.exit_code, "error": r.error,
                "duration_ms": u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
                "bytes_in": r.bytes_in, "bytes_out": r.bytes_out, "via": r.via.as_str(),
            })),
        )
        .await;
    }
}
