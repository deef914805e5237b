//! Attacks on the policy's edges: hand-made layer-2 frames from a sandbox (VLAN-tagged ARP,
//! neighbour advertisements for another sandbox's address), unregistered ports, host services on
//! non-gateway addresses and IPv6 prefixes that embed private IPv4 (root + nft + python3).
//! The layer-2 tests try to move the router's neighbour entry for *another* sandbox's address
//! and check that it still points at that sandbox's MAC.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::Duration;

    use super::support::{Lab, SBX2_V4, p, privileged};
    use agentlab_core::{Firewall, Vmid};
    use agentlab_net::check::Expect::{Blocked, Reach};
    use agentlab_net::netns::{exec_in, link_mac};

    fn frames() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/frames.py")
    }

    fn python_ok() -> bool {
        let ok = Command::new("python3")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 missing under CI (apt-get install python3)"
            );
            eprintln!("SKIP: python3 not installed");
        }
        ok
    }

    /// Sends frames from `ns`'s eth0.
    fn send(ns: &str, args: &[&str]) {
        let script = frames();
        let mut all = vec![script.to_str().unwrap(), "eth0"];
        all.extend_from_slice(args);
        exec_in(ns, "python3", &all).unwrap();
    }

    /// The router's neighbour entry for `addr` on the bridge (its lladdr), after a ping.
    fn neighbour(lab: &Lab, addr: &str) -> String {
        let out = exec_in(&lab.router, "ip", &["neigh", "show", addr, "dev", "vmbr1"]).unwrap();
        out.split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or("")
            .to_owned()
    }

    fn populate(lab: &Lab, addr: &str) {
        let victim = link_mac(Some(&lab.sbx2), "eth0").unwrap();
        exec_in(
            &lab.router,
            "ip",
            &[
                "neigh",
                "replace",
                addr,
                "lladdr",
                &victim,
                "dev",
                "vmbr1",
                "nud",
                "reachable",
            ],
        )
        .unwrap();
        // Linux ignores neighbour updates within `locktime` (1 s) of the last one.
        std::thread::sleep(Duration::from_millis(1200));
    }

    fn poison_attempt(lab: &Lab, addr: &str, frame: &[&str]) -> (String, String) {
        poison_from(lab, &lab.sbx1, addr, frame)
    }

    fn poison_from(lab: &Lab, from: &str, addr: &str, frame: &[&str]) -> (String, String) {
        populate(lab, addr);
        let victim = link_mac(Some(&lab.sbx2), "eth0").unwrap();
        assert_eq!(neighbour(lab, addr), victim, "entry populated");
        send(from, frame);
        std::thread::sleep(Duration::from_millis(300));
        (neighbour(lab, addr), victim)
    }

    #[test]
    fn vlan_tagged_arp_cannot_move_another_sandboxs_address() {
        if !privileged() || !python_ok() {
            return;
        }
        let lab = Lab::new("vlanarp", false);
        let attacker = link_mac(Some(&lab.sbx1), "eth0").unwrap();
        for vlan in ["0", "5"] {
            let (now, victim) = poison_attempt(
                &lab,
                SBX2_V4,
                &["arp-reply", &attacker, SBX2_V4, "10.77.0.1", vlan],
            );
            assert_eq!(now, victim, "VLAN {vlan} tagged ARP moved the entry");
        }
        // From a port that is not (or no longer) registered: the outer type reads 0x8100, so
        // only matching on the protocol (and dropping unregistered agent ports) stops it.
        let unregistered = link_mac(Some(&lab.sbx3), "eth0").unwrap();
        for vlan in ["0", "5"] {
            let (now, victim) = poison_from(
                &lab,
                &lab.sbx3,
                SBX2_V4,
                &["arp-reply", &unregistered, SBX2_V4, "10.77.0.1", vlan],
            );
            assert_eq!(
                now, victim,
                "VLAN {vlan} tagged ARP from an unregistered port"
            );
        }
        // Untagged, the same lie is dropped too (the existing binding).
        let (now, victim) = poison_attempt(
            &lab,
            SBX2_V4,
            &["arp-reply", &attacker, SBX2_V4, "10.77.0.1"],
        );
        assert_eq!(now, victim, "untagged ARP moved the entry");
    }

    #[test]
    fn neighbour_advertisements_only_for_own_addresses() {
        if !privileged() || !python_ok() {
            return;
        }
        let lab = Lab::new("na", false);
        let attacker = link_mac(Some(&lab.sbx1), "eth0").unwrap();
        for (src, vlan) in [
            ("fe80::11", None),
            ("fd77::11", None),
            ("fe80::11", Some("0")),
        ] {
            let mut frame = vec!["na", attacker.as_str(), src, "fd77::12"];
            frame.extend(vlan);
            let (now, victim) = poison_attempt(&lab, "fd77::12", &frame);
            assert_eq!(now, victim, "NA from {src} (vlan {vlan:?}) moved the entry");
        }
    }

    #[test]
    fn unregistered_agent_ports_cannot_talk_to_each_other() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("unreg", false);
        lab.assert_all(&[p(
            "sbx3 (unregistered) -> sbx1:22",
            &lab.sbx3,
            "10.77.0.11:22",
            Blocked,
        )]);
        // Without br_netfilter's detour through the IP hooks (a Docker host has it on), bridged
        // frames between two ports see only the bridge table, as on most hosts.
        exec_in(
            &lab.router,
            "sh",
            &["-c", "for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e \"$f\" ] && echo 0 > \"$f\"; done; true"],
        )
        .unwrap();
        // Addresses outside the agent subnet, so only the port rules can stop the frames.
        for (ns, addr) in [
            (&lab.sbx2, "192.168.99.2/24"),
            (&lab.sbx3, "192.168.99.3/24"),
        ] {
            exec_in(ns, "ip", &["addr", "add", addr, "dev", "eth0"]).unwrap();
        }
        // sbx2 leaves the registry: now two unregistered agent ports share the bridge.
        lab.runtime
            .block_on(lab.firewall.remove(Vmid::new(102).unwrap()))
            .unwrap();
        lab.assert_all(&[
            p(
                "sbx3 -> sbx2:22 (both unregistered)",
                &lab.sbx3,
                "10.77.0.12:22",
                Blocked,
            ),
            p(
                "sbx3 -> sbx2 on a foreign subnet",
                &lab.sbx3,
                "192.168.99.2:22",
                Blocked,
            ),
            p(
                "sbx2 -> sbx3-side wan (unregistered)",
                &lab.sbx2,
                "203.0.113.10:80",
                Blocked,
            ),
            p(
                "sbx3 -> sbx2 fe80:22",
                &lab.sbx3,
                "[fe80::12%eth0]:22",
                Blocked,
            ),
            p(
                "sbx1 still reaches wan",
                &lab.sbx1,
                "203.0.113.10:80",
                Reach,
            ),
        ]);
    }

    #[test]
    fn host_ports_answer_only_on_the_gateway_address() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("gwonly", false);
        lab.assert_all(&[
            p(
                "sbx1 -> guest listener on gateway",
                &lab.sbx1,
                "10.77.0.1:8844",
                Reach,
            ),
            p(
                "sbx1 -> host LAN address :8844",
                &lab.sbx1,
                "192.168.50.1:8844",
                Blocked,
            ),
            p(
                "sbx1 -> host uplink address :8844",
                &lab.sbx1,
                "203.0.113.1:8844",
                Blocked,
            ),
            p(
                "sbx1 -> host tailnet address :8844",
                &lab.sbx1,
                "100.64.0.1:8844",
                Blocked,
            ),
            p(
                "sbx1 -> host LAN6 address :8844",
                &lab.sbx1,
                "[fd12::1]:8844",
                Blocked,
            ),
        ]);
    }

    #[test]
    fn prefixes_that_embed_private_ipv4_are_blocked() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("nat64", false);
        // The wan host answers on these addresses and the router routes them to it, so only
        // the policy stands between a sandbox and 192.168.50.10 behind a NAT64/6to4 relay.
        let extra = [
            ("64:ff9b::c0a8:320a", true),
            ("64:ff9b:1::c0a8:320a", true),
            ("2002:c0a8:320a::1", true),
            ("fec0::10", true),
            ("192.0.0.8", false),
            ("240.0.0.10", false),
        ];
        for (addr, v6) in extra {
            let (fam, plen, via) = if v6 {
                ("-6", "128", "2001:db8:113::10")
            } else {
                ("-4", "32", "203.0.113.10")
            };
            let cidr = format!("{addr}/{plen}");
            let mut add = vec![fam, "addr", "add", cidr.as_str(), "dev", "eth0"];
            if v6 {
                add.push("nodad");
            }
            exec_in(&lab.wan, "ip", &add).unwrap();
            exec_in(&lab.router, "ip", &[fam, "route", "add", &cidr, "via", via]).unwrap();
        }
        let specs: Vec<_> = extra
            .iter()
            .map(|(addr, v6)| {
                let target = if *v6 {
                    format!("[{addr}]:80")
                } else {
                    format!("{addr}:80")
                };
                p(&format!("sbx1 -> {addr}"), &lab.sbx1, &target, Blocked)
            })
            .collect();
        lab.assert_all(&specs);
    }

    #[test]
    fn tables_changed_behind_the_daemons_back_are_put_back() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("enforce", false);
        let fw = &lab.firewall;
        let before = lab.agentlab_listing();
        assert!(
            !lab.runtime.block_on(fw.enforce()).unwrap(),
            "nothing changed yet"
        );
        // `agentlab net delete` (or anyone) removes the bridge table: sandboxes lose their
        // layer-2 isolation until the daemon notices.
        lab.nft(&["delete", "table", "bridge", "agentlab"]);
        assert!(lab.runtime.block_on(fw.enforce()).unwrap(), "repaired");
        assert_eq!(lab.agentlab_listing(), before, "base and sandboxes back");
        // An element deleted from a set is noticed too.
        lab.nft(&[
            "delete",
            "element",
            "inet",
            "agentlab",
            "nat_v4",
            "{ 10.77.0.12 }",
        ]);
        assert!(lab.runtime.block_on(fw.enforce()).unwrap());
        assert_eq!(lab.agentlab_listing(), before);
        lab.assert_all(&[p(
            "sbx2 -> wan after repair",
            &lab.sbx2,
            "203.0.113.10:80",
            Reach,
        )]);
    }

    #[test]
    fn restore_on_a_fresh_firewall_leaves_no_window() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("restore", false);
        let before = lab.agentlab_listing();
        // A new daemon process: a firewall with an empty record restores the running sandboxes.
        let runner = std::sync::Arc::new(agentlab_net::ProcessRunner::in_netns(
            lab.cfg.nft_path.clone(),
            lab.router.clone(),
        ));
        let fresh = agentlab_net::NftFirewall::with_runner(lab.cfg.clone(), runner).unwrap();
        let nets = [
            lab.sandbox(
                101,
                &lab.sbx1,
                "tap101i0",
                "10.77.0.11",
                agentlab_core::Egress::Nat,
            ),
            lab.sandbox(
                101,
                &lab.sbx1,
                "tap101i0",
                "fd77::11",
                agentlab_core::Egress::Nat,
            ),
            lab.sandbox(
                102,
                &lab.sbx2,
                "tap102i0",
                SBX2_V4,
                agentlab_core::Egress::Nat,
            ),
            lab.sandbox(
                102,
                &lab.sbx2,
                "tap102i0",
                "fd77::12",
                agentlab_core::Egress::Nat,
            ),
        ];
        lab.runtime.block_on(fresh.restore(&nets)).unwrap();
        assert_eq!(lab.agentlab_listing(), before);
        lab.assert_all(&[p(
            "sbx1 -> wan after restore",
            &lab.sbx1,
            "203.0.113.10:80",
            Reach,
        )]);
    }
}
