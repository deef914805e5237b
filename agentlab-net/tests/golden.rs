//! Golden tests of the rendered ruleset (`UPDATE_GOLDEN=1` rewrites the files).

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use agentlab_core::{Egress, SandboxNet, Vmid};
    use agentlab_net::NetConfig;
    use agentlab_net::render::{render_base, render_sandbox_add, render_sandbox_remove};

    fn check_golden(name: &str, actual: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                path.display()
            )
        });
        assert!(
            expected == actual,
            "{} differs from the rendering (UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }

    fn sandbox(vmid: u32, ip: &str, egress: Egress) -> SandboxNet {
        SandboxNet {
            vmid: Vmid::new(vmid).unwrap(),
            iface: format!("tap{vmid}i0"),
            mac: format!("BC:24:11:00:{:02x}:01", vmid % 256),
            ip: ip.parse().unwrap(),
            egress,
        }
    }

    #[test]
    fn default_profile() {
        let cfg = NetConfig::default();
        let mut text = render_base(&cfg);
        text.push_str("\n# sandbox 101 (nat, dual stack)\n");
        text.push_str(&render_sandbox_add(
            &cfg,
            &sandbox(101, "10.77.0.11", Egress::Nat),
        ));
        text.push_str(&render_sandbox_add(
            &cfg,
            &sandbox(101, "fd77::11", Egress::Nat),
        ));
        text.push_str("\n# remove sandbox 101 (IPv4 entry)\n");
        text.push_str(&render_sandbox_remove(
            &cfg,
            &sandbox(101, "10.77.0.11", Egress::Nat),
        ));
        check_golden("default.nft", &text);
    }

    #[test]
    fn allowlist_profile() {
        let cfg = NetConfig {
            serve_dhcp: true,
            serve_dns: true,
            tailnet: agentlab_net::TailnetConfig {
                iface: Some("tailscale0".into()),
                ssh: true,
            },
            extra_blocked: vec!["198.51.100.0/24".parse().unwrap()],
            ..NetConfig::default()
        };
        let egress = Egress::Allowlist {
            cidrs: ["140.82.112.0/20", "2606:50c0::/32", "185.199.108.133/32"]
                .iter()
                .map(|c| c.parse().unwrap())
                .collect(),
            domains: vec![],
        };
        let mut text = render_base(&cfg);
        text.push_str("\n# sandbox 102 (allowlist)\n");
        text.push_str(&render_sandbox_add(
            &cfg,
            &sandbox(102, "10.77.0.12", egress.clone()),
        ));
        text.push_str(&render_sandbox_add(&cfg, &sandbox(102, "fd77::12", egress)));
        text.push_str("\n# sandbox 103 (off)\n");
        text.push_str(&render_sandbox_add(
            &cfg,
            &sandbox(103, "10.77.0.13", Egress::Off),
        ));
        check_golden("allowlist.nft", &text);
    }
}
