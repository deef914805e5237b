//! Per-node request budgets and learned task polling against the simulator.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::time::Duration;

use agentlab_core::hypervisor::Hypervisor;
use agentlab_pve::ProxmoxHypervisor;
use common::{options, setup, spec};

/// Runs 12 creates at once against a slow API (20 ms a request) with a per-node budget of
/// `per_node`; returns the most requests each node answered at once.
async fn peak_per_node(per_node: usize) -> Option<std::collections::BTreeMap<String, usize>> {
    let (sim, _) = setup(|c| c.request_delay = Duration::from_millis(20)).await?;
    let mut o = options(&sim);
    o.poll.max_inflight = 12;
    o.poll.max_inflight_per_node = per_node;
    let hv = std::sync::Arc::new(ProxmoxHypervisor::new(o).expect("backend"));
    let mut set = tokio::task::JoinSet::new();
    for n in 0..12 {
        let hv = std::sync::Arc::clone(&hv);
        set.spawn(async move { hv.create(&spec(9100 + n)).await.map(|_| ()) });
    }
    while let Some(r) = set.join_next().await {
        r.expect("join").expect("create");
    }
    Some(sim.max_inflight_by_node())
}

/// Requests to a node never exceed the node budget (3), and every create succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_to_a_node_stay_within_its_budget() {
    let Some(most) = peak_per_node(3).await else {
        return;
    };
    assert!(
        most.values().all(|m| *m <= 3),
        "per-node requests in flight above the budget: {most:?}"
    );
    assert!(
        most.values().any(|m| *m == 3),
        "the budget was used: {most:?}"
    );
}

/// The same load without a per-node budget (12) does exceed 3, so the test above measures
/// the client's limit, not the simulator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_budget_a_node_sees_more() {
    let Some(most) = peak_per_node(12).await else {
        return;
    };
    assert!(most.values().any(|m| *m > 3), "{most:?}");
}

/// Once a task type's duration is known, waiting for the next one polls around its end
/// instead of all the way through: far fewer status requests for the same task.
#[tokio::test]
async fn a_known_task_type_is_polled_near_its_end() {
    let Some((sim, _)) = setup(|c| c.clone_duration = Duration::from_millis(600)).await else {
        return;
    };
    let mut o = options(&sim);
    o.poll.task_interval_ms = 10;
    o.poll.task_max_interval_ms = 10;
    o.poll.task_fine_interval_ms = 10;
    let hv = ProxmoxHypervisor::new(o).expect("backend");
    let status_polls = |sim: &agentlab_pve::sim::Simulator| {
        sim.requests()
            .iter()
            .filter(|r| {
                r.method == "GET" && r.path.contains("/tasks/") && r.path.ends_with("/status")
            })
            .count()
    };
    hv.create(&spec(9101)).await.expect("first clone");
    let first = status_polls(&sim);
    sim.clear_requests();
    hv.create(&spec(9102)).await.expect("second clone");
    let second = status_polls(&sim);
    // Unknown: a poll every 10 ms through ~600 ms (~60). Known: sleep to ~480 ms, then
    // every 10 ms until the end (~12).
    assert!(first >= 15, "first clone polled {first} times");
    assert!(
        second * 2 < first,
        "the second clone polled {second} times (first {first})"
    );
}
