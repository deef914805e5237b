//! [`NetConfig`]: everything the ruleset is rendered from.
//!
//! The daemon maps its own configuration into this struct; the CLI reads it from YAML
//! (`agentlab net --config net.yaml`) or takes the defaults, which match the documented host setup
//! (`vmbr1`, `10.77.0.0/16`, gateway `10.77.0.1`, guest listener port 8844).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::validate::validate_iface;

/// Inbound access from the tailnet to sandboxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TailnetConfig {
    /// The tailnet interface on the host (e.g. `tailscale0`); `None` disables tailnet rules.
    pub iface: Option<String>,
    /// Whether humans on the tailnet may open TCP/22 to sandboxes.
    pub ssh: bool,
}

impl Default for TailnetConfig {
    fn default() -> Self {
        Self {
            iface: Some("tailscale0".to_owned()),
            ssh: false,
        }
    }
}

/// The network policy's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// The agent bridge every sandbox port is attached to.
    pub bridge: String,
    /// The agent IPv4 subnet.
    pub subnet_v4: Ipv4Net,
    /// The host's address on the bridge (gateway and guest listener address).
    pub gateway_v4: Ipv4Addr,
    /// The agent IPv6 subnet; `None` disables sandbox IPv6.
    pub subnet_v6: Option<Ipv6Net>,
    /// The host's IPv6 address on the bridge.
    pub gateway_v6: Option<Ipv6Addr>,
    /// The interface egress traffic leaves through (masqueraded).
    pub uplink: String,
    /// Tailnet settings.
    pub tailnet: TailnetConfig,
    /// TCP ports of the guest listener on the host, reachable from sandboxes.
    pub guest_ports: Vec<u16>,
    /// Whether AgentLab (or the operator) serves DHCPv4 on the bridge.
    pub serve_dhcp: bool,
    /// Whether AgentLab (or the operator) serves DNS on the bridge.
    pub serve_dns: bool,
    /// Destinations blocked in addition to the built-in private ranges.
    pub extra_blocked: Vec<IpNet>,
    /// The `nft` binary.
    pub nft_path: PathBuf,
    /// Name of AgentLab's tables (`inet <table>` and `bridge <table>`).
    pub table: String,
    /// Names of every port that belongs to the agent bridge, registered or not (a trailing `*`
    /// matches any suffix). Such a port that is not a registered sandbox gets nothing at layer
    /// 2. The daemon fills this from its backend and vmid range (`al<vmid>h` on the local
    /// backend, `tap<vmid>i*`/`fwpr<vmid>p*` on Proxmox); empty means unknown.
    pub agent_ports: Vec<String>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            bridge: "vmbr1".to_owned(),
            subnet_v4: Ipv4Net::new(Ipv4Addr::new(10, 77, 0, 0), 16).unwrap_or_default(),
            gateway_v4: Ipv4Addr::new(10, 77, 0, 1),
            subnet_v6: Ipv6Net::new(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0), 64).ok(),
            gateway_v6: Some(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1)),
            uplink: "vmbr0".to_owned(),
            tailnet: TailnetConfig::default(),
            guest_ports: vec![8844],
            serve_dhcp: false,
            serve_dns: false,
            extra_blocked: Vec::new(),
            nft_path: PathBuf::from("/usr/sbin/nft"),
            table: "agentlab".to_owned(),
            agent_ports: Vec::new(),
        }
    }
}

impl NetConfig {
    /// Parses YAML (all fields optional, unknown fields rejected) and validates it.
    pub fn from_yaml_str(text: &str) -> Result<Self, NetError> {
        let cfg: Self = serde_yaml::from_str(text)
            .map_err(|e| NetError::Config(format!("Invalid network config YAML: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks names and addresses so rendered rulesets are always well-formed.
    pub fn validate(&self) -> Result<(), NetError> {
        validate_iface(&self.bridge).map_err(NetError::Config)?;
        validate_iface(&self.uplink).map_err(NetError::Config)?;
        if let Some(t) = &self.tailnet.iface {
            validate_iface(t).map_err(NetError::Config)?;
        }
        if self.table.is_empty()
            || self.table.len() > 32
            || !self
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(NetError::Config(format!(
                "Invalid table name {:?}",
                self.table
            )));
        }
        if !self.subnet_v4.contains(&self.gateway_v4) {
            return Err(NetError::Config(format!(
                "Gateway {} is outside subnet {}",
                self.gateway_v4, self.subnet_v4
            )));
        }
        match (self.subnet_v6, self.gateway_v6) {
            (Some(net), Some(gw)) if !net.contains(&gw) => {
                return Err(NetError::Config(format!(
                    "Gateway {gw} is outside subnet {net}"
                )));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(NetError::Config(
                    "subnet_v6 and gateway_v6 must be set together".to_owned(),
                ));
            }
            _ => {}
        }
        for pattern in &self.agent_ports {
            validate_iface(pattern.strip_suffix('*').unwrap_or(pattern))
                .map_err(|e| NetError::Config(format!("agent_ports: {e}")))?;
        }
        if self.guest_ports.is_empty() || self.guest_ports.contains(&0) {
            return Err(NetError::Config(
                "guest_ports must list ports 1..=65535".to_owned(),
            ));
        }
        Ok(())
    }

    /// The agent subnets (IPv4 and, when configured, IPv6).
    pub fn subnets(&self) -> Vec<IpNet> {
        let mut nets = vec![IpNet::V4(self.subnet_v4)];
        nets.extend(self.subnet_v6.map(IpNet::V6));
        nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_match_the_documented_host_setup() {
        let cfg = NetConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.subnet_v4.to_string(), "10.77.0.0/16");
        assert_eq!(cfg.subnet_v6.unwrap().to_string(), "fd77::/64");
        assert_eq!(cfg.guest_ports, vec![8844]);
        assert_eq!(cfg.table, "agentlab");
    }

    #[test]
    fn yaml_overrides_some_fields_and_rejects_unknown_ones() {
        let cfg = NetConfig::from_yaml_str("bridge: agentlab0\ntailnet: {ssh: true}\n").unwrap();
        assert_eq!(cfg.bridge, "agentlab0");
        assert!(cfg.tailnet.ssh);
        assert_eq!(cfg.tailnet.iface.as_deref(), Some("tailscale0"));
        assert!(NetConfig::from_yaml_str("bridgee: x\n").is_err());
    }

    #[test]
    fn rejects_gateway_outside_subnet_and_hostile_names() {
        let mut cfg = NetConfig {
            gateway_v4: Ipv4Addr::new(10, 78, 0, 1),
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
        cfg = NetConfig {
            bridge: "br\"; flush ruleset".to_owned(),
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
        cfg = NetConfig {
            table: "a b".to_owned(),
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
    }
}
