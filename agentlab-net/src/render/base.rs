//! The base ruleset: both AgentLab tables, redefined from scratch in one atomic batch.
//!
//! `table X {}` + `delete table X` + `table X { … }` in one `nft -f` transaction is idempotent:
//! it works whether or not the table exists and leaves exactly the rendered content. Per-sandbox
//! set elements are wiped by it; [`NftFirewall`](crate::NftFirewall) re-adds the sandboxes it
//! knows in the same batch.

use ipnet::IpNet;

use crate::config::NetConfig;

/// Destinations sandboxes may never open connections to (besides the agent subnets).
const BLOCKED: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "224.0.0.0/4",
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
    for (fam, set) in [("ip", "sbx_v4"), ("ip6", "sbx_v6")] {
        let icmp = if fam == "ip" { "icmp" } else { "icmpv6" };
        o.push_str(&format!(
            "\t\t{fam} saddr @{set} {icmp} type echo-request accept\n"
        ));
        o.push_str(&format!(
            "\t\t{fam} saddr @{set} tcp dport {{ {ports} }} accept\n"
        ));
        if cfg.serve_dns {
            o.push_str(&format!(
                "\t\t{fam} saddr @{set} meta l4proto {{ tcp, udp }} th dport 53 accept\n"
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

    o.push_str(
        "\n\tchain prerouting {\n\t\ttype filter hook prerouting priority -200; policy accept;\n",
    );
    o.push_str("\t\tiifname @ports jump from_port\n");
    o.push_str("\t\t# Agent addresses are only valid from the port they are bound to.\n");
    o.push_str(&format!("\t\tip saddr {} drop\n", cfg.subnet_v4));
    o.push_str(&format!("\t\tarp saddr ip {} drop\n", cfg.subnet_v4));
    if let Some(n6) = cfg.subnet_v6 {
        o.push_str(&format!("\t\tip6 saddr {n6} drop\n"));
    }
    o.push_str("\t}\n");
    o.push_str("\n\tchain from_port {\n\t\tiifname . ether saddr != @port_mac drop\n");
    o.push_str("\t\tether type arp jump port_arp\n\t\tether type ip jump port_ip4\n");
    o.push_str("\t\tether type ip6 jump port_ip6\n\t\tdrop\n\t}\n");
    o.push_str("\n\tchain port_arp {\n\t\tiifname . arp saddr ether != @port_mac drop\n");
    o.push_str("\t\tiifname . arp saddr ip @port_ip4 accept\n\t\tarp saddr ip 0.0.0.0 accept\n");
    o.push_str("\t\tdrop\n\t}\n");
    o.push_str("\n\tchain port_ip4 {\n\t\tiifname . ip saddr @port_ip4 accept\n");
    if cfg.serve_dhcp {
        o.push_str("\t\tip saddr 0.0.0.0 udp sport 68 udp dport 67 accept\n");
    }
    o.push_str("\t\tdrop\n\t}\n");
    o.push_str("\n\tchain port_ip6 {\n\t\tiifname . ip6 saddr @port_ip6 accept\n");
    o.push_str("\t\tip6 saddr { ::, fe80::/10 } icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } accept\n");
    o.push_str("\t\tdrop\n\t}\n");
    o.push_str("\n\tchain forward {\n\t\ttype filter hook forward priority -200; policy accept;\n");
    o.push_str("\t\t# Registered sandboxes never exchange frames with another bridge port.\n");
    o.push_str("\t\tiifname @ports drop\n\t\toifname @ports drop\n\t}\n}\n");
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
        assert_eq!(v6, ["fc00::/7", "fe80::/10", "ff00::/8"]);
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
