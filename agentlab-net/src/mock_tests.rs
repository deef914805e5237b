//! `NftFirewall` against a mockall `MockNftRunner`: what reaches nft, and how nft failures
//! surface as typed `FirewallError`s.

use std::sync::Arc;

use agentlab_core::{Egress, Firewall, FirewallError, SandboxNet, Vmid};

use crate::error::NetError;
use crate::runner::MockNftRunner;
use crate::{NetConfig, NftFirewall};

fn sandbox() -> SandboxNet {
    SandboxNet {
        vmid: Vmid::new(9100).unwrap(),
        iface: "tap9100i0".into(),
        mac: "02:a9:00:00:23:8c".into(),
        ip: "10.77.0.2".parse().unwrap(),
        egress: Egress::Nat,
    }
}

#[tokio::test]
async fn base_policy_is_one_batch_creating_agentlabs_tables() {
    let mut nft = MockNftRunner::new();
    // After each change the firewall lists its tables to remember what it installed.
    nft.expect_query().returning(|_| Ok(String::new()));
    nft.expect_apply()
        .withf(|script| {
            script.contains("table inet agentlab") && script.contains("table bridge agentlab")
        })
        .times(1)
        .returning(|_| Ok(()));
    let fw = NftFirewall::with_runner(NetConfig::default(), Arc::new(nft)).unwrap();
    fw.ensure_base().await.unwrap();
}

#[tokio::test]
async fn nft_rejection_is_a_typed_error_and_missing_nft_is_unavailable() {
    let mut nft = MockNftRunner::new();
    // After each change the firewall lists its tables to remember what it installed.
    nft.expect_query().returning(|_| Ok(String::new()));
    nft.expect_apply()
        .times(1)
        .returning(|_| Err(NetError::Rejected("syntax error at line 3".into())));
    let fw = NftFirewall::with_runner(NetConfig::default(), Arc::new(nft)).unwrap();
    match fw.ensure_base().await {
        Err(FirewallError::Rejected(m)) => assert!(m.contains("syntax error")),
        other => panic!("expected Rejected, got {other:?}"),
    }

    let mut nft = MockNftRunner::new();
    // After each change the firewall lists its tables to remember what it installed.
    nft.expect_query().returning(|_| Ok(String::new()));
    nft.expect_apply().returning(|_| {
        Err(NetError::Spawn {
            program: "nft".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    });
    let fw = NftFirewall::with_runner(NetConfig::default(), Arc::new(nft)).unwrap();
    assert!(matches!(
        fw.ensure_base().await,
        Err(FirewallError::Unavailable(_))
    ));
}

#[tokio::test]
async fn allow_touches_only_the_sandboxs_own_elements() {
    let mut nft = MockNftRunner::new();
    // After each change the firewall lists its tables to remember what it installed.
    nft.expect_query().returning(|_| Ok(String::new()));
    nft.expect_apply().times(1).returning(|_| Ok(()));
    nft.expect_apply()
        .withf(|script| {
            script.contains("10.77.0.2")
                && script.contains("tap9100i0")
                && !script.contains("flush table")
        })
        .times(1)
        .returning(|_| Ok(()));
    let fw = NftFirewall::with_runner(NetConfig::default(), Arc::new(nft)).unwrap();
    fw.ensure_base().await.unwrap();
    fw.allow(&sandbox()).await.unwrap();
}
