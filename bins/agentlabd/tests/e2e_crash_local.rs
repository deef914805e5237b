//! The crash matrix on the `local` backend: the real daemon (built with the `failpoints`
//! feature) runs in a test router namespace with real sandboxes (bubblewrap, netns, veth,
//! cgroups, nftables) and is killed with SIGKILL at every provisioning step, inside the
//! backend's own create/start/destroy (`local:*` points), at every job step, during an
//! artifact upload and at every destroy step; then restarted. After the restart every sandbox
//! and job must settle in a final state with a cause, and once everything is destroyed no
//! process, netns, veth, cgroup, nftables element, sandbox directory or `.part` file may be
//! left. Prints "N kill points, N clean"; `AGENTLAB_CRASH_POINTS=a,b` runs a subset.
//!
//! Privileged: needs root, `bwrap`, `ip`, `nft`, `nsenter` (see `netlab::privileged`).
#![cfg(test)]
#![cfg(feature = "failpoints")]

#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/netlab.rs"]
mod netlab;

use std::time::{Duration, Instant};

use crash::{is_zombie as exited, job_settled, sandbox_settled, tail};
use netlab::{NetLab, privileged};

/// A profile whose agent writes an artifact, so uploads have kill points too.
const PROFILE: &str = "name: crash\ntemplate_vmid: 9000\nnetwork:\n  bridge: {bridge}\n  mode: nat\n\
     resources:\n  cores: 1\n  memory_mb: 256\n\
     behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 3\n\
     repo:\n  clone_path: /home/agent/repo\n\
     agent:\n  command: \"echo crash-agent; echo x > $AGENTLAB_ARTIFACTS_DIR/out.txt\"\n";

/// What the scenario does before the kill point fires.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// `sandbox new`.
    Sandbox,
    /// `job run --detach`.
    Job,
    /// `sandbox new`, wait READY, `sandbox destroy`.
    Destroy,
}

fn list(lab: &NetLab, what: &[&str]) -> Vec<serde_json::Value> {
    lab.json(what).as_array().cloned().unwrap_or_default()
}

fn act(lab: &NetLab, s: Scenario) {
    match s {
        Scenario::Sandbox => {
            let _ = lab.cli(&["sandbox", "new", "--profile", "crash"]);
        }
        Scenario::Job => {
            let repo = lab.repo_url();
            let _ = lab.cli(&[
                "job",
                "run",
                "--detach",
                "--repo",
                &repo,
                "--task",
                "t",
                "--profile",
                "crash",
            ]);
        }
        Scenario::Destroy => {
            let out = lab.cli(&["--json", "sandbox", "new", "--profile", "crash"]);
            let Ok(sb) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
                return;
            };
            let Some(vmid) = sb["vmid"].as_u64() else {
                return;
            };
            lab.wait_sandbox(vmid, |v| v["state"] == "READY");
            // The daemon dies during this call: its result does not matter.
            let _ = lab.cli(&["sandbox", "destroy", &vmid.to_string()]);
        }
    }
}

/// Polls until `done` holds over (sandboxes, jobs), up to `limit`.
fn settle(
    lab: &NetLab,
    limit: Duration,
    done: impl Fn(&[serde_json::Value], &[serde_json::Value]) -> bool,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let t0 = Instant::now();
    loop {
        let sbs = list(lab, &["sandbox", "list", "--all"]);
        let jobs = list(lab, &["job", "list"]);
        if done(&sbs, &jobs) || t0.elapsed() > limit {
            return (sbs, jobs);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `.part` files (half-written artifact uploads) under `root`.
fn part_files(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".part") {
                found.push(format!("file {}", path.display()));
            }
        }
    }
    found
}

/// Everything of this lab left on the host once every sandbox is destroyed.
fn leftovers(lab: &NetLab) -> Vec<String> {
    let mut left: Vec<String> = (lab.vmid_start..=lab.vmid_end)
        .flat_map(|vmid| lab.traces(u64::from(vmid)))
        .filter(|(_, present)| *present)
        .map(|(what, _)| what)
        .collect();
    let state = lab.data_dir().join("local");
    for e in std::fs::read_dir(&state).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".creating-") || name.parse::<u32>().is_ok() {
            left.push(format!("sandbox dir {}", e.path().display()));
        }
    }
    left.extend(part_files(&lab.data_dir()));
    // Processes started from a sandbox directory (the outer bwrap and what runs inside).
    let needle = state.display().to_string();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&needle) && !exited(pid) {
            left.push(format!("process {pid}: {cmd}"));
        }
    }
    left
}

/// Runs one kill point in a fresh lab; `Err` describes what was not clean.
fn run_point(point: &str, scenario: Scenario) -> Result<(), String> {
    let mut lab = NetLab::start(PROFILE, |_| Vec::new());
    lab.kill_daemon();
    lab.spawn_daemon_env(&[("AGENTLAB_FAILPOINTS", point)]);
    let pid = lab.daemon_pid().expect("daemon running");
    let reached = std::thread::scope(|s| {
        let h = s.spawn(|| act(&lab, scenario));
        let t0 = Instant::now();
        while !exited(pid) && t0.elapsed() < Duration::from_secs(90) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = h.join();
        exited(pid)
    });
    if !reached {
        return Err(format!(
            "kill point {point} was never reached\nlog tail:\n{}",
            tail(&lab.log())
        ));
    }
    let exit = lab.wait_daemon_exit(Duration::from_secs(5));
    if !exit.is_some_and(|s| {
        use std::os::unix::process::ExitStatusExt;
        s.signal() == Some(9)
    }) {
        return Err(format!("{point}: daemon did not die by SIGKILL: {exit:?}"));
    }
    lab.spawn_daemon();
    // Well before the job's 3-minute deadline: a crash must not leave a job waiting it out.
    let (sbs, jobs) = settle(&lab, Duration::from_secs(100), |sbs, jobs| {
        sbs.iter().all(sandbox_settled) && jobs.iter().all(job_settled)
    });
    let mut problems = Vec::new();
    for s in sbs.iter().filter(|s| !sandbox_settled(s)) {
        problems.push(format!(
            "sandbox {} {} ({})",
            s["vmid"], s["state"], s["last_error"]
        ));
    }
    for j in jobs.iter().filter(|j| !job_settled(j)) {
        problems.push(format!("job {} {} {}", j["id"], j["state"], j["outcome"]));
    }
    for s in &sbs {
        if s["state"] != "DESTROYED" {
            let _ = lab.cli(&["sandbox", "destroy", &s["vmid"].to_string()]);
        }
    }
    let (sbs, _) = settle(&lab, Duration::from_secs(60), |sbs, _| {
        sbs.iter().all(|s| s["state"] == "DESTROYED")
    });
    for s in sbs.iter().filter(|s| s["state"] != "DESTROYED") {
        problems.push(format!(
            "sandbox {} not destroyed: {} ({})",
            s["vmid"], s["state"], s["last_error"]
        ));
    }
    problems.extend(leftovers(&lab));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{point}: {problems:?}\nlog tail:\n{}",
            tail(&lab.log())
        ))
    }
}

/// Every kill point on the local backend, with the scenario that reaches it.
const POINTS: &[(&str, Scenario)] = &[
    ("provision:clone", Scenario::Sandbox),
    ("local:create:dir", Scenario::Sandbox),
    ("local:create:plumbed", Scenario::Sandbox),
    ("provision:clone:done", Scenario::Sandbox),
    ("provision:configure:done", Scenario::Sandbox),
    ("provision:firewall", Scenario::Sandbox),
    ("provision:firewall:done", Scenario::Sandbox),
    ("provision:token:done", Scenario::Sandbox),
    ("provision:start", Scenario::Sandbox),
    ("local:start:spawned", Scenario::Sandbox),
    ("provision:start:done", Scenario::Sandbox),
    ("provision:guest", Scenario::Sandbox),
    ("job:bootstrap_fetch", Scenario::Job),
    ("job:status", Scenario::Job),
    ("job:logs", Scenario::Job),
    ("artifact:upload", Scenario::Job),
    ("artifact:record", Scenario::Job),
    ("job:finish", Scenario::Job),
    ("destroy:begin", Scenario::Destroy),
    ("destroy:vm", Scenario::Destroy),
    ("local:destroy:killed", Scenario::Destroy),
    ("local:destroy:unplumbed", Scenario::Destroy),
    ("local:destroy:cgroups", Scenario::Destroy),
    ("destroy:vm:stopped", Scenario::Destroy),
    ("destroy:firewall", Scenario::Destroy),
    ("destroy:done", Scenario::Destroy),
];

#[test]
fn sigkill_at_every_local_kill_point_then_restart_leaves_nothing() {
    if !privileged() {
        return;
    }
    let only = std::env::var("AGENTLAB_CRASH_POINTS").ok();
    let mut clean = 0;
    let mut failed = Vec::new();
    let mut total = 0;
    for (point, scenario) in POINTS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|p| p == *point))
        {
            continue;
        }
        total += 1;
        let t0 = Instant::now();
        match run_point(point, *scenario) {
            Ok(()) => {
                clean += 1;
                println!(
                    "kill point {point}: clean ({:.1}s)",
                    t0.elapsed().as_secs_f32()
                );
            }
            Err(e) => {
                println!("kill point {point}: NOT CLEAN: {e}");
                failed.push(e);
            }
        }
    }
    println!("{total} kill points, {clean} clean");
    assert!(
        failed.is_empty(),
        "{} not clean:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
