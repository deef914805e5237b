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

use std::time::Duration;

use crash::{Scenario, Target, is_zombie as exited, run_point, run_points};
use netlab::{NetLab, privileged};

/// A profile whose agent writes an artifact, so uploads have kill points too.
const PROFILE: &str = "name: crash\ntemplate_vmid: 9000\nnetwork:\n  bridge: {bridge}\n  mode: nat\n\
     resources:\n  cores: 1\n  memory_mb: 256\n\
     behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 3\n\
     repo:\n  clone_path: /home/agent/repo\n\
     agent:\n  command: \"echo crash-agent; echo x > $AGENTLAB_ARTIFACTS_DIR/out.txt\"\n";

/// The netlab as a crash-matrix target.
struct Lab(NetLab);

impl Target for Lab {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        self.0.cli(args)
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        self.0.json(args)
    }
    fn log(&self) -> String {
        self.0.log()
    }
    fn wait_sandbox(
        &self,
        vmid: u64,
        pred: &dyn Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.0.wait_sandbox(vmid, pred)
    }
    fn repo_url(&self) -> String {
        self.0.repo_url()
    }
    fn restart_with_failpoint(&mut self, point: &str) {
        self.0.kill_daemon();
        self.0.spawn_daemon_env(&[("AGENTLAB_FAILPOINTS", point)]);
    }
    fn pid(&self) -> Option<u32> {
        self.0.daemon_pid()
    }
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.0.wait_daemon_exit(limit)
    }
    fn restart(&mut self) {
        self.0.spawn_daemon();
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
    run_points(POINTS, |point, scenario| {
        let mut lab = Lab(NetLab::start(PROFILE, |_| Vec::new()));
        // Well before the job's 3-minute deadline: a crash must not leave a job waiting it out.
        run_point(&mut lab, point, scenario, Duration::from_secs(100), &|l| {
            leftovers(&l.0)
        })
    });
}
