//! `NftFirewall` logic against the recording runner: which batches it sends and what it records.

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentlab_core::{Egress, Firewall, FirewallError, SandboxNet, Vmid};
    use agentlab_net::{NetConfig, NftFirewall, RecordingRunner};

    fn sbx(vmid: u32, iface: &str, ip: &str) -> SandboxNet {
        SandboxNet {
            vmid: Vmid::new(vmid).unwrap(),
            iface: iface.into(),
            mac: format!("02:00:00:00:00:{:02x}", vmid % 256),
            ip: ip.parse().unwrap(),
            egress: Egress::Nat,
        }
    }

    fn firewall() -> (NftFirewall, Arc<RecordingRunner>) {
        let runner = Arc::new(RecordingRunner::new());
        (
            NftFirewall::with_runner(NetConfig::default(), runner.clone()).unwrap(),
            runner,
        )
    }

    #[tokio::test]
    async fn ensure_base_re_adds_known_sandboxes_in_the_same_batch() {
        let (fw, runner) = firewall();
        fw.ensure_base().await.unwrap();
        fw.allow(&sbx(101, "tap101i0", "10.77.0.11")).await.unwrap();
        fw.ensure_base().await.unwrap();
        let batches = runner.batches();
        assert_eq!(batches.len(), 3);
        assert!(!batches[0].contains("add element"));
        assert!(batches[2].contains("delete table inet agentlab"));
        assert!(batches[2].contains("add element inet agentlab nat_v4 { 10.77.0.11 }"));
    }

    #[tokio::test]
    async fn restore_installs_base_and_every_sandbox_in_one_batch() {
        let (fw, runner) = firewall();
        fw.restore(&[
            sbx(101, "tap101i0", "10.77.0.11"),
            sbx(101, "tap101i0", "fd77::11"),
            sbx(102, "tap102i0", "10.77.0.12"),
        ])
        .await
        .unwrap();
        let batches = runner.batches();
        assert_eq!(batches.len(), 1, "no window without rules: {batches:?}");
        assert!(batches[0].contains("delete table inet agentlab"));
        for el in [
            "nat_v4 { 10.77.0.11 }",
            "nat_v6 { fd77::11 }",
            "nat_v4 { 10.77.0.12 }",
        ] {
            assert!(batches[0].contains(el), "{el}");
        }
        // What it restored is what it knows: a later base refresh re-adds the same.
        fw.ensure_base().await.unwrap();
        assert!(runner.batches()[1].contains("nat_v4 { 10.77.0.12 }"));
        // A bad entry refuses the whole restore before anything is applied.
        let mut bad = sbx(103, "tap103i0", "10.77.0.13");
        bad.mac = "nonsense".into();
        assert!(fw.restore(&[bad]).await.is_err());
        assert_eq!(runner.batches().len(), 2);
    }

    #[tokio::test]
    async fn allow_other_family_adds_same_family_replaces() {
        let (fw, runner) = firewall();
        fw.allow(&sbx(101, "tap101i0", "10.77.0.11")).await.unwrap();
        fw.allow(&sbx(101, "tap101i0", "fd77::11")).await.unwrap();
        let second = runner.batches()[1].clone();
        assert!(
            !second.contains("delete element"),
            "dual stack adds: {second}"
        );
        fw.allow(&sbx(101, "tap101i0", "10.77.0.21")).await.unwrap();
        let third = runner.batches()[2].clone();
        assert!(third.contains("delete element inet agentlab sbx_v4 { 10.77.0.11 }"));
        assert!(
            !third.contains("delete element bridge agentlab ports"),
            "shared port kept: {third}"
        );
        assert!(!third.contains("delete element inet agentlab sbx_v6"));
        assert!(third.contains("add element inet agentlab sbx_v4 { 10.77.0.21 }"));
    }

    #[tokio::test]
    async fn conflicting_port_or_address_is_refused_without_a_batch() {
        let (fw, runner) = firewall();
        fw.allow(&sbx(101, "tap101i0", "10.77.0.11")).await.unwrap();
        let err = fw
            .allow(&sbx(102, "tap102i0", "10.77.0.11"))
            .await
            .unwrap_err();
        assert!(matches!(err, FirewallError::Invalid(_)), "{err:?}");
        let err = fw
            .allow(&sbx(102, "tap101i0", "10.77.0.12"))
            .await
            .unwrap_err();
        assert!(matches!(err, FirewallError::Invalid(_)), "{err:?}");
        let bad_mac = SandboxNet {
            mac: "ff:ff:ff:ff:ff:ff".into(),
            ..sbx(103, "tap103i0", "10.77.0.13")
        };
        assert!(matches!(
            fw.allow(&bad_mac).await,
            Err(FirewallError::Invalid(_))
        ));
        assert_eq!(runner.batches().len(), 1);
    }

    #[tokio::test]
    async fn remove_touches_only_that_sandbox_and_unknown_is_a_no_op() {
        let (fw, runner) = firewall();
        fw.remove(Vmid::new(999).unwrap()).await.unwrap();
        assert!(runner.batches().is_empty());
        fw.allow(&sbx(101, "tap101i0", "10.77.0.11")).await.unwrap();
        fw.allow(&sbx(102, "tap102i0", "10.77.0.12")).await.unwrap();
        fw.remove(Vmid::new(101).unwrap()).await.unwrap();
        let last = runner.batches().last().unwrap().clone();
        assert!(last.contains("delete element inet agentlab nat_v4 { 10.77.0.11 }"));
        assert!(!last.contains("10.77.0.12") && !last.contains("tap102i0"));
        assert!(!last.contains("table"), "no table-level statements: {last}");
    }

    #[tokio::test]
    async fn rejected_batch_is_reported_and_not_recorded() {
        let (fw, runner) = firewall();
        runner.set_reject(Some("Error: syntax error"));
        let err = fw
            .allow(&sbx(101, "tap101i0", "10.77.0.11"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FirewallError::Rejected(ref m) if m.contains("syntax")),
            "{err:?}"
        );
        runner.set_reject(None);
        fw.remove(Vmid::new(101).unwrap()).await.unwrap();
        assert!(
            runner.batches().is_empty(),
            "nothing recorded, nothing removed"
        );
    }

    #[tokio::test]
    async fn describe_verifies_the_record_against_the_kernel_sets() {
        let (fw, runner) = firewall();
        assert!(!fw.describe().await.unwrap().base_applied);
        fw.allow(&sbx(101, "tap101i0", "10.77.0.11")).await.unwrap();
        fw.allow(&sbx(102, "tap102i0", "10.77.0.12")).await.unwrap();
        runner.set_reply(Some(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "sbx_v4", "table": "agentlab", "type": "ipv4_addr", "elem": ["10.77.0.12"]}}]}"#,
        ));
        let state = fw.describe().await.unwrap();
        assert!(state.base_applied);
        let ips: Vec<String> = state.sandboxes.iter().map(|s| s.ip.to_string()).collect();
        assert_eq!(
            ips,
            ["10.77.0.12"],
            "101 is missing from the kernel, so not reported"
        );
    }
}
