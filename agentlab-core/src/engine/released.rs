//! [`Released`]: the announcement that a sandbox's guest is gone (its VM destroyed), so the
//! embedder can drop what it still holds for that address (the daemon closes the guest
//! listener's connections from it, so a later sandbox reusing the address never meets them).

use std::net::IpAddr;

use tokio::sync::broadcast;

use crate::ids::Vmid;
use crate::model::Sandbox;
use crate::state::SandboxState;

use super::lab::Lab;

/// A sandbox whose guest no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The sandbox.
    pub vmid: Vmid,
    /// Its address, if it had one.
    pub ip: Option<IpAddr>,
}

/// How many announcements a slow subscriber may fall behind before it misses some.
pub(crate) const CAPACITY: usize = 1024;

/// A fresh channel for [`Lab::new`].
pub(crate) fn channel() -> broadcast::Sender<Released> {
    broadcast::channel(CAPACITY).0
}

impl Lab {
    /// Announcements of sandboxes whose guest is gone: DESTROYED, or FAILED/TIMEOUT with no VM
    /// left. A subscriber that falls more than 1024 behind gets `Lagged` and should treat
    /// every address as suspect.
    pub fn subscribe_released(&self) -> broadcast::Receiver<Released> {
        self.released.subscribe()
    }

    /// Announces `sb` if its new state means its guest is gone.
    pub(crate) fn announce_released(&self, sb: &Sandbox) {
        let gone = match sb.state {
            SandboxState::Destroyed => true,
            SandboxState::Failed | SandboxState::Timeout => !sb.vm_created,
            _ => false,
        };
        if sb.state == SandboxState::Destroyed {
            self.unpin_profile(sb.vmid);
        }
        if gone {
            // No subscriber is fine: nothing holds anything for the address.
            let _ = self.released.send(Released {
                vmid: sb.vmid,
                ip: sb.ip,
            });
        }
    }
}
