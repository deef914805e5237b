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

/// Counts `apply` calls and keeps their scripts; each takes a little while, like `nft -f`.
#[derive(Debug, Default)]
struct SlowRunner {
    scripts: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl crate::runner::NftRunner for SlowRunner {
    async fn apply(&self, script: &str) -> Result<(), NetError> {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if script.contains("10.77.0.66") {
            return Err(NetError::Rejected("refused for the test".into()));
        }
        self.scripts.lock().unwrap().push(script.to_owned());
        Ok(())
    }

    async fn query<'a>(&self, _args: &'a [&'a str]) -> Result<String, NetError> {
        Ok(String::new())
    }
}

fn nth(n: u32) -> SandboxNet {
    SandboxNet {
        vmid: Vmid::new(9100 + n).unwrap(),
        iface: format!("tap{}i0", 9100 + n),
        mac: format!("02:a9:00:00:24:{n:02x}"),
        ip: format!("10.77.0.{}", 10 + n).parse().unwrap(),
        egress: Egress::Nat,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allows_share_batches_and_keep_their_own_results() {
    let runner = Arc::new(SlowRunner::default());
    let fw = Arc::new(NftFirewall::with_runner(NetConfig::default(), runner.clone()).unwrap());
    fw.ensure_base().await.unwrap();
    let base_applies = runner.scripts.lock().unwrap().len();
    let mut set = tokio::task::JoinSet::new();
    for n in 1..=30 {
        let fw = Arc::clone(&fw);
        set.spawn(async move { (n, fw.allow(&nth(n)).await) });
    }
    // Two more: one whose port is taken by sandbox 1, one nft refuses.
    let (fw2, fw3) = (Arc::clone(&fw), Arc::clone(&fw));
    set.spawn(async move {
        let mut clash = nth(31);
        clash.iface = "tap9101i0".into();
        (31, fw2.allow(&clash).await)
    });
    set.spawn(async move {
        let mut refused = nth(32);
        refused.ip = "10.77.0.66".parse().unwrap();
        (32, fw3.allow(&refused).await)
    });
    let mut results = std::collections::BTreeMap::new();
    while let Some(r) = set.join_next().await {
        let (n, r) = r.unwrap();
        results.insert(n, r);
    }
    for n in 2..=30 {
        assert!(results[&n].is_ok(), "sandbox {n}: {:?}", results[&n]);
    }
    // Whichever came first, exactly one of sandbox 1 and the clash holds the port.
    let (one, clash) = (&results[&1], &results[&31]);
    assert!(
        matches!((one, clash), (Ok(()), Err(FirewallError::Invalid(_))))
            || matches!((one, clash), (Err(FirewallError::Invalid(_)), Ok(()))),
        "{one:?} / {clash:?}"
    );
    assert!(
        matches!(results[&32], Err(FirewallError::Rejected(_))),
        "{:?}",
        results[&32]
    );
    let scripts = runner.scripts.lock().unwrap()[base_applies..].to_vec();
    let all = scripts.concat();
    // Sandbox 1 is applied only when it won the port; otherwise the clash (31) was.
    let winner = if one.is_ok() { 1 } else { 31 };
    for n in (2..=30).chain([winner]) {
        assert!(
            all.contains(&format!("10.77.0.{}", 10 + n)),
            "sandbox {n} never applied"
        );
    }
    assert!(!all.contains("10.77.0.66"));
    assert!(
        scripts.len() < 15,
        "32 concurrent changes took {} nft transactions",
        scripts.len()
    );
    // Removal goes through the same queue.
    fw.remove(Vmid::new(9105).unwrap()).await.unwrap();
    let last = runner.scripts.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.contains("delete element") && last.contains("10.77.0.15"),
        "{last}"
    );
}
