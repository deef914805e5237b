//! Storage-aware placement, node loss and per-node clone limits, and doctor's per-node
//! report, against the simulator.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use agentlab_core::hypervisor::{Hypervisor, VmSpec};
use agentlab_pve::sim::{FaultKind, FaultRule, SeedVm};
use agentlab_pve::{CheckResult, ProxmoxHypervisor, doctor};
use common::{assert_schema_clean, setup, spec};

fn by_name(results: &[CheckResult]) -> BTreeMap<String, CheckResult> {
    results
        .iter()
        .map(|r| (r.name.clone(), r.clone()))
        .collect()
}

fn auto(sim: &agentlab_pve::sim::Simulator) -> ProxmoxHypervisor {
    let mut opts = common::options(sim);
    opts.node = "auto".into();
    ProxmoxHypervisor::new(opts).unwrap()
}

#[tokio::test]
async fn doctor_reports_per_node_what_placement_can_use() {
    let Some((sim, _)) = setup(|_| {}).await else {
        return;
    };
    let hv = auto(&sim);
    let names = by_name(&doctor(hv.options(), common::TEMPLATE).await);
    let pve1 = &names["node.pve1"];
    assert!(
        pve1.ok && pve1.detail.contains("placement uses it"),
        "{pve1:?}"
    );
    assert!(pve1.detail.contains("online") && pve1.detail.contains("GiB"));
    let pve2 = &names["node.pve2"];
    assert!(
        pve2.ok
            && pve2.detail.contains("placement does not use it")
            && pve2.detail.contains("local-lvm"),
        "{pve2:?}"
    );
    sim.set_node_online("pve2", false);
    let names = by_name(&doctor(hv.options(), common::TEMPLATE).await);
    let pve2 = &names["node.pve2"];
    assert!(!pve2.ok && pve2.detail.contains("offline"), "{pve2:?}");
    assert!(names["node.pve1"].ok);
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn doctor_bridge_check_reports_the_real_api_error() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    sim.add_fault(FaultRule::always(
        "GET",
        "/nodes/pve1/network",
        FaultKind::Http {
            status: 403,
            message: "Permission check failed (/nodes/pve1, Sys.Audit)".into(),
        },
    ));
    let names = by_name(&doctor(hv.options(), common::TEMPLATE).await);
    let bridge = &names["bridge"];
    assert!(!bridge.ok, "{bridge:?}");
    assert!(
        bridge.detail.contains("Permission check failed") && !bridge.detail.contains("not found"),
        "{bridge:?}"
    );
}

#[tokio::test]
async fn offline_node_gets_no_new_sandboxes() {
    let Some((sim, _)) = setup(|_| {}).await else {
        return;
    };
    sim.add_vm(&SeedVm {
        storage: "shared-nfs".into(),
        ..SeedVm::template(9100, "pve1")
    });
    let hv = auto(&sim);
    let s = VmSpec {
        template_vmid: 9100,
        ..spec(9010)
    };
    sim.set_node_online("pve2", false);
    let h = hv.create(&s).await.unwrap();
    assert_eq!(h.node, "pve1", "pve2 has more free memory but is offline");
    sim.set_node_online("pve2", true);
    let s = VmSpec {
        template_vmid: 9100,
        ..spec(9011)
    };
    let h = hv.create(&s).await.unwrap();
    assert_eq!(h.node, "pve2", "back online: most free memory");
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn per_node_clone_limit_spreads_concurrent_creates() {
    let Some((sim, _)) = setup(|c| c.clone_duration = Duration::from_millis(300)).await else {
        return;
    };
    // A template copy on pve2 (same name): both nodes can clone locally.
    sim.add_vm(&SeedVm {
        name: "tmpl-9000".into(),
        storage: "local-lvm".into(),
        ..SeedVm::template(9200, "pve2")
    });
    let run = |limit: usize, base: u32| {
        let mut opts = common::options(&sim);
        opts.node = "auto".into();
        opts.max_clones_per_node = limit;
        let hv = std::sync::Arc::new(ProxmoxHypervisor::new(opts).unwrap());
        async move {
            let tasks: Vec<_> = (0..2)
                .map(|i| {
                    let hv = std::sync::Arc::clone(&hv);
                    tokio::spawn(async move { hv.create(&spec(base + i)).await.unwrap().node })
                })
                .collect();
            let mut nodes = Vec::new();
            for t in tasks {
                nodes.push(t.await.unwrap());
            }
            nodes.sort();
            nodes
        }
    };
    assert_eq!(
        run(1, 9020).await,
        vec!["pve1".to_owned(), "pve2".to_owned()],
        "limit 1: the second clone goes to the other node"
    );
    assert_eq!(
        run(3, 9030).await,
        vec!["pve2".to_owned(), "pve2".to_owned()],
        "limit 3: both fit on the node with most free memory"
    );
    let from_copy = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/nodes/pve2/qemu/9200/clone")
        .count();
    assert_eq!(from_copy, 3, "pve2 clones come from its local copy");
    assert_schema_clean(&sim);
}

/// The standalone simulator's control endpoint takes a node down and brings it back (with
/// the token only); the backend's node health follows, with clone tasks and memory.
#[tokio::test]
async fn the_control_endpoint_takes_a_node_down_and_node_health_follows() {
    use agentlab_core::hypervisor::Hypervisor as _;
    let Some((sim, _)) = setup(|_| {}).await else {
        return;
    };
    let hv = auto(&sim);
    let health = hv.node_health().expect("PVE reports node health");
    let nodes = health.node_status().await.unwrap();
    let names: Vec<(&str, bool)> = nodes.iter().map(|n| (n.name.as_str(), n.online)).collect();
    assert_eq!(names, [("pve1", true), ("pve2", true)]);
    // 64 GiB, 8 GiB base load, and the foreign VM 100 running there with 2 GiB.
    assert_eq!(nodes[1].mem_free, 54 << 30);
    assert_eq!((nodes[0].clone_tasks, nodes[0].clone_limit), (0, 3));

    let client = reqwest::Client::new();
    let token = format!(
        "PVEAPIToken={}={}",
        sim.config().token_id,
        sim.config().token_secret
    );
    let post = |what: &str, auth: bool| {
        let mut r = client.post(format!("{}/_sim/nodes/pve2/{what}", sim.url()));
        if auth {
            r = r.header("Authorization", token.clone());
        }
        r.send()
    };
    assert_eq!(post("offline", false).await.unwrap().status(), 401);
    assert_eq!(post("offline", true).await.unwrap().status(), 200);
    let nodes = health.node_status().await.unwrap();
    assert!(!nodes[1].online && nodes[1].mem_free == 0, "{nodes:?}");
    assert_eq!(post("online", true).await.unwrap().status(), 200);
    assert!(health.node_status().await.unwrap()[1].online);
    // doctor reads the clone tasks PVE runs on each node.
    let r = by_name(&doctor(&common::options(&sim), common::TEMPLATE).await);
    let pve1 = &r["node.pve1"];
    assert!(
        pve1.ok && pve1.detail.contains("memory free, 0 clone tasks running"),
        "{pve1:?}"
    );
    assert_schema_clean(&sim);
}
