//! Closing what a released sandbox left on the host: its channel and its guest-listener
//! connections, so a sandbox that later gets the same address meets no stale socket.

use std::sync::Arc;

use agentlab_core::engine::Lab;
use tokio_util::sync::CancellationToken;

use crate::channel::ChannelHub;
use crate::guest::conns::Connections;

/// Closes the guest-listener connections of every sandbox the engine releases (destroyed, or
/// failed with its VM gone), so a sandbox that later gets the same address meets no stale
/// socket.
pub(crate) fn spawn_release_watch(
    lab: &Arc<Lab>,
    conns: Arc<Connections>,
    channels: Arc<ChannelHub>,
    cancel: CancellationToken,
) {
    let mut released = lab.subscribe_released();
    tokio::spawn(async move {
        loop {
            let r = tokio::select! {
                () = cancel.cancelled() => return,
                r = released.recv() => r,
            };
            match r {
                Ok(rel) => {
                    if channels.release(rel.vmid) {
                        tracing::debug!(sandbox = %rel.vmid, "closed the released sandbox's channel");
                    }
                    if let Some(ip) = rel.ip {
                        let n = conns.close_peer(ip);
                        tracing::debug!(sandbox = %rel.vmid, ip = %ip, connections = n,
                            "closing the released sandbox's guest connections");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fell behind the sandbox release announcements");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
