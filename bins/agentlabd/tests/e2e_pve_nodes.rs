//! Node loss end to end with `backend: pve`: the real daemon, CLI and `agent-runner` against
//! the PVE simulator with two nodes on shared storage. Placement spreads sandboxes by free
//! memory; when a node goes offline its sandboxes become LOST and their jobs FAILED with the
//! cause while the other node's job keeps running; new sandboxes go to the remaining node;
//! `agentlab status` shows the nodes; when the node returns its leftovers are destroyed.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentlab_pve::sim::{SeedVm, SimConfig, Simulator};
use harness::Daemon;
use serde_json::Value;

const GIB: u64 = 1 << 30;

/// Starts a detached job and waits until it runs; returns (job id, sandbox vmid, node).
fn running_job(d: &Daemon, repo: &str) -> (String, u64, String) {
    let job = d.json(&[
        "job",
        "run",
        "--detach",
        "--repo",
        repo,
        "--task",
        "t",
        "--profile",
        "nodes",
    ]);
    let id = job["id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    loop {
        let j = d.json(&["job", "show", &id]);
        if j["state"] == "RUNNING" {
            let vmid = j["sandbox"].as_u64().unwrap();
            let sb = d.json(&["sandbox", "show", &vmid.to_string()]);
            return (id, vmid, sb["node"].as_str().unwrap().to_owned());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "job {id} never ran: {j}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait<T>(what: &str, d: &Daemon, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_node_fails_its_jobs_only_and_its_vms_go_when_it_returns() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
    let mut cfg = SimConfig::new(schema);
    // pve1 has the most free memory at first: 56 GiB free against pve2's 48.
    cfg.nodes[0].mem = 8 * GIB;
    cfg.nodes[1].mem = 16 * GIB;
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    let mut tmpl = SeedVm::template(9000, "pve1");
    tmpl.storage = "shared-nfs".into();
    sim.add_vm(&tmpl);
    let vms = tempfile::tempdir().unwrap();
    harness::boot_runs_the_runner(&sim, vms.path());

    // 16 GiB sandboxes: running ones use their node's memory.
    let profiles = "name: nodes\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 16384\n\
        behavior:\n  ttl_minutes_default: 30\n  job_timeout_minutes: 10\nrepo:\n  clone_path: {dir}/checkout\n\
        agent:\n  command: \"echo started; sleep 300\"\n";
    let pve = harness::sim_pve_section(&sim, "auto", "shared-nfs");
    let sim = Arc::new(sim);
    let sim2 = Arc::clone(&sim);
    tokio::task::spawn_blocking(move || {
        let sim = sim2;
        let d = Daemon::start_backend(Some(profiles), "pve", &pve);
        let repo = harness::empty_repo(&d);

        // Spread by free memory: pve1 (56 free) → pve2 (48 vs 40) → pve1 (40 vs 32).
        let a = running_job(&d, &repo);
        let b = running_job(&d, &repo);
        let c = running_job(&d, &repo);
        let placed: Vec<&str> = [&a, &b, &c].iter().map(|j| j.2.as_str()).collect();
        assert_eq!(placed, ["pve1", "pve2", "pve1"], "placement by free memory");

        let status = d.json(&["status"]);
        assert_eq!(node(&status, "pve2")["online"], true, "{status}");
        assert_eq!(node(&status, "pve2")["mem_free"], 32 * GIB, "{status}");
        assert_eq!(node(&status, "pve1")["mem_free"], 24 * GIB, "{status}");
        assert_eq!(node(&status, "pve1")["clone_limit"], 3, "{status}");

        // pve2 fails: its sandbox is LOST, its job FAILED with the cause.
        sim.set_node_online("pve2", false);
        let lost = d.wait_sandbox(b.1, |v| v["state"] == "LOST");
        let why = lost["last_error"].as_str().unwrap();
        assert!(why.contains("node pve2 went offline"), "{lost}");
        let job_b = d.json(&["job", "show", &b.0]);
        assert_eq!(job_b["state"], "FAILED", "{job_b}");
        let err = job_b["outcome"]["error"].as_str().unwrap();
        assert!(err.contains("node pve2 went offline"), "{job_b}");
        assert_eq!(job_b["outcome"]["failed_step"], "node", "{job_b}");
        let events = d.json(&["logs", &b.1.to_string()]);
        let lost_event = events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "sandbox_lost")
            .unwrap_or_else(|| panic!("no sandbox_lost event: {events}"));
        assert_eq!(lost_event["payload"]["node"], "pve2", "{lost_event}");

        // Nothing on pve1 was touched.
        for (id, vmid, _) in [&a, &c] {
            assert_eq!(d.json(&["job", "show", id])["state"], "RUNNING");
            assert_eq!(
                d.json(&["sandbox", "show", &vmid.to_string()])["state"],
                "RUNNING"
            );
        }
        let status = d.json(&["status"]);
        assert_eq!(node(&status, "pve2")["online"], false, "{status}");
        assert_eq!(status["sandboxes"]["LOST"], 1, "{status}");
        let human = d.cli(&["status"]);
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(
            text.lines()
                .any(|l| l.starts_with("pve2") && l.contains("OFFLINE")),
            "{text}"
        );

        // A new sandbox goes to the remaining node although pve2 had more free memory.
        let e = d.json(&["sandbox", "new", "--profile", "nodes"]);
        let e_vmid = e["vmid"].as_u64().unwrap();
        let e = d.wait_sandbox(e_vmid, |v| v["state"] == "READY");
        assert_eq!(e["node"], "pve1", "{e}");

        // pve2 returns (its VM comes back stopped): the lost sandbox's VM is destroyed.
        assert!(sim.vm_ids().contains(&(b.1 as u32)));
        sim.set_node_online("pve2", true);
        let gone = d.wait_sandbox(b.1, |v| v["state"] == "DESTROYED");
        assert_eq!(gone["vm_created"], false, "{gone}");
        wait("the lost VM to be removed", &d, || {
            (!sim.vm_ids().contains(&(b.1 as u32))).then_some(())
        });

        // Clean up the rest; nothing of AgentLab's stays on the simulator.
        for vmid in [a.1, c.1, e_vmid] {
            let _ = d.cli(&["sandbox", "destroy", &vmid.to_string()]);
            d.wait_sandbox(vmid, |v| v["state"] == "DESTROYED");
        }
        assert_eq!(sim.vm_ids(), vec![9000], "AgentLab left VMs behind");
    })
    .await
    .unwrap();
    sim.assert_all_valid();
}
