//! What a task wait learns from a coarsely polled task: the middle of the poll interval in
//! which the task ended, not the moment its end was seen, so the next task of the type is
//! first polled before its end rather than after it.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::time::Duration;

use agentlab_core::hypervisor::Hypervisor;
use agentlab_pve::ProxmoxHypervisor;
use common::{options, setup, spec};

#[tokio::test]
async fn a_coarsely_seen_end_does_not_teach_a_late_first_poll() {
    // A clone runs ~1010 ms. Unknown, it is polled every 700 ms: running at ~700, stopped at
    // ~1400. Learned from the middle (~1050), the next clone's first poll comes at ~840,
    // while it still runs; learned from the moment seen (~1400), it would come at ~1120,
    // after its end, and that single poll would already answer `stopped`.
    let Some((sim, _)) = setup(|c| {
        c.clone_duration = Duration::from_millis(1000);
        c.hidden_task_polls = 0;
    })
    .await
    else {
        return;
    };
    let mut o = options(&sim);
    o.poll.task_interval_ms = 700;
    o.poll.task_max_interval_ms = 700;
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
    assert_eq!(
        status_polls(&sim),
        2,
        "running at ~700 ms, stopped at ~1400 ms"
    );
    sim.clear_requests();
    hv.create(&spec(9102)).await.expect("second clone");
    let second = status_polls(&sim);
    assert!(
        second >= 2,
        "the second clone's first poll came after its end ({second} poll)"
    );
    let clone = sim
        .task_timings()
        .into_iter()
        .rfind(|t| t.kind == "qmclone")
        .expect("the second clone's task");
    let (ended, seen) = (
        clone.ended.expect("ended"),
        clone.seen_stopped.expect("seen"),
    );
    assert!(seen >= ended, "seen only after it ended");
}
