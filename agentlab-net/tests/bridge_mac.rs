//! The agent bridge keeps its fixed MAC while ports with lower MACs come and go (a bridge
//! without a set address takes the lowest port MAC, so the gateway's MAC changed whenever a
//! sandbox was destroyed). Privileged: runs in its own network namespace.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::support;
    use agentlab_net::NetConfig;
    use agentlab_net::bridge::{attach_port, bridge_mac, create_bridge};
    use agentlab_net::netns::{Netns, ip, link_mac};

    fn net(bridge: &str) -> NetConfig {
        NetConfig {
            bridge: bridge.to_owned(),
            subnet_v6: None,
            gateway_v6: None,
            uplink: "lo".to_owned(),
            ..NetConfig::default()
        }
    }

    /// Adds a veth pair whose bridge-side end has `mac` and attaches it to `bridge`.
    fn add_port(ns: &str, bridge: &str, port: &str, mac: &str) {
        let peer = format!("{port}p");
        ip(
            Some(ns),
            &[
                "link", "add", port, "address", mac, "type", "veth", "peer", "name", &peer,
            ],
        )
        .unwrap();
        attach_port(Some(ns), bridge, port).unwrap();
    }

    #[test]
    fn the_bridge_mac_never_follows_its_ports() {
        if !support::privileged() {
            return;
        }
        let ns = Netns::create(&format!("albm{}a", std::process::id())).unwrap();
        let n = ns.name();
        create_bridge(&net("agentlab0"), Some(n)).unwrap();
        let fixed = bridge_mac("agentlab0");
        assert_eq!(link_mac(Some(n), "agentlab0").unwrap(), fixed);
        add_port(n, "agentlab0", "p1", "02:00:00:00:00:05");
        add_port(n, "agentlab0", "p2", "02:00:00:00:00:01");
        assert_eq!(link_mac(Some(n), "agentlab0").unwrap(), fixed);
        ip(Some(n), &["link", "del", "dev", "p2"]).unwrap();
        assert_eq!(link_mac(Some(n), "agentlab0").unwrap(), fixed);
        ip(Some(n), &["link", "del", "dev", "p1"]).unwrap();
        add_port(n, "agentlab0", "p3", "00:00:00:00:00:02");
        assert_eq!(link_mac(Some(n), "agentlab0").unwrap(), fixed);
        // Re-running the setup is harmless.
        create_bridge(&net("agentlab0"), Some(n)).unwrap();
        assert_eq!(link_mac(Some(n), "agentlab0").unwrap(), fixed);
    }

    #[test]
    fn an_existing_bridge_without_the_fixed_mac_gets_it() {
        if !support::privileged() {
            return;
        }
        let ns = Netns::create(&format!("albm{}b", std::process::id())).unwrap();
        let n = ns.name();
        // A bridge made by hand (or by an older AgentLab): its MAC follows its ports.
        ip(
            Some(n),
            &["link", "add", "name", "agentlab0", "type", "bridge"],
        )
        .unwrap();
        add_port(n, "agentlab0", "p1", "02:00:00:00:00:01");
        create_bridge(&net("agentlab0"), Some(n)).unwrap();
        let fixed = bridge_mac("agentlab0");
        assert_eq!(link_mac(Some(n), "agentlab0").unwrap(), fixed);
        ip(Some(n), &["link", "del", "dev", "p1"]).unwrap();
        add_port(n, "agentlab0", "p2", "00:00:00:00:00:07");
        assert_eq!(link_mac(Some(n), "agentlab0").unwrap(), fixed);
    }
}
