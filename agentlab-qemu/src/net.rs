//! The sandbox's tap device `alq<vmid>` on the agent bridge (blocking; `ip` commands). The tap
//! is persistent (created here, opened by QEMU with `script=no`), so it exists before the VM
//! runs and is removed by stop and destroy.

use agentlab_core::Vmid;
use agentlab_net::bridge::attach_port;
use agentlab_net::netns::{ip, link_exists};

use crate::error::QemuError;

/// The host-side tap of sandbox `vmid` (also the firewall's agent port name).
pub fn tap_name(vmid: Vmid) -> String {
    format!("alq{vmid}")
}

/// Creates the tap (again, if a stale one exists) and attaches it to `bridge`.
pub(crate) fn create_tap(netns: Option<&str>, tap: &str, bridge: &str) -> Result<(), QemuError> {
    if !link_exists(netns, bridge) {
        return Err(QemuError::Missing(format!(
            "Bridge {bridge} does not exist (run `agentlab net bridge`)"
        )));
    }
    delete_tap(netns, tap);
    ip(netns, &["tuntap", "add", "dev", tap, "mode", "tap"])?;
    let attached = attach_port(netns, bridge, tap).map_err(QemuError::from);
    if attached.is_err() {
        delete_tap(netns, tap);
    }
    attached
}

/// Deletes the tap; a missing one is fine.
pub(crate) fn delete_tap(netns: Option<&str>, tap: &str) {
    if link_exists(netns, tap)
        && let Err(err) = ip(netns, &["link", "del", "dev", tap])
    {
        tracing::warn!(iface = %tap, error = %err, "cannot delete sandbox tap");
    }
}
