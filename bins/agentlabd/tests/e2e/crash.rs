//! The crash matrix driver shared by the crash tests of each backend (`e2e_crash.rs`: fake,
//! `e2e_crash_pve.rs`: the PVE simulator; `e2e_crash_local.rs` uses its checks with the
//! netlab): the real daemon (built with the `failpoints`
//! feature) is killed with SIGKILL at every provisioning step, job step, artifact upload and
//! destroy step (fail points named after the engine's steps, env `AGENTLAB_FAILPOINTS`),
//! then restarted. After the restart every sandbox and job must settle in a final state with
//! a cause, and once everything is destroyed the backend's leftovers must be empty.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Daemon;

/// A profile with a workspace volume, so the workspace steps have kill points too.
pub fn profile(agent: &str) -> String {
    format!(
        "name: crash\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
         storage:\n  workspace: attach\n  workspace_size_gb: 1\n\
         behavior:\n  ttl_minutes_default: 30\n  job_timeout_minutes: 2\n\
         repo:\n  clone_path: {{dir}}/checkout\nagent:\n  command: {agent:?}\n"
    )
}

/// Makes the repository jobs clone (`<dir>/repo`, one commit).
pub fn init_repo(d: &Daemon) {
    let repo = d.dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(ok.status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "demo\n").unwrap();
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "init"]);
}

/// Half-written artifact uploads (`.part` files) under the daemon's data dir.
pub fn part_files(d: &Daemon) -> Vec<String> {
    let mut left = Vec::new();
    let mut stack = vec![d.dir.path().join("data")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".part") {
                left.push(format!("file {}", path.display()));
            }
        }
    }
    left
}

/// What the scenario does before the kill point fires.
#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    /// `sandbox new`.
    Sandbox,
    /// `job run --detach`.
    Job,
    /// `sandbox new`, wait READY, `sandbox destroy`.
    Destroy,
}

/// What the matrix drives: a daemon it can kill, restart and talk to (the fake/PVE
/// [`Daemon`], or the local backend's netlab).
pub trait Target: Sync {
    /// `agentlab <args>`.
    fn cli(&self, args: &[&str]) -> std::process::Output;
    /// `agentlab --json <args>`, asserted to succeed.
    fn json(&self, args: &[&str]) -> serde_json::Value;
    /// The daemon's log.
    fn log(&self) -> String;
    /// Polls `sandbox show` until `pred` holds.
    fn wait_sandbox(
        &self,
        vmid: u64,
        pred: &dyn Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value;
    /// The repository jobs clone.
    fn repo_url(&self) -> String;
    /// Kills the daemon and starts it with `AGENTLAB_FAILPOINTS=point`; returns once its
    /// socket answers.
    fn restart_with_failpoint(&mut self, point: &str);
    /// The daemon's pid.
    fn pid(&self) -> Option<u32>;
    /// Waits for the daemon to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus>;
    /// Starts the daemon again (after it died).
    fn restart(&mut self);
}

impl Target for Daemon {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Daemon::cli(self, args)
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        Daemon::json(self, args)
    }
    fn log(&self) -> String {
        Daemon::log(self)
    }
    fn wait_sandbox(
        &self,
        vmid: u64,
        pred: &dyn Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        Daemon::wait_sandbox(self, vmid, pred)
    }
    fn repo_url(&self) -> String {
        format!("file://{}", self.dir.path().join("repo").display())
    }
    fn restart_with_failpoint(&mut self, point: &str) {
        self.kill();
        self.spawn_env(&[("AGENTLAB_FAILPOINTS", point)]);
        // The socket answers at once (recovery runs in the background).
        let t0 = Instant::now();
        while !Daemon::cli(self, &["status"]).status.success() {
            assert!(t0.elapsed() < Duration::from_secs(30), "{point}: no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn pid(&self) -> Option<u32> {
        Daemon::pid(self)
    }
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        Daemon::wait_exit(self, limit)
    }
    fn restart(&mut self) {
        self.spawn();
    }
}

pub fn list(d: &dyn Target, what: &[&str]) -> Vec<serde_json::Value> {
    d.json(what).as_array().cloned().unwrap_or_default()
}

pub fn act(d: &dyn Target, s: Scenario) {
    match s {
        Scenario::Sandbox => {
            d.json(&["sandbox", "new", "--profile", "crash"]);
        }
        Scenario::Job => {
            let repo = d.repo_url();
            let out = d.cli(&[
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
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Scenario::Destroy => {
            let sb = d.json(&["sandbox", "new", "--profile", "crash"]);
            let vmid = sb["vmid"].as_u64().unwrap();
            d.wait_sandbox(vmid, &|v| v["state"] == "READY");
            // The daemon dies during this call: its result does not matter.
            let _ = d.cli(&["sandbox", "destroy", &vmid.to_string()]);
        }
    }
}

/// Polls until `done` holds over (sandboxes, jobs), up to `limit`.
pub fn settle(
    d: &dyn Target,
    limit: Duration,
    done: impl Fn(&[serde_json::Value], &[serde_json::Value]) -> bool,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let t0 = Instant::now();
    loop {
        let sbs = list(d, &["sandbox", "list", "--all"]);
        let jobs = list(d, &["job", "list"]);
        if done(&sbs, &jobs) || t0.elapsed() > limit {
            return (sbs, jobs);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SETTLED: [&str; 5] = ["READY", "COMPLETED", "FAILED", "TIMEOUT", "DESTROYED"];

pub fn sandbox_settled(s: &serde_json::Value) -> bool {
    let state = s["state"].as_str().unwrap_or_default();
    SETTLED.contains(&state)
        && (matches!(state, "READY" | "COMPLETED") || s["last_error"].is_string() || {
            // DESTROYED by request / ephemeral end: the cause is in its events.
            state == "DESTROYED"
        })
}

pub fn job_settled(j: &serde_json::Value) -> bool {
    let state = j["state"].as_str().unwrap_or_default();
    // A completed job's outcome is its report (commit, summary); any other end names a cause.
    let caused = if state == "COMPLETED" {
        j["outcome"].is_object()
    } else {
        j["outcome"]["error"].is_string() || j["outcome"]["exit_code"].is_number()
    };
    matches!(state, "COMPLETED" | "FAILED" | "TIMEOUT" | "CANCELLED") && caused
}

/// Processes (other than the daemon) whose command line names the test's directory.
pub fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&needle) && !cmd.contains("agentlabd") && !cmd.contains(" --socket ") {
            found.push(format!("process {pid}: {cmd}"));
        }
    }
    found
}

/// Runs one kill point on `d` (started, with a repository for jobs); `leftovers` lists what
/// the backend still holds once everything is destroyed, and everything must settle within
/// `settle_limit` after the restart. `Err` describes what was not clean.
pub fn run_point<T: Target>(
    d: &mut T,
    point: &str,
    scenario: Scenario,
    settle_limit: Duration,
    leftovers: &dyn Fn(&T) -> Vec<String>,
) -> Result<(), String> {
    d.restart_with_failpoint(point);
    let pid = d.pid().expect("daemon running");
    let reached = std::thread::scope(|s| {
        let target: &T = d;
        let h = s.spawn(move || act(target, scenario));
        // `d` is borrowed by the acting thread; poll the process through /proc instead.
        let t0 = Instant::now();
        while !is_zombie(pid) && t0.elapsed() < Duration::from_secs(90) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = h.join();
        is_zombie(pid)
    });
    if !reached {
        return Err(format!(
            "kill point {point} was never reached\nlog tail:\n{}",
            tail(&d.log())
        ));
    }
    let exit = d.wait_exit(Duration::from_secs(5));
    if !exit.is_some_and(|s| {
        use std::os::unix::process::ExitStatusExt;
        s.signal() == Some(9)
    }) {
        return Err(format!("{point}: daemon did not die by SIGKILL: {exit:?}"));
    }
    d.restart();
    // Everything settles: a final state with a cause for every sandbox and job.
    let (sbs, jobs) = settle(d, settle_limit, |sbs, jobs| {
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
    // Then clean up what is meant to stay (READY sandboxes, workspaces) and look for leftovers.
    for s in &sbs {
        if s["state"] != "DESTROYED" {
            let _ = d.cli(&["sandbox", "destroy", &s["vmid"].to_string()]);
        }
    }
    let (sbs, _) = settle(d, Duration::from_secs(60), |sbs, _| {
        sbs.iter().all(|s| s["state"] == "DESTROYED")
    });
    for s in sbs.iter().filter(|s| s["state"] != "DESTROYED") {
        problems.push(format!(
            "sandbox {} not destroyed: {} ({})",
            s["vmid"], s["state"], s["last_error"]
        ));
    }
    for w in list(d, &["workspace", "list"]) {
        let _ = d.cli(&["workspace", "delete", w["id"].as_str().unwrap_or_default()]);
    }
    problems.extend(leftovers(d));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{point}: {problems:?}\nlog tail:\n{}",
            tail(&d.log())
        ))
    }
}

pub fn d_pid(d: &Daemon) -> u32 {
    d.pid().expect("daemon running")
}

pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(true)
}

pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Every kill point, with the scenario that reaches it.
pub const POINTS: &[(&str, Scenario)] = &[
    ("provision:clone", Scenario::Sandbox),
    ("provision:clone:done", Scenario::Sandbox),
    ("provision:configure", Scenario::Sandbox),
    ("provision:configure:done", Scenario::Sandbox),
    ("provision:workspace", Scenario::Sandbox),
    ("provision:workspace:done", Scenario::Sandbox),
    ("provision:token", Scenario::Sandbox),
    ("provision:token:done", Scenario::Sandbox),
    ("provision:start", Scenario::Sandbox),
    ("provision:start:done", Scenario::Sandbox),
    ("provision:guest", Scenario::Sandbox),
    // Killed after the token was redeemed (runner token issued in the same transaction) but
    // before the answer: the runner's retry is refused as `used` and the job fails at once.
    ("job:bootstrap_fetch", Scenario::Job),
    ("job:status", Scenario::Job),
    ("job:logs", Scenario::Job),
    // Killed after the `.part` file was written: the restarted daemon removes it, the runner
    // retries the upload.
    ("artifact:upload", Scenario::Job),
    ("artifact:record", Scenario::Job),
    ("job:finish", Scenario::Job),
    ("destroy:begin", Scenario::Destroy),
    ("destroy:workspace", Scenario::Destroy),
    ("destroy:vm", Scenario::Destroy),
    ("destroy:vm:stopped", Scenario::Destroy),
    ("destroy:done", Scenario::Destroy),
];

/// Runs `run` for every point of [`POINTS`] (or the subset named in env
/// `AGENTLAB_CRASH_POINTS`, comma-separated), prints a line per point and
/// "N kill points, N clean", and fails when a point was not clean.
pub fn run_matrix(run: impl FnMut(&str, Scenario) -> Result<(), String>) {
    run_points(POINTS, run);
}

/// [`run_matrix`] over `points`.
pub fn run_points(
    points: &[(&str, Scenario)],
    mut run: impl FnMut(&str, Scenario) -> Result<(), String>,
) {
    let only = std::env::var("AGENTLAB_CRASH_POINTS").ok();
    let mut clean = 0;
    let mut failed = Vec::new();
    let mut total = 0;
    for (point, scenario) in points {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|p| p == *point))
        {
            continue;
        }
        total += 1;
        let t0 = Instant::now();
        match run(point, *scenario) {
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
