//! Mapping agentlabd's configuration (`network:` and `guest.listen`) onto [`NetConfig`], so the
//! daemon and `agentlab net` render the same policy from the same file.

use std::net::{IpAddr, Ipv6Addr};

use agentlab_core::config::Config;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_network_section_maps_onto_the_policy() {
        let yaml = "backend: fake\nnetwork:\n  bridge: agentlab0\n  host_ports: [9418]\n  uplink: eth9\n  subnet6: fd99::/64\n  tailnet_iface: tailscale0\n  tailnet_ssh: true\n";
        let cfg = Config::from_yaml_str(yaml, "test").unwrap();
        let net = NetConfig::from_daemon(&cfg).unwrap();
        assert_eq!(net.bridge, "agentlab0");
        assert_eq!(net.uplink, "eth9");
        assert_eq!(net.gateway_v6.unwrap().to_string(), "fd99::1");
        assert!(net.tailnet.ssh);
        assert_eq!(net.guest_ports, vec![8844, 9418]);
    }
}
