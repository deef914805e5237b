//! The base ruleset: both AgentLab tables, redefined from scratch in one atomic batch.
//!
//! `table X {}` + `delete table X` + `table X { … }` in one `nft -f` transaction is idempotent:
//! it works whether or not the table exists and leaves exactly the rendered content. Per-sandbox
//! set elements are wiped by it; [`NftFirewall`](crate::NftFirewall) re-adds the sandboxes it
//! knows in the same batch.

use ipnet::IpNet;

use crate::config::NetConfig;

/// Destinations sandboxes may never open connections to (besides the agent subnets).
///
/// Besides private, link-local, CGNAT/tailnet and multicast space this covers "this network"
/// (`0.0.0.0/8`), IETF protocol assignments (`192.0.0.0/24`), the reserved `240.0.0.0/4`, and
/// IPv6 prefixes that embed or translate to IPv4 and so could reach private IPv4 hosts through
/// a NAT64 or 6to4 relay (`64:ff9b::/96`, `64:ff9b:1::/48`, `2002::/16`), plus the deprecated
/// site-local `fec0::/10`.
const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "2002::/16",
    "fec0::/10",
    "fc00::/7",
    "fe80::/10",
    "fd7a:115c:a1e0::/48",
    "ff00::/8",
];

/// Renders the whole AgentLab ruleset (both tables) for `cfg`, without sandboxes.
pub fn render_base(cfg: &NetConfig) -> String {
    let mut out =
        String::from("#!/usr/sbin/nft -f\n# AgentLab network policy (generated; do not edit)\n");
    out.push_str(&render_inet(cfg));
    out.push_str(&render_bridge(cfg));
    out
}

/// Renders a batch that removes both AgentLab tables (and works when they do not exist).
pub fn render_delete(cfg: &NetConfig) -> String {
    let t = &cfg.table;
    format!(
        "table inet {t} {{}}\ndelete table inet {t}\ntable bridge {t} {{}}\ndelete table bridge {t}\n"
    )
}

/// The blocked destination networks of one family, without networks covered by another entry.
pub fn blocked(cfg: &NetConfig, v6: bool) -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = BLOCKED.iter().filter_map(|s| s.parse().ok()).collect();
    nets.extend(cfg.subnets());
    nets.extend(cfg.extra_blocked.iter().copied());
    minimal(
        nets.into_iter()
            .filter(|n| matches!(n, IpNet::V6(_)) == v6)
            .collect(),
    )
}

/// Sorts, deduplicates and drops networks contained in another one (nft refuses overlapping
/// intervals in a set).
pub(crate) fn minimal(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    nets = nets.into_iter().map(|n| n.trunc()).collect();
    nets.sort();
    nets.dedup();
    let keep: Vec<IpNet> = nets
        .iter()
        .filter(|n| !nets.iter().any(|o| o != *n && o.contains(*n)))
        .copied()
        .collect();
    keep
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn set_def(out: &mut String, name: &str, ty: &str, interval: bool, elems: &[IpNet]) {
    out.push_str(&format!("\tset {name} {{\n\t\ttype {ty}\n"));
    if interval {
        out.push_str("\t\tflags interval\n");
    }
    if !elems.is_empty() {
        out.push_str(&format!("\t\telements = {{ {} }}\n", join(elems)));
    }
    out.push_str("\t}\n");
}

fn render_inet(cfg: &NetConfig) -> String {
    let (t, br, up) = (&cfg.table, &cfg.bridge, &cfg.uplink);
    let ports = join(&cfg.guest_ports);
    let mut o = format!("\ntable inet {t} {{}}\ndelete table inet {t}\ntable inet {t} {{\n");
    set_def(
        &mut o,
        "blocked_v4",
        "ipv4_addr",
        true,
        &blocked(cfg, false),
    );
    set_def(&mut o, "blocked_v6", "ipv6_addr", true, &blocked(cfg, true));
    o.push_str("\t# Registered sandbox addresses (any mode), then per-mode membership.\n");
    set_def(&mut o, "sbx_v4", "ipv4_addr", false, &[]);
    set_def(&mut o, "sbx_v6", "ipv6_addr", false, &[]);
    set_def(&mut o, "nat_v4", "ipv4_addr", false, &[]);
    set_def(&mut o, "nat_v6", "ipv6_addr", false, &[]);
    set_def(&mut o, "allow_v4", "ipv4_addr . ipv4_addr", true, &[]);
    set_def(&mut o, "allow_v6", "ipv6_addr . ipv6_addr", true, &[]);

    o.push_str("\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
    o.push_str(&format!(
        "\t\tiifname \"{br}\" jump input_from_sandbox\n\t}}\n"
    ));
    o.push_str("\n\tchain input_from_sandbox {\n");
    o.push_str("\t\tct state established,related accept\n\t\tct state invalid drop\n");
    o.push_str(
        "\t\ticmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept\n",
    );
    if cfg.serve_dhcp {
        o.push_str("\t\tudp sport 68 udp dport 67 accept\n");
    }
    // Host services are reachable only on the gateway address(es) of the bridge: never on the
    // host's LAN, tailnet, uplink or loopback addresses reached through the bridge.
    let gateways = [
        Some(("ip", "sbx_v4", "icmp", cfg.gateway_v4.to_string())),
        cfg.gateway_v6
            .map(|g| ("ip6", "sbx_v6", "icmpv6", g.to_string())),
    ];
    for (fam, set, icmp, gw) in gateways.into_iter().flatten() {
        let to_gw = format!("{fam} saddr @{set} {fam} daddr {gw}");
        o.push_str(&format!("\t\t{to_gw} {icmp} type echo-request accept\n"));
        o.push_str(&format!("\t\t{to_gw} tcp dport {{ {ports} }} accept\n"));
        if cfg.serve_dns {
            o.push_str(&format!(
                "\t\t{to_gw} meta l4proto {{ tcp, udp }} th dport 53 accept\n"
            ));
        }
    }
    o.push_str("\t\tdrop\n\t}\n");

    o.push_str(
        "\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    o.push_str(&format!("\t\tiifname \"{br}\" jump from_sandbox\n"));
    o.push_str(&format!("\t\toifname \"{br}\" jump to_sandbox\n\t}}\n"));
    o.push_str("\n\tchain from_sandbox {\n");
    o.push_str("\t\tct state established,related accept\n\t\tct state invalid drop\n");
    o.push_str(&format!("\t\toifname != \"{up}\" drop\n"));
    o.push_str("\t\tip daddr @blocked_v4 drop\n\t\tip6 daddr @blocked_v6 drop\n");
    o.push_str("\t\tip saddr @nat_v4 accept\n\t\tip6 saddr @nat_v6 accept\n");
    o.push_str(
        "\t\tip saddr . ip daddr @allow_v4 accept\n\t\tip6 saddr . ip6 daddr @allow_v6 accept\n",
    );
    o.push_str("\t\tdrop\n\t}\n");
    o.push_str("\n\tchain to_sandbox {\n\t\tct state established,related accept\n");
    if let (Some(ts), true) = (&cfg.tailnet.iface, cfg.tailnet.ssh) {
        o.push_str(&format!(
            "\t\tiifname \"{ts}\" ip daddr @sbx_v4 tcp dport 22 accept\n"
        ));
        o.push_str(&format!(
            "\t\tiifname \"{ts}\" ip6 daddr @sbx_v6 tcp dport 22 accept\n"
        ));
    }
    o.push_str("\t\tdrop\n\t}\n");

    o.push_str(
        "\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    o.push_str(&format!(
        "\t\tip saddr {} oifname \"{up}\" masquerade\n",
        cfg.subnet_v4
    ));
    if let Some(n6) = cfg.subnet_v6 {
        o.push_str(&format!("\t\tip6 saddr {n6} oifname \"{up}\" masquerade\n"));
    }
    o.push_str("\t}\n}\n");
    o
}

fn render_bridge(cfg: &NetConfig) -> String {
    let t = &cfg.table;
    let mut o = format!("\ntable bridge {t} {{}}\ndelete table bridge {t}\ntable bridge {t} {{\n");
    o.push_str("\t# Registered sandbox ports and what they are bound to.\n");
    o.push_str("\tset ports {\n\t\ttype ifname\n\t}\n");
    o.push_str("\tset port_mac {\n\t\ttype ifname . ether_addr\n\t}\n");
    o.push_str("\tset port_ip4 {\n\t\ttype ifname . ipv4_addr\n\t}\n");
    o.push_str("\tset port_ip6 {\n\t\ttype ifname . ipv6_addr\n\t}\n");
    o.push_str("\t# IPv6 addresses a port may advertise in neighbour advertisements (own only).\n");
    o.push_str("\tset port_nd6 {\n\t\ttypeof iifname . @th,64,128\n\t}\n");
    o.push_str("\t# Every port name that belongs to the agent bridge, registered or not.\n");
    o.push_str("\tset agent_ports {\n\t\ttype ifname\n\t\tflags interval\n");
    if !cfg.agent_ports.is_empty() {
        let names: Vec<String> = cfg.agent_ports.iter().map(|p| format!("\"{p}\"")).collect();
        o.push_str(&format!("\t\telements = {{ {} }}\n", names.join(", ")));
    }
    o.push_str("\t}\n");

    o.push_str(
        "\n\tchain prerouting {\n\t\ttype filter hook prerouting priority -200; policy accept;\n",
    );
    o.push_str("\t\tiifname @ports jump from_port\n");
    o.push_str(
        "\t\t# A port of the agent bridge that is not (or no longer) registered gets nothing.\n",
    );
    o.push_str("\t\tiifname @agent_ports drop\n");
    o.push_str(
        "\t\t# Agent addresses are only valid from the port they are bound to. Matched on the\n",
    );
    o.push_str("\t\t# protocol, not the outer Ethernet type, so a VLAN tag does not hide them.\n");
    o.push_str(&format!(
        "\t\tmeta protocol ip ip saddr {} drop\n",
        cfg.subnet_v4
    ));
    o.push_str(&format!(
        "\t\tmeta protocol arp arp saddr ip {} drop\n",
        cfg.subnet_v4
    ));
    if let Some(n6) = cfg.subnet_v6 {
        o.push_str(&format!("\t\tmeta protocol ip6 ip6 saddr {n6} drop\n"));
    }
    o.push_str("\t}\n");
    o.push_str("\n\tchain from_port {\n\t\tiifname . ether saddr != @port_mac drop\n");
    o.push_str("\t\t# Tagged frames never come from a sandbox.\n");
    o.push_str("\t\tether type { 8021q, 8021ad } drop\n");
    o.push_str("\t\tmeta protocol arp jump port_arp\n\t\tmeta protocol ip jump port_ip4\n");
    o.push_str("\t\tmeta protocol ip6 jump port_ip6\n\t\tdrop\n\t}\n");
    o.push_str("\n\tchain port_arp {\n\t\tiifname . arp saddr ether != @port_mac drop\n");
    o.push_str("\t\tiifname . arp saddr ip @port_ip4 accept\n\t\tarp saddr ip 0.0.0.0 accept\n");
    o.push_str("\t\tdrop\n\t}\n");
    o.push_str("\n\tchain port_ip4 {\n\t\tiifname . ip saddr @port_ip4 accept\n");
    if cfg.serve_dhcp {
        o.push_str("\t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 accept\n");
    }
    o.push_str("\t\tdrop\n\t}\n");
    o.push_str("\n\tchain port_ip6 {\n");
    o.push_str("\t\ticmpv6 type nd-neighbor-advert iifname . @th,64,128 != @port_nd6 drop\n");
    o.push_str("\t\tiifname . ip6 saddr @port_ip6 accept\n");
    o.push_str("\t\tip6 saddr { ::, fe80::/10 } icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } accept\n");
    o.push_str("\t\tdrop\n\t}\n");
    o.push_str("\n\tchain forward {\n\t\ttype filter hook forward priority -200; policy accept;\n");
    o.push_str("\t\t# Registered sandboxes never exchange frames with another bridge port, and\n");
    o.push_str("\t\t# nothing is forwarded to an agent-bridge port that is not registered.\n");
    o.push_str("\t\tiifname @ports drop\n\t\toifname @ports drop\n");
    o.push_str("\t\toifname @agent_ports drop\n\t}\n}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_lists_are_minimal_per_family() {
        let cfg = NetConfig::default();
        let v4: Vec<String> = blocked(&cfg, false)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(v4.contains(&"10.0.0.0/8".to_owned()));
        assert!(!v4.contains(&"10.77.0.0/16".to_owned()), "covered by 10/8");
        let v6: Vec<String> = blocked(&cfg, true)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            v6,
            [
                "64:ff9b::/96",
                "64:ff9b:1::/48",
                "2002::/16",
                "fc00::/7",
                "fe80::/10",
                "fec0::/10",
                "ff00::/8"
            ]
        );
        for net in ["0.0.0.0/8", "192.0.0.0/24", "240.0.0.0/4"] {
            assert!(v4.contains(&net.to_owned()), "{net}");
        }
        let odd = NetConfig {
            subnet_v4: "198.18.0.0/24".parse().unwrap(),
            gateway_v4: "198.18.0.1".parse().unwrap(),
            ..Default::default()
        };
        assert!(blocked(&odd, false).contains(&"198.18.0.0/24".parse().unwrap()));
    }

    #[test]
    fn rendering_is_deterministic_and_honours_toggles() {
        let mut cfg = NetConfig::default();
        assert_eq!(render_base(&cfg), render_base(&cfg));
        assert!(!render_base(&cfg).contains("tcp dport 22 accept"));
        assert!(
            render_base(&cfg)
                .contains("ip saddr @sbx_v4 ip daddr 10.77.0.1 tcp dport { 8844 } accept"),
            "host ports only on the gateway"
        );
        assert!(!render_base(&cfg).contains("dport 67"));
        cfg.tailnet.ssh = true;
        cfg.serve_dhcp = true;
        cfg.subnet_v6 = None;
        cfg.gateway_v6 = None;
        let text = render_base(&cfg);
        assert!(text.contains("iifname \"tailscale0\" ip daddr @sbx_v4 tcp dport 22 accept"));
        assert!(text.contains("udp sport 68 udp dport 67 accept"));
        assert!(!text.contains("ip6 saddr fd77::/64"));
    }

    #[test]
    fn delete_batch_names_only_agentlab_tables() {
        let text = render_delete(&NetConfig::default());
        assert_eq!(text.matches("delete table").count(), 2);
        assert!(
            text.contains("delete table inet agentlab")
                && text.contains("delete table bridge agentlab")
        );
    }
}
