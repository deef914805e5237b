//! The policy proven with real packets between network namespaces (root + nft required; see
//! `support::privileged`). No packet ever leaves the namespaces these tests create.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {

    use super::support::{Lab, p, privileged};
    use agentlab_core::{Egress, Firewall, Vmid};
    use agentlab_net::check::{Expect, LiveCheck, LiveCheckOptions, ProbeResult};
    use agentlab_net::netns::ip;
    use agentlab_net::probe::Outcome;

    use Expect::{Blocked, Reach};

    #[test]
    fn probe_matrix_ipv4_and_ipv6() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("m", true);
        let (s1, s3, lan, ts, wan) = (&lab.sbx1, &lab.sbx3, &lab.lan, &lab.tailnet, &lab.wan);
        let mut spoof4 = p(
            "sbx1 spoofed source 10.77.0.99 -> wan",
            s1,
            "203.0.113.10:80",
            Blocked,
        );
        spoof4.bind = Some("10.77.0.99".parse().unwrap());
        let mut spoof6 = p(
            "sbx1 spoofed source fd77::99 -> wan6",
            s1,
            "[2001:db8:113::10]:80",
            Blocked,
        );
        spoof6.bind = Some("fd77::99".parse().unwrap());
        let specs = vec![
            p("sbx1 -> wan", s1, "203.0.113.10:80", Reach),
            p("sbx1 -> wan6", s1, "[2001:db8:113::10]:80", Reach),
            p("sbx1 -> guest listener", s1, "10.77.0.1:8844", Reach),
            p("sbx1 -> guest listener v6", s1, "[fd77::1]:8844", Reach),
            p("sbx1 -> lan", s1, "192.168.50.10:80", Blocked),
            p("sbx1 -> lan6 (fc00::/7)", s1, "[fd12::10]:80", Blocked),
            p("sbx1 -> 172.16 via uplink", s1, "172.16.5.10:80", Blocked),
            p(
                "sbx1 -> fc00::/7 via uplink",
                s1,
                "[fd00:bad::10]:80",
                Blocked,
            ),
            p("sbx1 -> metadata", s1, "169.254.169.254:80", Blocked),
            p("sbx1 -> tailnet", s1, "100.64.0.10:80", Blocked),
            p("sbx1 -> tailnet6", s1, "[fd7a:115c:a1e0::10]:80", Blocked),
            p("sbx1 -> router:8006", s1, "10.77.0.1:8006", Blocked),
            p("sbx1 -> router:22", s1, "10.77.0.1:22", Blocked),
            p("sbx1 -> router6:8006", s1, "[fd77::1]:8006", Blocked),
            p("sbx1 -> router6:22", s1, "[fd77::1]:22", Blocked),
            p(
                "sbx1 -> router uplink addr:22",
                s1,
                "203.0.113.1:22",
                Blocked,
            ),
            p(
                "sbx1 -> router fe80::1:22",
                s1,
                "[fe80::1%eth0]:22",
                Blocked,
            ),
            p("sbx1 -> sbx2:22", s1, "10.77.0.12:22", Blocked),
            p("sbx1 -> sbx2 v6:22", s1, "[fd77::12]:22", Blocked),
            p("sbx1 -> sbx2 fe80:22", s1, "[fe80::12%eth0]:22", Blocked),
            spoof4,
            spoof6,
            p("unregistered port -> wan", s3, "203.0.113.10:80", Blocked),
            p(
                "unregistered port -> guest listener",
                s3,
                "10.77.0.1:8844",
                Blocked,
            ),
            p("unregistered port -> sbx1", s3, "10.77.0.11:22", Blocked),
            p("tailnet -> sbx1:22", ts, "10.77.0.11:22", Reach),
            p("tailnet -> sbx1 v6:22", ts, "[fd77::11]:22", Reach),
            p("tailnet -> sbx1:8080", ts, "10.77.0.11:8080", Blocked),
            p("lan -> sbx1:22", lan, "10.77.0.11:22", Blocked),
            p("wan -> sbx1:22", wan, "10.77.0.11:22", Blocked),
        ];
        let results = lab.assert_all(&specs);
        // Egress is masqueraded behind the router's uplink address.
        assert_eq!(
            results[0].outcome,
            Outcome::Connected("wan 203.0.113.1".into())
        );
        assert_eq!(
            results[1].outcome,
            Outcome::Connected("wan 2001:db8:113::1".into())
        );
        // The tailnet sees the sandbox unNATed.
        assert_eq!(
            results[25].outcome,
            Outcome::Connected("sbx1 100.64.0.10".into())
        );
    }

    #[test]
    fn spoofed_mac_is_dropped_and_restoring_it_works_again() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("mac", false);
        let real = agentlab_net::netns::link_mac(Some(&lab.sbx1), "eth0").unwrap();
        lab.assert_all(&[p(
            "sbx1 -> wan (real MAC)",
            &lab.sbx1,
            "203.0.113.10:80",
            Reach,
        )]);
        ip(
            Some(&lab.sbx1),
            &["link", "set", "dev", "eth0", "address", "02:00:5e:00:53:99"],
        )
        .unwrap();
        lab.assert_all(&[
            p(
                "sbx1 spoofed MAC -> wan",
                &lab.sbx1,
                "203.0.113.10:80",
                Blocked,
            ),
            p(
                "sbx1 spoofed MAC -> wan6",
                &lab.sbx1,
                "[2001:db8:113::10]:80",
                Blocked,
            ),
            p(
                "sbx1 spoofed MAC -> guest listener",
                &lab.sbx1,
                "10.77.0.1:8844",
                Blocked,
            ),
        ]);
        ip(
            Some(&lab.sbx1),
            &["link", "set", "dev", "eth0", "address", &real],
        )
        .unwrap();
        lab.assert_all(&[p(
            "sbx1 -> wan (MAC restored)",
            &lab.sbx1,
            "203.0.113.10:80",
            Reach,
        )]);
    }

    #[test]
    fn tailnet_ssh_disabled_drops_inbound() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("ts", false);
        lab.assert_all(&[
            p("tailnet -> sbx1:22", &lab.tailnet, "10.77.0.11:22", Blocked),
            p(
                "tailnet -> sbx1 v6:22",
                &lab.tailnet,
                "[fd77::11]:22",
                Blocked,
            ),
            p("sbx1 -> tailnet", &lab.sbx1, "100.64.0.10:80", Blocked),
        ]);
    }

    #[test]
    fn remove_drops_only_that_sandbox() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("rm", false);
        lab.runtime
            .block_on(lab.firewall.remove(Vmid::new(101).unwrap()))
            .unwrap();
        lab.runtime
            .block_on(lab.firewall.remove(Vmid::new(101).unwrap()))
            .unwrap();
        lab.assert_all(&[
            p("removed sbx1 -> wan", &lab.sbx1, "203.0.113.10:80", Blocked),
            p(
                "removed sbx1 -> wan6",
                &lab.sbx1,
                "[2001:db8:113::10]:80",
                Blocked,
            ),
            p(
                "removed sbx1 -> guest listener",
                &lab.sbx1,
                "10.77.0.1:8844",
                Blocked,
            ),
            p(
                "sbx2 -> wan (untouched)",
                &lab.sbx2,
                "203.0.113.10:80",
                Reach,
            ),
            p(
                "sbx2 -> guest listener (untouched)",
                &lab.sbx2,
                "10.77.0.1:8844",
                Reach,
            ),
        ]);
        let state = lab.runtime.block_on(lab.firewall.describe()).unwrap();
        assert!(state.base_applied);
        let vmids: Vec<u32> = state.sandboxes.iter().map(|s| s.vmid.get()).collect();
        assert_eq!(vmids, [102, 102]);
    }

    #[test]
    fn modes_allowlist_and_off() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("mode", false);
        let allow = Egress::Allowlist {
            cidrs: vec![
                "203.0.113.10/32".parse().unwrap(),
                "192.168.50.0/24".parse().unwrap(),
            ],
            domains: vec![],
        };
        let s1 = lab.sandbox(101, &lab.sbx1, "tap101i0", super::support::SBX1_V4, allow);
        let s2 = lab.sandbox(
            102,
            &lab.sbx2,
            "tap102i0",
            super::support::SBX2_V4,
            Egress::Off,
        );
        lab.runtime.block_on(async {
            lab.firewall.allow(&s1).await.unwrap();
            lab.firewall.allow(&s2).await.unwrap();
        });
        // Extra wan address outside the allowlist.
        ip(
            Some(&lab.wan),
            &["addr", "add", "203.0.113.20/24", "dev", "eth0"],
        )
        .unwrap();
        lab.assert_all(&[
            p(
                "allowlist sbx1 -> listed wan",
                &lab.sbx1,
                "203.0.113.10:80",
                Reach,
            ),
            p(
                "allowlist sbx1 -> unlisted wan",
                &lab.sbx1,
                "203.0.113.20:80",
                Blocked,
            ),
            p(
                "allowlist sbx1 -> listed LAN (blocked wins)",
                &lab.sbx1,
                "192.168.50.10:80",
                Blocked,
            ),
            p(
                "allowlist sbx1 -> guest listener",
                &lab.sbx1,
                "10.77.0.1:8844",
                Reach,
            ),
            p("off sbx2 -> wan", &lab.sbx2, "203.0.113.10:80", Blocked),
            p(
                "off sbx2 -> guest listener",
                &lab.sbx2,
                "10.77.0.1:8844",
                Reach,
            ),
        ]);
    }

    #[test]
    fn reapplying_is_idempotent_and_deleting_restores_the_host() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("idem", false);
        let first = lab.agentlab_listing();
        lab.runtime.block_on(async {
            lab.firewall.ensure_base().await.unwrap();
            lab.firewall.ensure_base().await.unwrap();
        });
        assert_eq!(
            lab.agentlab_listing(),
            first,
            "re-applying changed the ruleset"
        );
        lab.assert_all(&[p(
            "sbx1 -> wan after re-apply",
            &lab.sbx1,
            "203.0.113.10:80",
            Reach,
        )]);

        let ruleset = lab.nft(&["list", "ruleset"]);
        assert!(
            ruleset.contains("table inet foreign"),
            "foreign table must survive applying"
        );
        lab.runtime.block_on(lab.firewall.delete_tables()).unwrap();
        lab.runtime.block_on(lab.firewall.delete_tables()).unwrap();
        let after = lab.nft(&["list", "ruleset"]);
        assert!(
            !after.contains("agentlab"),
            "AgentLab rules left behind:\n{after}"
        );
        assert_eq!(
            after, lab.foreign_before,
            "host ruleset not restored exactly"
        );
        assert!(
            !lab.runtime
                .block_on(lab.firewall.describe())
                .unwrap()
                .base_applied
        );

        // Control: without AgentLab's tables the topology lets everything through, so the drops
        // seen by the other tests are the policy's doing.
        let (s1, s3) = (&lab.sbx1, &lab.sbx3);
        let mut spoof = p("sbx1 spoofed source -> wan", s1, "203.0.113.10:80", Reach);
        spoof.bind = Some("10.77.0.99".parse().unwrap());
        lab.assert_all(&[
            p("no policy: sbx1 -> lan", s1, "192.168.50.10:80", Reach),
            p("no policy: sbx1 -> lan6", s1, "[fd12::10]:80", Reach),
            p(
                "no policy: sbx1 -> metadata",
                s1,
                "169.254.169.254:80",
                Reach,
            ),
            p("no policy: sbx1 -> tailnet", s1, "100.64.0.10:80", Reach),
            p(
                "no policy: sbx1 -> router:8006",
                s1,
                "10.77.0.1:8006",
                Reach,
            ),
            p("no policy: sbx1 -> router6:22", s1, "[fd77::1]:22", Reach),
            p("no policy: sbx1 -> sbx2:22", s1, "10.77.0.12:22", Reach),
            p(
                "no policy: sbx1 -> sbx2 fe80:22",
                s1,
                "[fe80::12%eth0]:22",
                Reach,
            ),
            p(
                "no policy: unregistered -> guest listener",
                s3,
                "10.77.0.1:8844",
                Reach,
            ),
            p(
                "no policy: lan -> sbx1:22",
                &lab.lan,
                "10.77.0.11:22",
                Reach,
            ),
            spoof,
        ]);
    }

    #[test]
    fn live_check_passes_against_the_lab_router() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("chk", false);
        let mut opts = LiveCheckOptions::for_config(&lab.cfg);
        opts.name = format!("alck{}", std::process::id() % 100_000);
        opts.host_netns = Some(lab.router.clone());
        opts.reach = vec!["203.0.113.10:80".into(), "[2001:db8:113::10]:80".into()];
        opts.blocked = [
            "192.168.50.10:80",
            "100.64.0.10:80",
            "169.254.169.254:80",
            "10.77.0.11:22",
        ]
        .map(String::from)
        .to_vec();
        opts.timeout = super::support::PROBE_TIMEOUT;
        let check = LiveCheck::new(&lab.firewall, lab.probe.clone(), opts.clone());
        let results = lab.runtime.block_on(check.run()).unwrap();
        eprintln!("{}", agentlab_net::check::render_table(&results));
        assert!(results.len() >= 10);
        assert!(results.iter().all(|r| r.passed()), "live check failed");
        // The throwaway namespace and its firewall elements are gone again.
        assert!(ip(None, &["netns", "pids", &opts.name]).is_err());
        assert!(
            !lab.nft(&["list", "set", "bridge", "agentlab", "ports"])
                .contains(&opts.name)
        );
        assert!(
            results
                .iter()
                .any(|r: &ProbeResult| r.spec.name.contains("spoofed MAC"))
        );
    }

    #[test]
    fn dry_run_plan_matches_what_apply_installs() {
        if !privileged() {
            return;
        }
        let cfg = agentlab_net::NetConfig {
            nft_path: super::support::nft_path().unwrap(),
            ..Default::default()
        };
        let ns =
            agentlab_net::netns::Netns::create(&format!("al{}-plan", std::process::id())).unwrap();
        let runner = std::sync::Arc::new(agentlab_net::ProcessRunner::in_netns(
            cfg.nft_path.clone(),
            ns.name(),
        ));
        let fw = agentlab_net::NftFirewall::with_runner(cfg.clone(), runner).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(fw.listing()).unwrap(), None);
        rt.block_on(fw.ensure_base()).unwrap();
        let live = rt.block_on(fw.listing()).unwrap().unwrap();
        let planned = agentlab_net::plan::planned_listing(&cfg).unwrap();
        assert_eq!(agentlab_net::plan::line_diff(&live, &planned), "");
        assert!(live.contains("table inet agentlab") && live.contains("table bridge agentlab"));
    }
}
