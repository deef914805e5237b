//! Per-sandbox set elements and the batches that add or remove them.
//!
//! A sandbox is a handful of elements in AgentLab's sets (port, port→MAC, port→IP, IP in the
//! registered/mode sets, IP·CIDR allowlist pairs); nothing else. Removal is rendered as
//! `add element` followed by `delete element` so the batch succeeds whether or not the element
//! is still present, and touches nothing but that element.

use std::net::{IpAddr, Ipv6Addr};

use agentlab_core::{Egress, SandboxNet};
use ipnet::IpNet;

use super::base::minimal;
use crate::config::NetConfig;
use crate::validate::validate_mac;

/// One set element of an AgentLab table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// `inet` or `bridge`.
    pub family: &'static str,
    /// Set name.
    pub set: &'static str,
    /// Element text in nft syntax (e.g. `"tap101i0" . 02:00:00:00:01:01`).
    pub value: String,
}

impl Element {
    fn new(family: &'static str, set: &'static str, value: String) -> Self {
        Self { family, set, value }
    }
}

/// The elements that make up one sandbox (input assumed validated, domains already resolved).
pub fn sandbox_elements(sbx: &SandboxNet) -> Vec<Element> {
    let port = format!("\"{}\"", sbx.iface);
    let mac = validate_mac(&sbx.mac).unwrap_or_else(|_| sbx.mac.to_lowercase());
    let v6 = sbx.ip.is_ipv6();
    let ip = sbx.ip;
    let mut out = vec![
        Element::new("bridge", "ports", port.clone()),
        Element::new("bridge", "port_mac", format!("{port} . {mac}")),
        Element::new(
            "bridge",
            if v6 { "port_ip6" } else { "port_ip4" },
            format!("{port} . {ip}"),
        ),
        Element::new("inet", if v6 { "sbx_v6" } else { "sbx_v4" }, ip.to_string()),
    ];
    // The only IPv6 addresses this port may advertise: its own address and the link-local
    // address its MAC gives it (EUI-64).
    if let Some(ll) = eui64_link_local(&mac) {
        out.push(Element::new(
            "bridge",
            "port_nd6",
            format!("{port} . {}", nd6(ll)),
        ));
    }
    if let IpAddr::V6(a) = ip {
        out.push(Element::new(
            "bridge",
            "port_nd6",
            format!("{port} . {}", nd6(a)),
        ));
    }
    match &sbx.egress {
        Egress::Nat => out.push(Element::new(
            "inet",
            if v6 { "nat_v6" } else { "nat_v4" },
            ip.to_string(),
        )),
        Egress::Allowlist { cidrs, .. } => {
            let same_family: Vec<IpNet> = cidrs
                .iter()
                .filter(|c| matches!(c, IpNet::V6(_)) == v6)
                .copied()
                .collect();
            for c in minimal(same_family) {
                let set = if v6 { "allow_v6" } else { "allow_v4" };
                out.push(Element::new(
                    "inet",
                    set,
                    format!("{ip} . {}", host_or_net(c)),
                ));
            }
        }
        Egress::Off => {}
    }
    out
}

/// The EUI-64 link-local address of a MAC (`fe80::` + MAC with the U/L bit flipped and
/// `ff:fe` in the middle), the address Linux gives an interface by default.
pub fn eui64_link_local(mac: &str) -> Option<Ipv6Addr> {
    let b: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let [m0, m1, m2, m3, m4, m5] = <[u8; 6]>::try_from(b).ok()?;
    let iid = [m0 ^ 0x02, m1, m2, 0xff, 0xfe, m3, m4, m5];
    let mut bytes = [0u8; 16];
    bytes[0] = 0xfe;
    bytes[1] = 0x80;
    bytes[8..].copy_from_slice(&iid);
    Some(Ipv6Addr::from(bytes))
}

/// An IPv6 address as the 128-bit integer `port_nd6` holds (it is keyed by the raw ICMPv6
/// target field, which nftables 1.0.6 has no named expression for).
fn nd6(a: Ipv6Addr) -> String {
    format!("0x{:032x}", u128::from(a))
}

/// nft prints host networks without the prefix; render them the same way.
fn host_or_net(c: IpNet) -> String {
    if c.prefix_len() == c.max_prefix_len() {
        c.addr().to_string()
    } else {
        c.to_string()
    }
}

/// A batch that deletes `remove` then adds `add` (elements of `table`), atomically.
pub fn render_elements(cfg: &NetConfig, add: &[Element], remove: &[Element]) -> String {
    let t = &cfg.table;
    let mut out = String::new();
    for e in remove {
        let (f, s, v) = (e.family, e.set, &e.value);
        out.push_str(&format!("add element {f} {t} {s} {{ {v} }}\n"));
        out.push_str(&format!("delete element {f} {t} {s} {{ {v} }}\n"));
    }
    for e in add {
        out.push_str(&format!(
            "add element {} {t} {} {{ {} }}\n",
            e.family, e.set, e.value
        ));
    }
    out
}

/// The batch that lets one sandbox through.
pub fn render_sandbox_add(cfg: &NetConfig, sbx: &SandboxNet) -> String {
    render_elements(cfg, &sandbox_elements(sbx), &[])
}

/// The batch that removes one sandbox's elements (and nothing else).
pub fn render_sandbox_remove(cfg: &NetConfig, sbx: &SandboxNet) -> String {
    render_elements(cfg, &[], &sandbox_elements(sbx))
}

/// Whether two addresses are of the same family.
pub(crate) fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv6() == b.is_ipv6()
}

#[cfg(test)]
mod tests {
    use agentlab_core::Vmid;

    use super::*;

    fn sbx(ip: &str, egress: Egress) -> SandboxNet {
        SandboxNet {
            vmid: Vmid::new(101).unwrap(),
            iface: "tap101i0".into(),
            mac: "02:AA:00:00:01:01".into(),
            ip: ip.parse().unwrap(),
            egress,
        }
    }

    #[test]
    fn nat_sandbox_has_binding_and_mode_elements() {
        let text = render_sandbox_add(&NetConfig::default(), &sbx("10.77.0.11", Egress::Nat));
        assert_eq!(
            text,
            "add element bridge agentlab ports { \"tap101i0\" }\n\
             add element bridge agentlab port_mac { \"tap101i0\" . 02:aa:00:00:01:01 }\n\
             add element bridge agentlab port_ip4 { \"tap101i0\" . 10.77.0.11 }\n\
             add element inet agentlab sbx_v4 { 10.77.0.11 }\n\
             add element bridge agentlab port_nd6 { \"tap101i0\" . 0xfe8000000000000000aa00fffe000101 }\n\
             add element inet agentlab nat_v4 { 10.77.0.11 }\n"
        );
    }

    #[test]
    fn allowlist_keeps_own_family_and_drops_covered_networks() {
        let egress = Egress::Allowlist {
            cidrs: ["1.2.3.0/24", "1.2.3.4/32", "2001:db8::/32", "9.9.9.9/32"]
                .iter()
                .map(|c| c.parse().unwrap())
                .collect(),
            domains: vec![],
        };
        let els = sandbox_elements(&sbx("10.77.0.11", egress));
        let allow: Vec<&str> = els
            .iter()
            .filter(|e| e.set == "allow_v4")
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(allow, ["10.77.0.11 . 1.2.3.0/24", "10.77.0.11 . 9.9.9.9"]);
        assert!(els.iter().all(|e| e.set != "nat_v4" && e.set != "allow_v6"));
    }

    #[test]
    fn off_sandbox_is_registered_but_in_no_egress_set() {
        let els = sandbox_elements(&sbx("fd77::11", Egress::Off));
        let sets: Vec<&str> = els.iter().map(|e| e.set).collect();
        assert_eq!(
            sets,
            [
                "ports", "port_mac", "port_ip6", "sbx_v6", "port_nd6", "port_nd6"
            ]
        );
        assert!(els[5].value.ends_with("0xfd770000000000000000000000000011"));
    }

    #[test]
    fn eui64_link_local_flips_the_universal_bit() {
        let ll = eui64_link_local("52:54:00:12:34:56").unwrap();
        assert_eq!(ll.to_string(), "fe80::5054:ff:fe12:3456");
        assert!(eui64_link_local("nonsense").is_none());
    }

    #[test]
    fn removal_re_adds_before_deleting_so_it_never_fails_on_absence() {
        let text = render_sandbox_remove(&NetConfig::default(), &sbx("10.77.0.11", Egress::Off));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10);
        assert!(lines[0].starts_with("add element bridge agentlab ports"));
        assert!(lines[1].starts_with("delete element bridge agentlab ports"));
    }
}
