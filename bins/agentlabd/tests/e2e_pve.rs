//! End to end with `backend: pve`: the real daemon and CLI against the PVE simulator, whose
//! "boot" runs the real `agent-runner` with the bootstrap file written through the simulated
//! guest agent. Every request the backend sent must validate against the official schema.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::process::Command;
use std::sync::Arc;

use agentlab_core::fake::boot::ProcessBootHook;
use agentlab_pve::sim::{
    FaultKind, FaultRule, SeedVm, SimConfig, Simulator, default_schema_path, process_boot_hook,
};
use harness::{Daemon, bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_runs_end_to_end_on_the_pve_simulator() {
    let schema = default_schema_path();
    if !schema.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PVE schema missing at {} (required in CI)",
            schema.display()
        );
        eprintln!("SKIP: PVE schema not found at {}", schema.display());
        return;
    }
    let sim = Simulator::start(SimConfig::new(schema), "127.0.0.1:0")
        .await
        .unwrap();
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    let vms = tempfile::tempdir().unwrap();
    let runner = bin("agent-runner");
    let hook = Arc::new(ProcessBootHook::agent_runner(
        vms.path(),
        runner.display().to_string(),
    ));
    sim.set_boot_hook(process_boot_hook(hook));

    let profiles = "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
        behavior:\n  ttl_minutes_default: 10\nrepo:\n  clone_path: {dir}/checkout\n\
        agent:\n  command: \"echo pve-agent-ran; echo hi >> README.md; git add README.md; git -c user.name=a -c user.email=a@example.invalid commit -q -m hi\"\n";
    let pve = format!(
        "pve:\n  url: {url}\n  node: pve1\n  token_id: {id}\n  token_secret: {secret}\n  storage: local-lvm\n",
        url = sim.url(),
        id = sim.config().token_id,
        secret = sim.config().token_secret,
    );
    let (d, url) = tokio::task::spawn_blocking(move || {
        let d = Daemon::start_backend(Some(profiles), "pve", &pve);
        let repo = d.dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["commit", "-q", "--allow-empty", "-m", "init"],
        ] {
            let ok = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .current_dir(&repo)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let url = format!("file://{}", repo.display());
        (d, url)
    })
    .await
    .unwrap();
    let (d, out) = tokio::task::spawn_blocking(move || {
        let out = d.cli(&[
            "job",
            "run",
            "--repo",
            &url,
            "--task",
            "hello",
            "--profile",
            "e2e",
        ]);
        (d, out)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(stdout.contains("pve-agent-ran"), "{stdout}");
    let job = tokio::task::spawn_blocking(move || {
        let jobs = d.json(&["job", "list"]);
        let job = jobs.as_array().unwrap()[0].clone();
        let vmid = job["sandbox"].as_u64().unwrap();
        d.wait_sandbox(vmid, |v| v["state"] == "DESTROYED");
        job
    })
    .await
    .unwrap();
    assert_eq!(job["state"], "COMPLETED");
    assert!(
        sim.requests().len() > 10,
        "the backend talked to the simulator"
    );
    sim.assert_all_valid();
}

/// Each failing PVE call during provisioning: the sandbox is FAILED with an error naming the
/// call, and the simulator holds nothing AgentLab created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pve_failures_name_the_call_and_leave_nothing_behind() {
    let schema = default_schema_path();
    if !schema.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PVE schema missing at {} (required in CI)",
            schema.display()
        );
        eprintln!("SKIP: PVE schema not found at {}", schema.display());
        return;
    }
    let cases = [
        ("POST", "/clone", "clone"),
        ("PUT", "/resize", "configure"),
        ("POST", "/status/start", "start"),
    ];
    for (method, path, step) in cases {
        let sim = Simulator::start(SimConfig::new(schema.clone()), "127.0.0.1:0")
            .await
            .unwrap();
        sim.add_vm(&SeedVm::template(9000, "pve1"));
        let msg = format!("injected failure of {method} {path}");
        sim.add_fault(FaultRule::always(
            method,
            path,
            FaultKind::Http {
                status: 500,
                message: msg.clone(),
            },
        ));
        let pve = format!(
            "pve:\n  url: {url}\n  node: pve1\n  token_id: {id}\n  token_secret: {secret}\n  storage: local-lvm\n",
            url = sim.url(),
            id = sim.config().token_id,
            secret = sim.config().token_secret,
        );
        let profiles = "name: p\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\nstorage:\n  root_size_gb: 40\nagent:\n  command: \"true\"\n";
        let sb = tokio::task::spawn_blocking(move || {
            let d = Daemon::start_backend(Some(profiles), "pve", &pve);
            let sb = d.json(&["sandbox", "new", "--profile", "p"]);
            let vmid = sb["vmid"].as_u64().unwrap();
            d.wait_sandbox(vmid, |v| v["state"] == "FAILED")
        })
        .await
        .unwrap();
        let err = sb["last_error"].as_str().unwrap();
        assert!(
            err.contains(step) && err.contains(path) && err.contains(&msg),
            "{step}: {err}"
        );
        assert_eq!(sim.vm_ids(), vec![9000], "{step}: AgentLab left VMs behind");
        sim.assert_all_valid();
    }
}
