//! Mapping agentlabd's configuration (`network:` and `guest.listen`) onto [`NetConfig`], so the
//! daemon and `agentlab net` render the same policy from the same file.

use std::net::{IpAddr, Ipv6Addr};

use agentlab_core::config::{BackendKind, Config};

use crate::config::{NetConfig, TailnetConfig};
use crate::error::NetError;
use crate::netns::default_route_iface;

impl NetConfig {
    /// Builds the policy inputs from the daemon config. An unset uplink is looked up from the
    /// default route (runs `ip`, blocking); the IPv6 gateway is the subnet's `::1`.
    pub fn from_daemon(cfg: &Config) -> Result<Self, NetError> {
        let n = &cfg.network;
        let uplink = match &n.uplink {
            Some(u) => u.clone(),
            None => default_route_iface(None)?,
        };
        let gateway_v6 = n
            .subnet6
            .map(|net| Ipv6Addr::from(u128::from(net.network()).wrapping_add(1)));
        let mut guest_ports = vec![cfg.guest.listen.port()];
        guest_ports.extend(&n.host_ports);
        guest_ports.retain(|p| *p != 0);
        guest_ports.sort_unstable();
        guest_ports.dedup();
        let out = Self {
            bridge: n.bridge.clone(),
            subnet_v4: n.subnet,
            gateway_v4: n.gateway,
            subnet_v6: n.subnet6,
            gateway_v6,
            uplink,
            tailnet: TailnetConfig {
                iface: n.tailnet_iface.clone(),
                ssh: n.tailnet_ssh,
            },
            guest_ports,
            serve_dns: n.serve_dns,
            extra_blocked: n.extra_blocked.clone(),
            table: n.table.clone(),
            agent_ports: agent_ports(cfg),
            ..Self::default()
        };
        if let IpAddr::V4(a) = cfg.guest.listen.ip()
            && !a.is_unspecified()
            && a != out.gateway_v4
        {
            tracing::warn!(listen = %a, gateway = %out.gateway_v4, "guest listener is not on the bridge gateway");
        }
        out.validate()?;
        Ok(out)
    }
}

/// The names every sandbox port of this backend can have: one per vmid of the range.
fn agent_ports(cfg: &Config) -> Vec<String> {
    let ids = cfg.vmid_range.start..=cfg.vmid_range.end;
    match cfg.backend {
        BackendKind::Local => ids.map(|v| format!("al{v}h")).collect(),
        // QEMU: the VM's tap (`agentlab_qemu`'s `tap_name`).
        BackendKind::Qemu => ids.map(|v| format!("alq{v}")).collect(),
        // Proxmox: the VM's tap, or the firewall bridge's port when the PVE firewall is on.
        BackendKind::Pve => ids
            .flat_map(|v| [format!("tap{v}i*"), format!("fwpr{v}p*")])
            .collect(),
        BackendKind::Fake => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_network_section_maps_onto_the_policy() {
        let yaml = "backend: fake\nnetwork:\n  bridge: agentlab0\n  host_ports: [9418]\n  uplink: eth9\n  tailnet_iface: tailscale0\n  tailnet_ssh: true\n  serve_dns: true\n  extra_blocked: [168.63.129.16/32]\n  table: al_test\n";
        let cfg = Config::from_yaml_str(yaml, "test").unwrap();
        let net = NetConfig::from_daemon(&cfg).unwrap();
        assert_eq!(net.bridge, "agentlab0");
        assert_eq!(net.uplink, "eth9");
        assert_eq!(net.subnet_v6, None, "sandboxes get no IPv6");
        assert!(net.tailnet.ssh);
        assert!(net.serve_dns);
        assert_eq!(net.table, "al_test");
        assert_eq!(net.extra_blocked[0].to_string(), "168.63.129.16/32");
        assert_eq!(net.guest_ports, vec![8844, 9418]);
        assert!(net.agent_ports.is_empty(), "the fake backend has no ports");
    }

    #[test]
    fn agent_ports_cover_every_vmid_of_the_backend() {
        let local =
            "backend: local\nvmid_range: {start: 9100, end: 9102}\nnetwork: {uplink: eth9}\n";
        let net = NetConfig::from_daemon(&Config::from_yaml_str(local, "t").unwrap()).unwrap();
        assert_eq!(net.agent_ports, ["al9100h", "al9101h", "al9102h"]);
        let pve = "backend: pve\npve: {url: https://pve:8006, token_id: a@pve!b, token_secret_file: /s, node: n1}\nvmid_range: {start: 9100, end: 9100}\nnetwork: {uplink: eth9}\n";
        let net = NetConfig::from_daemon(&Config::from_yaml_str(pve, "t").unwrap()).unwrap();
        assert_eq!(net.agent_ports, ["tap9100i*", "fwpr9100p*"]);
        let qemu = "backend: qemu\nvmid_range: {start: 9100, end: 9101}\nnetwork: {uplink: eth9}\n";
        let net = NetConfig::from_daemon(&Config::from_yaml_str(qemu, "t").unwrap()).unwrap();
        assert_eq!(net.agent_ports, ["alq9100", "alq9101"]);
    }

    #[test]
    fn ipv6_subnet_is_refused_with_a_reason() {
        let yaml = "backend: fake\nnetwork:\n  subnet6: fd99::/64\n";
        let err = Config::from_yaml_str(yaml, "test").unwrap_err().to_string();
        assert!(
            err.contains("network.subnet6") && err.contains("no IPv6"),
            "{err}"
        );
    }
}
