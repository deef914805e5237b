//! End to end with `backend: pve`: the real daemon and CLI against the PVE simulator, whose
//! "boot" runs the real `agent-runner` with the bootstrap file written through the simulated
//! guest agent. Every request the backend sent must validate against the official schema.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::sync::Arc;

use agentlab_core::fake::boot::ProcessBootHook;
use agentlab_pve::sim::{FaultKind, FaultRule, SeedVm, SimConfig, Simulator, process_boot_hook};
use harness::{Daemon, bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_runs_end_to_end_on_the_pve_simulator() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
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
        let url = harness::empty_repo(&d);
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

/// The channel on Proxmox: the simulator's boot hook runs the real `agent-runner`, whose
/// guest agent connects to the daemon; exec, stdin and cp then go through the channel (no
/// fallback notice), and destroying the sandbox ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_and_cp_reach_a_pve_sandbox_through_its_channel() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
    let sim = Simulator::start(SimConfig::new(schema), "127.0.0.1:0")
        .await
        .unwrap();
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    let vms = tempfile::tempdir().unwrap();
    let hook = Arc::new(ProcessBootHook::agent_runner(
        vms.path(),
        bin("agent-runner").display().to_string(),
    ));
    sim.set_boot_hook(process_boot_hook(hook));
    let profiles = "name: p\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
        agent:\n  command: \"true\"\n";
    let pve = format!(
        "pve:\n  url: {url}\n  node: pve1\n  token_id: {id}\n  token_secret: {secret}\n  storage: local-lvm\n",
        url = sim.url(),
        id = sim.config().token_id,
        secret = sim.config().token_secret,
    );
    let vm_dir = vms.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let d = Daemon::start_backend(Some(profiles), "pve", &pve);
        let sb = d.json(&["sandbox", "new", "--profile", "p"]);
        let vmid = sb["vmid"].as_u64().unwrap();
        let v = vmid.to_string();
        d.wait_sandbox(vmid, |s| s["state"] == "READY");
        // The simulated guest is a host process running as the test's user: exec as that
        // user (`root` is the runner's own identity here).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let out = loop {
            let out = d.cli(&[
                "sandbox",
                "exec",
                &v,
                "--user",
                "root",
                "--",
                "sh",
                "-c",
                "echo via-channel; exit 4",
            ]);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            if out.status.code() == Some(4) || std::time::Instant::now() > deadline {
                break out;
            }
            assert!(err.contains("not connected"), "{err}\n{}", d.log());
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(4), "{stderr}\n{}", d.log());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "via-channel\n");
        assert!(
            !stderr.contains("hypervisor's guest agent"),
            "no fallback: {stderr}"
        );
        // The channel key went to the VM's directory, never to the host's /run/agentlab.
        assert!(vm_dir.join(&v).join("channel.json").exists());
        let file = vm_dir.join("to-guest.txt");
        std::fs::write(&file, "through the channel\n").unwrap();
        let dest = vm_dir.join("received");
        let out = d.cli(&[
            "sandbox",
            "cp",
            file.to_str().unwrap(),
            &format!("{v}:{}", dest.display()),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("to-guest.txt")).unwrap(),
            "through the channel\n"
        );
        let events = d.json(&["logs", &v]);
        let kinds: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        assert!(kinds.contains(&"channel_connected"), "{kinds:?}");
        d.cli(&["sandbox", "destroy", &v]);
        d.wait_sandbox(vmid, |s| s["state"] == "DESTROYED");
        let out = d.cli(&["sandbox", "exec", &v, "--user", "root", "--", "true"]);
        assert_ne!(out.status.code(), Some(0), "no exec after destroy");
    })
    .await
    .unwrap();
    sim.assert_all_valid();
}

/// Each failing PVE call during provisioning: the sandbox is FAILED with an error naming the
/// call, and the simulator holds nothing AgentLab created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pve_failures_name_the_call_and_leave_nothing_behind() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
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

/// The daemon is SIGKILLed while PVE runs the clone task (a slow clone): the restarted daemon
/// finds the clone by the UPID recorded before waiting, stops the task
/// (`DELETE /nodes/{node}/tasks/{upid}`) instead of waiting for it, and the half-made VM is
/// gone; the sandbox ends FAILED with the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clone_left_running_by_a_killed_daemon_is_stopped_by_its_upid() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
    let mut cfg = SimConfig::new(schema);
    cfg.clone_duration = std::time::Duration::from_secs(60);
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    let pve = format!(
        "pve:\n  url: {url}\n  node: pve1\n  token_id: {id}\n  token_secret: {secret}\n  storage: local-lvm\n",
        url = sim.url(),
        id = sim.config().token_id,
        secret = sim.config().token_secret,
    );
    let profiles = "name: p\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\nagent:\n  command: \"true\"\n";
    let sim = Arc::new(sim);
    let sim2 = Arc::clone(&sim);
    tokio::task::spawn_blocking(move || {
        let sim = sim2;
        let t0 = std::time::Instant::now();
        let mut d = Daemon::start_backend(Some(profiles), "pve", &pve);
        let sb = d.json(&["sandbox", "new", "--profile", "p"]);
        let vmid = sb["vmid"].as_u64().unwrap();
        let journal = d.dir.path().join(format!("data/pve-tasks/{vmid}.upid"));
        while !journal.exists() {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(30),
                "no UPID recorded at {}\nlog:\n{}",
                journal.display(),
                d.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let upid = std::fs::read_to_string(&journal).unwrap();
        assert!(
            upid.starts_with("UPID:pve1:") && upid.contains(":qmclone:9000:"),
            "{upid}"
        );
        d.kill();
        let placeholder = sim.vm_config(vmid as u32).expect("the clone's placeholder");
        assert_eq!(placeholder.get("lock").map(String::as_str), Some("clone"));

        d.spawn();
        let failed = d.wait_sandbox(vmid, |v| v["state"] == "FAILED");
        assert!(
            failed["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("restarted")),
            "{failed}"
        );
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(50),
            "the restart must not wait for the 60 s clone"
        );
        let deletes: Vec<_> = sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && r.path.starts_with("/nodes/pve1/tasks/"))
            .collect();
        let upid_in_path = |p: &str| {
            p.replace("%3A", ":")
                .replace("%21", "!")
                .replace("%40", "@")
                == format!("/nodes/pve1/tasks/{}", upid.trim())
        };
        assert!(
            deletes
                .iter()
                .any(|r| upid_in_path(&r.path) && r.status == 200),
            "the clone task was stopped by its UPID: {deletes:?}"
        );
        assert_eq!(sim.vm_ids(), vec![9000], "the half-made VM is gone");
        assert!(!journal.exists(), "the record is removed once settled");
    })
    .await
    .unwrap();
    sim.assert_all_valid();
}
