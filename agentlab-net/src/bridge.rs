//! Bridge setup for a plain Linux host (on Proxmox, PVE owns bridges: see `docs/network.md` for
//! the `/etc/network/interfaces` stanza instead).
//!
//! [`bridge_commands`] is the pure plan; [`create_bridge`] runs it idempotently (optionally in a
//! network namespace); [`enable_forwarding`] writes the forwarding sysctls.

use std::path::Path;

use crate::config::NetConfig;
use crate::error::NetError;
use crate::netns::{ip, link_exists};

/// The fixed MAC of the bridge `name`: locally administered, unicast, derived from the name
/// (FNV-1a). A Linux bridge without a set address takes the lowest MAC of its ports, so the
/// gateway's MAC would change whenever a sandbox's veth comes or goes; with an address set
/// explicitly (`addr_assign_type` 3) the kernel never changes it.
pub fn bridge_mac(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    // Bit 1 of the first octet: locally administered; bit 0 clear: unicast.
    let first = (b[0] & 0xfc) | 0x02;
    format!(
        "{first:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[1], b[2], b[3], b[4], b[5]
    )
}

/// The `ip` invocations that create and address the agent bridge. The bridge gets its fixed
/// [`bridge_mac`] at creation, and again on every run (an existing bridge without it gets it).
pub fn bridge_commands(cfg: &NetConfig) -> Vec<Vec<String>> {
    let br = cfg.bridge.clone();
    let mac = bridge_mac(&br);
    let v4 = format!("{}/{}", cfg.gateway_v4, cfg.subnet_v4.prefix_len());
    let mut cmds = vec![
        vec![
            "link",
            "add",
            "name",
            &br,
            "address",
            &mac,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
        vec!["link", "set", "dev", &br, "address", &mac],
        vec!["addr", "replace", &v4, "dev", &br],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(str::to_owned).collect::<Vec<_>>())
    .collect::<Vec<_>>();
    if let (Some(net), Some(gw)) = (cfg.subnet_v6, cfg.gateway_v6) {
        let v6 = format!("{gw}/{}", net.prefix_len());
        cmds.push(
            ["-6", "addr", "replace", &v6, "dev", &br, "nodad"]
                .map(str::to_owned)
                .to_vec(),
        );
    }
    cmds.push(
        ["link", "set", "dev", &br, "up"]
            .map(str::to_owned)
            .to_vec(),
    );
    cmds
}

/// Creates the agent bridge with its gateway addresses (skipping the creation when the link
/// already exists; addresses use `replace`, so re-running is harmless).
pub fn create_bridge(cfg: &NetConfig, netns: Option<&str>) -> Result<(), NetError> {
    cfg.validate()?;
    let exists = link_exists(netns, &cfg.bridge);
    for (i, cmd) in bridge_commands(cfg).iter().enumerate() {
        if i == 0 && exists {
            continue;
        }
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        ip(netns, &args)?;
    }
    tracing::info!(bridge = %cfg.bridge, "agent bridge ready");
    Ok(())
}

/// Attaches `port` to `bridge` and sets it up.
pub fn attach_port(netns: Option<&str>, bridge: &str, port: &str) -> Result<(), NetError> {
    ip(netns, &["link", "set", "dev", port, "master", bridge])?;
    ip(netns, &["link", "set", "dev", port, "up"])?;
    Ok(())
}

/// Deletes the bridge (a no-op when absent).
pub fn delete_bridge(netns: Option<&str>, bridge: &str) -> Result<(), NetError> {
    if link_exists(netns, bridge) {
        ip(netns, &["link", "del", "dev", bridge])?;
    }
    Ok(())
}

/// Enables IPv4 and IPv6 forwarding by writing `1` under `proc_sys` (normally `/proc/sys`;
/// it applies to the caller's network namespace).
pub fn enable_forwarding(proc_sys: &Path) -> Result<(), NetError> {
    for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
        let path = proc_sys.join(key);
        std::fs::write(&path, "1\n").map_err(|source| NetError::Io {
            context: format!("writing {}", path.display()),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_creates_addresses_and_raises_the_bridge() {
        let cmds: Vec<String> = bridge_commands(&NetConfig::default())
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            cmds,
            [
                "link add name vmbr1 address da:cb:e3:70:81:27 type bridge stp_state 0 forward_delay 0",
                "link set dev vmbr1 address da:cb:e3:70:81:27",
                "addr replace 10.77.0.1/16 dev vmbr1",
                "-6 addr replace fd77::1/64 dev vmbr1 nodad",
                "link set dev vmbr1 up",
            ]
        );
    }

    #[test]
    fn the_bridge_mac_is_stable_locally_administered_unicast() {
        let mac = bridge_mac("agentlab0");
        assert_eq!(mac, bridge_mac("agentlab0"));
        assert_ne!(mac, bridge_mac("agentlab1"));
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "{mac}");
        assert_eq!(mac.len(), 17);
    }

    #[test]
    fn forwarding_sysctls_are_written_under_the_given_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv6/conf/all")).unwrap();
        enable_forwarding(dir.path()).unwrap();
        let v4 = std::fs::read_to_string(dir.path().join("net/ipv4/ip_forward")).unwrap();
        let v6 = std::fs::read_to_string(dir.path().join("net/ipv6/conf/all/forwarding")).unwrap();
        assert_eq!((v4.as_str(), v6.as_str()), ("1\n", "1\n"));
        assert!(enable_forwarding(&dir.path().join("missing")).is_err());
    }
}
