//! 200 creates at once across two nodes (`node: auto`, a template on each) against the
//! simulator: every create succeeds, and no node ever answers more requests at once than the
//! per-node budget (default 3). The timed figures are in `benches/orchestration.rs`.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::hypervisor::Hypervisor;
use agentlab_pve::sim::SeedVm;
use agentlab_pve::{PollOptions, ProxmoxHypervisor};
use common::{TEMPLATE, options, setup, spec};

const CREATES: u32 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_creates_stay_within_the_node_budget_without_errors() {
    let Some((sim, _)) = setup(|c| {
        c.request_delay = Duration::from_millis(2);
        c.task_duration = Duration::from_millis(5);
        c.clone_duration = Duration::from_millis(5);
        c.lock_timeout = Duration::from_secs(10);
    })
    .await
    else {
        return;
    };
    // A copy of the template on pve2 (same name), so placement uses both nodes.
    sim.add_vm(&SeedVm {
        name: format!("tmpl-{TEMPLATE}"),
        ..SeedVm::template(TEMPLATE + 1, "pve2")
    });
    let mut o = options(&sim);
    o.node = "auto".into();
    let budget = PollOptions::default().max_inflight_per_node;
    assert_eq!(o.poll.max_inflight_per_node, budget);
    let hv = Arc::new(ProxmoxHypervisor::new(o).expect("backend"));
    let mut set = tokio::task::JoinSet::new();
    for n in 0..CREATES {
        let hv = Arc::clone(&hv);
        set.spawn(async move {
            let s = spec(1000 + n);
            hv.create(&s).await.map(|h| (s.vmid.get(), h.node))
        });
    }
    let mut errors = Vec::new();
    let mut by_node: BTreeMap<String, u32> = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        match r.expect("join") {
            Ok((vmid, node)) => {
                assert_eq!(sim.vm_node(vmid).as_deref(), Some(node.as_str()));
                *by_node.entry(node).or_default() += 1;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert!(
        errors.is_empty(),
        "{} creates failed: {errors:?}",
        errors.len()
    );
    assert_eq!(by_node.values().sum::<u32>(), CREATES);
    assert_eq!(by_node.len(), 2, "both nodes got sandboxes: {by_node:?}");
    let most = sim.max_inflight_by_node();
    assert!(
        most.values().all(|m| *m <= budget),
        "per-node requests in flight above the budget {budget}: {most:?}"
    );
    assert!(
        most.values().any(|m| *m == budget),
        "the load reached the budget: {most:?}"
    );
}
