//! The exec fallback end to end with `backend: pve`: the real daemon and CLI against the PVE
//! simulator with no guest runner at all (no boot hook), so `agentlab sandbox exec` runs
//! through PVE's `agent/exec` + `agent/exec-status` (the simulator's deterministic stand-in
//! agent). Every request the backend sent must validate against the official schema.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::sync::Arc;

use agentlab_pve::sim::{SeedVm, SimConfig, SimExecCall, SimExecResult, Simulator};
use harness::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_without_a_runner_goes_through_the_pve_guest_agent() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
    let mut cfg = SimConfig::new(schema);
    if let Some(vms) = cfg.permissions.get_mut("/vms") {
        vms.insert("VM.GuestAgent.Unrestricted".into(), 1);
    }
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    let profiles = "name: p\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
        agent:\n  command: \"true\"\n";
    let pve = harness::sim_pve_section(&sim, "pve1", "local-lvm");
    let (d, vmid) = tokio::task::spawn_blocking(move || {
        let d = Daemon::start_backend(Some(profiles), "pve", &pve);
        let sb = d.json(&["sandbox", "new", "--profile", "p"]);
        let vmid = sb["vmid"].as_u64().unwrap();
        d.wait_sandbox(vmid, |v| v["state"] == "READY");
        (d, vmid)
    })
    .await
    .unwrap();
    let id = vmid.to_string();
    // The default stand-in agent echoes the command line it was given: the daemon's wrapping
    // (timeout, runuser, env) around the user's command.
    let (d, out) = tokio::task::spawn_blocking(move || {
        let out = d.cli(&["sandbox", "exec", &id, "--", "echo", "hi there"]);
        (d, out)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{stderr}\n{}",
        d.log()
    );
    assert!(
        stdout.starts_with("timeout -k 5s ")
            && stdout.contains("s runuser -u agent -- env -C /home/agent -- HOME=/home/agent ")
            && stdout.ends_with(" echo hi there\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("agentlab: the guest agent-runner is not connected; ran through the hypervisor's guest agent"),
        "{stderr}"
    );
    // The command's exit code and stderr come back; the CLI exits with the code.
    sim.set_guest_exec(Arc::new(|_: &SimExecCall| SimExecResult {
        exitcode: Some(3),
        stderr: b"it failed\n".to_vec(),
        ..SimExecResult::default()
    }));
    let id = vmid.to_string();
    let (d, out) = tokio::task::spawn_blocking(move || {
        let out = d.cli(&["sandbox", "exec", &id, "--user", "root", "--", "false"]);
        (d, out)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("it failed"));
    // A shell still needs the runner.
    let id = vmid.to_string();
    let (d, out) = tokio::task::spawn_blocking(move || {
        let out = d.cli(&["sandbox", "shell", &id]);
        (d, out)
    })
    .await
    .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("agent_not_connected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both execs are events marked as going through the guest agent.
    let id = vmid.to_string();
    let events = tokio::task::spawn_blocking(move || d.json(&["logs", &id]))
        .await
        .unwrap();
    let text = events.to_string();
    assert_eq!(
        text.matches("\"via\":\"guest_agent\"").count(),
        4,
        "two stream_opened and two stream_closed: {text}"
    );
    let calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/agent/exec"))
        .collect();
    assert_eq!(calls.len(), 2);
    sim.assert_all_valid();
}
