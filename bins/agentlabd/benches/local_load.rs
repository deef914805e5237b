//! The local backend under load, through the real daemon, CLI and runner (release build),
//! against a bare reference measured in the same run:
//! - `ready/N`: N `sandbox new` at once until all N are READY;
//! - `completed/N`: N `job run` at once (clone from a git daemon, a one-line agent, artifacts)
//!   until all N are COMPLETED;
//! - `bare_reference/N`: N times at once what a job minimally needs without AgentLab: a
//!   network namespace, a veth, bubblewrap and `git clone` from the same git daemon.
//!
//! N is 1, 10, 25 and 50 (`AGENTLAB_LOAD_SIZES=1,10` picks others). Needs root, `bwrap`,
//! `ip`, `nft`, `nsenter`; prints a reason and measures nothing otherwise. Run with
//! `cargo bench -p agentlabd --bench local_load`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/e2e/harness.rs"]
mod harness;
#[path = "../tests/e2e/netlab.rs"]
mod netlab;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netlab::{LabOptions, NetLab, WAN_IP};

const PROFILE: &str = "name: load\ntemplate_vmid: 9000\nnetwork:\n  bridge: {bridge}\n  mode: nat\n\
     resources:\n  cores: 1\n  memory_mb: 256\n\
     behavior:\n  ttl_minutes_default: 30\n  job_timeout_minutes: 20\n\
     repo:\n  clone_path: /home/agent/repo\n\
     agent:\n  command: \"git log --oneline -1 > $AGENTLAB_ARTIFACTS_DIR/head.txt\"\n";

fn sizes() -> Vec<u32> {
    std::env::var("AGENTLAB_LOAD_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 25, 50])
}

/// Runs `f(i)` for i in 0..n on n threads at once.
fn at_once<T: Send>(n: u32, f: impl Fn(u32) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..n).map(|i| s.spawn(move || f(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Polls the sandbox list until `done` holds for every sandbox.
fn wait_all(lab: &NetLab, done: impl Fn(&serde_json::Value) -> bool) {
    let t0 = Instant::now();
    loop {
        let list = lab.json(&["sandbox", "list", "--all"]);
        if list.as_array().is_some_and(|a| a.iter().all(&done)) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn destroy_all(lab: &NetLab) {
    let list = lab.json(&["sandbox", "list"]);
    let vmids: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["vmid"].to_string())
        .collect();
    std::thread::scope(|s| {
        for v in &vmids {
            s.spawn(move || lab.cli(&["sandbox", "destroy", v]));
        }
    });
    wait_all(lab, |s| s["state"] == "DESTROYED");
}

fn ready_round(lab: &NetLab, n: u32) -> Duration {
    let t0 = Instant::now();
    at_once(n, |_| lab.json(&["sandbox", "new", "--profile", "load"]));
    wait_all(lab, |s| {
        matches!(s["state"].as_str(), Some("READY" | "DESTROYED"))
    });
    let took = t0.elapsed();
    destroy_all(lab);
    took
}

fn completed_round(lab: &NetLab, n: u32) -> Duration {
    let url = lab.repo_url();
    let t0 = Instant::now();
    at_once(n, |_| {
        let out = lab.cli(&[
            "job",
            "run",
            "--detach",
            "--repo",
            &url,
            "--task",
            "t",
            "--profile",
            "load",
        ]);
        assert!(out.status.success());
    });
    loop {
        let jobs = lab.json(&["job", "list", "--state", "QUEUED,RUNNING"]);
        if jobs.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    wait_all(lab, |s| s["state"] == "DESTROYED");
    took
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap().success();
    assert!(ok, "ip {args:?}");
}

/// Namespace + veth (to the lab's `wan`, where the git daemon listens) + bwrap + git clone.
fn bare_round(lab: &NetLab, n: u32) -> Duration {
    let pid = std::process::id();
    let t0 = Instant::now();
    at_once(n, |i| {
        let ns = format!("alref{pid}-{i}");
        let link = format!("rf{}x{i}", pid % 100_000);
        // The peer gets its own name: `wan` has an `eth0` already.
        let peer = format!("rfp{i}");
        ip(&["netns", "add", &ns]);
        ip(&[
            "-n", &lab.wan, "link", "add", &link, "type", "veth", "peer", "name", &peer, "netns",
            &ns,
        ]);
        let (ours, theirs) = (format!("100.64.{i}.2/30"), format!("100.64.{i}.1"));
        ip(&[
            "-n",
            &lab.wan,
            "addr",
            "add",
            &format!("{theirs}/30"),
            "dev",
            &link,
        ]);
        ip(&["-n", &lab.wan, "link", "set", &link, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "addr", "add", &ours, "dev", &peer]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", &theirs]);
        let url = format!("git://{WAN_IP}/repo");
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns, "bwrap", "--ro-bind", "/usr", "/usr"])
            .args([
                "--symlink",
                "usr/bin",
                "/bin",
                "--symlink",
                "usr/lib",
                "/lib",
            ])
            .args([
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--ro-bind",
                "/etc",
                "/etc",
            ])
            .args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"])
            .args([
                "--unshare-user",
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
            ])
            .args(["--", "git", "clone", "-q", &url, "/tmp/repo"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "bare clone {i}");
        // Deleting the link first is synchronous; a namespace's devices go asynchronously,
        // and the next round reuses the names.
        ip(&["-n", &lab.wan, "link", "del", &link]);
        ip(&["netns", "del", &ns]);
    });
    t0.elapsed()
}

fn local_load(c: &mut Criterion) {
    if !netlab::privileged() {
        return;
    }
    let sizes = sizes();
    let ids = sizes.iter().copied().max().unwrap_or(1).max(3);
    let opts = LabOptions {
        ids,
        quarantine_secs: Some(0),
        ..LabOptions::default()
    };
    let lab = NetLab::start_with(PROFILE, |_| Vec::new(), &opts);
    let mut group = c.benchmark_group("local_load");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for &n in &sizes {
        group.bench_with_input(BenchmarkId::new("bare_reference", n), &n, |b, &n| {
            b.iter_custom(|iters| (0..iters).map(|_| bare_round(&lab, n)).sum());
        });
        group.bench_with_input(BenchmarkId::new("ready", n), &n, |b, &n| {
            b.iter_custom(|iters| (0..iters).map(|_| ready_round(&lab, n)).sum());
        });
        group.bench_with_input(BenchmarkId::new("completed", n), &n, |b, &n| {
            b.iter_custom(|iters| (0..iters).map(|_| completed_round(&lab, n)).sum());
        });
    }
    group.finish();
}

criterion_group!(benches, local_load);
criterion_main!(benches);
