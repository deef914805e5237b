//! Network plumbing for local sandboxes (blocking; call from `spawn_blocking`): the
//! sandbox's namespace `<prefix><vmid>`, a veth pair `al<vmid>h` (on the bridge) ↔ `eth0`
//! (inside, with the spec's MAC, address and default route), and [`setup_bridge`] for the
//! bridge itself. Built on `agentlab_net`'s `ip` and bridge helpers.

use std::path::Path;

use agentlab_core::NetAttachment;
use agentlab_net::NetConfig;
use agentlab_net::bridge::{attach_port, create_bridge, enable_forwarding};
use agentlab_net::netns::{exec_in, ip, link_exists};

use crate::error::LocalError;

/// Creates the agent bridge (with its gateway addresses) in `netns` (`None` = this process's
/// namespace) and enables IPv4/IPv6 forwarding there. Idempotent. Blocking.
pub fn setup_bridge(net: &NetConfig, netns: Option<&str>) -> Result<(), LocalError> {
    create_bridge(net, netns)?;
    match netns {
        None => enable_forwarding(Path::new("/proc/sys"))?,
        Some(ns) => {
            for key in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
                exec_in(ns, "sysctl", &["-qw", key])?;
            }
        }
    }
    Ok(())
}

/// Whether the netns `name` exists.
pub(crate) fn netns_exists(name: &str) -> bool {
    crate::procs::netns_path(name).exists()
}

/// Fails with [`LocalError::Missing`] when the bridge does not exist.
pub(crate) fn require_bridge(bridge_ns: Option<&str>, bridge: &str) -> Result<(), LocalError> {
    if link_exists(bridge_ns, bridge) {
        Ok(())
    } else {
        Err(LocalError::Missing(format!(
            "Bridge {bridge} does not exist (run `agentlab net bridge`)"
        )))
    }
}

/// Creates the sandbox namespace and its veth pair; undoes what it did on failure.
pub(crate) fn plumb(
    bridge_ns: Option<&str>,
    netns: &str,
    veth: &str,
    net: &NetAttachment,
) -> Result<(), LocalError> {
    ip(None, &["netns", "add", netns])?;
    let result = plumb_inside(bridge_ns, netns, veth, net);
    if result.is_err() {
        unplumb(bridge_ns, netns, veth);
    }
    result
}

fn plumb_inside(
    bridge_ns: Option<&str>,
    netns: &str,
    veth: &str,
    net: &NetAttachment,
) -> Result<(), LocalError> {
    let inside = Some(netns);
    ip(inside, &["link", "set", "lo", "up"])?;
    ip(
        bridge_ns,
        &[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ],
    )?;
    ip(inside, &["link", "set", "dev", "eth0", "address", &net.mac])?;
    let addr = format!("{}/{}", net.ip, net.prefix_len);
    let family = if net.ip.is_ipv4() { "-4" } else { "-6" };
    let mut add = vec![family, "addr", "add", &addr, "dev", "eth0"];
    if net.ip.is_ipv6() {
        add.push("nodad");
    }
    ip(inside, &add)?;
    ip(inside, &["link", "set", "dev", "eth0", "up"])?;
    let gw = net.gateway.to_string();
    ip(
        inside,
        &[family, "route", "add", "default", "via", &gw, "dev", "eth0"],
    )?;
    attach_port(bridge_ns, &net.bridge, veth)?;
    Ok(())
}

/// Deletes the veth pair and the namespace; missing pieces are fine.
pub(crate) fn unplumb(bridge_ns: Option<&str>, netns: &str, veth: &str) {
    if link_exists(bridge_ns, veth)
        && let Err(err) = ip(bridge_ns, &["link", "del", "dev", veth])
    {
        tracing::warn!(iface = %veth, error = %err, "cannot delete sandbox veth");
    }
    if netns_exists(netns)
        && let Err(err) = ip(None, &["netns", "del", netns])
    {
        tracing::warn!(netns = %netns, error = %err, "cannot delete sandbox netns");
    }
}

/// Forgets the bridge's neighbour entry for a destroyed sandbox's address, so the next
/// sandbox given that address (and MAC) starts from a clean ARP/NDP state; missing is fine.
pub(crate) fn flush_neighbour(bridge_ns: Option<&str>, bridge: &str, addr: std::net::IpAddr) {
    let addr = addr.to_string();
    if let Err(err) = ip(bridge_ns, &["neigh", "flush", "to", &addr, "dev", bridge]) {
        tracing::warn!(ip = %addr, bridge = %bridge, error = %err, "cannot flush the neighbour entry");
    }
}
