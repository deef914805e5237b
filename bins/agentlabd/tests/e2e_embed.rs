//! End to end: the embedding templates of `examples/` (`embed_job`, `embed_workspace`,
//! `embed_janitor`, `embed_pve_sim`) run as real programs that build the engine in-process with
//! `agentlab_host::Host` from an AgentLab config — no agentlabd running — on the fake backend
//! (whose VMs run the real `agent-runner` on the host), on the PVE simulator the program starts
//! itself and, as root, on the local backend in network namespaces. A daemon started afterwards
//! on the same config finds what the program did: the state is the same.
#![cfg(test)]

#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/netlab.rs"]
mod netlab;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::{Daemon, bin, example};
use netlab::{NetLab, privileged};

/// Jobs clone into their own fake VM's directory (see `e2e_examples.rs`).
const PROFILE: &str = "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
     behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
     repo:\n  clone_path: /proc/self/cwd/checkout\nagent:\n  command: \"echo embedded-agent; \
     mkdir -p \\\"$AGENTLAB_ARTIFACTS_DIR\\\"; echo result > \\\"$AGENTLAB_ARTIFACTS_DIR/out.txt\\\"\"\n";

fn text(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config and profiles written by the harness, its daemon stopped: the program owns them.
fn stopped_daemon(profiles: Option<&str>) -> Daemon {
    let extra = format!("  runner_path: {}\n", bin("agent-runner").display());
    let mut d = Daemon::start_with(profiles, &extra);
    d.kill();
    d
}

#[test]
fn embed_job_fans_out_over_two_repos_without_a_daemon() {
    let mut d = stopped_daemon(Some(PROFILE));
    let (a, b) = (
        harness::named_repo(&d, "alpha"),
        harness::named_repo(&d, "beta"),
    );
    let out = Command::new(example("embed_job"))
        .arg("--config")
        .arg(&d.config)
        .args(["--profile", "e2e", "--task", "embed", "--concurrency", "2"])
        .args(["--repo", &a, "--repo", &b])
        .output()
        .unwrap();
    let ctx = text(&out);
    assert!(out.status.success(), "{ctx}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("job")).collect();
    assert_eq!(rows.len(), 2, "{ctx}");
    for (row, repo) in rows.iter().zip([&a, &b]) {
        assert!(
            row.contains("COMPLETED") && row.contains(repo.as_str()),
            "{ctx}"
        );
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], "0", "exit code: {ctx}");
        assert_eq!(cols[4], "1", "one artifact: {ctx}");
    }

    // The daemon, started on the same config, sees the two jobs and their ended sandboxes.
    d.spawn();
    let jobs = d.json(&["job", "list"]);
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for job in jobs {
        assert_eq!(job["state"], "COMPLETED", "{job}");
        let vmid = job["sandbox"].as_u64().unwrap();
        d.wait_sandbox(vmid, |s| s["state"] == "DESTROYED");
    }
    let logs = d.cli(&["logs", jobs[0]["id"].as_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("embedded-agent"),
        "{}",
        text(&logs)
    );
}

#[test]
fn embed_job_reports_a_failed_job_with_exit_code_1() {
    let d = stopped_daemon(Some(&PROFILE.replace("echo embedded-agent;", "exit 3;")));
    let repo = harness::empty_repo(&d);
    let out = Command::new(example("embed_job"))
        .arg("--config")
        .arg(&d.config)
        .args(["--profile", "e2e", "--task", "fail", "--repo", &repo])
        .output()
        .unwrap();
    let ctx = text(&out);
    assert_eq!(out.status.code(), Some(1), "{ctx}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED"), "{ctx}");
}

/// One engine per data directory: a program started on the config of a running daemon is
/// refused before it touches anything, naming the daemon's pid; the daemon goes on.
#[test]
fn an_embedded_program_is_refused_while_the_daemon_runs() {
    let mut d = stopped_daemon(Some(PROFILE));
    d.spawn();
    let pid = d.pid().expect("daemon running");
    let repo = harness::empty_repo(&d);
    let out = Command::new(example("embed_job"))
        .arg("--config")
        .arg(&d.config)
        .args(["--profile", "e2e", "--task", "t", "--repo", &repo])
        .output()
        .unwrap();
    let ctx = text(&out);
    assert!(!out.status.success(), "{ctx}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("locked by another AgentLab engine")
            && stderr.contains(&format!("pid {pid}")),
        "{ctx}"
    );
    assert_eq!(
        d.json(&["job", "list"]),
        serde_json::json!([]),
        "no job was recorded"
    );
    // A second daemon on the same config is refused the same way, and the first still answers.
    let second = Command::new(bin("agentlabd"))
        .arg("--config")
        .arg(&d.config)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("locked by another AgentLab engine"),
        "{}",
        text(&second)
    );
    assert_eq!(d.json(&["sandbox", "list"]), serde_json::json!([]));
}

/// SIGKILL of an embedded program while its job's agent runs: the lock dies with it, a daemon
/// started on the same config recovers the job and destroys its sandbox, and no fake VM,
/// VM directory or runner process is left behind.
#[test]
fn a_sigkilled_embedded_program_is_recovered_by_the_daemon() {
    let mut d = stopped_daemon(Some(&PROFILE.replace("echo embedded-agent;", "sleep 3;")));
    let repo = harness::empty_repo(&d);
    let mut program = Command::new(example("embed_job"))
        .arg("--config")
        .arg(&d.config)
        .args(["--profile", "e2e", "--task", "killed", "--repo", &repo])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runners = |d: &Daemon| {
        crash::processes_under(d.dir.path())
            .into_iter()
            .filter(|p| p.contains("agent-runner") || p.contains("sleep 3"))
            .collect::<Vec<_>>()
    };
    let t0 = Instant::now();
    while runners(&d).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the job's runner never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    program.kill().unwrap();
    program.wait().unwrap();

    d.spawn();
    let job = d.json(&["job", "list"])[0].clone();
    let id = job["id"].as_str().unwrap().to_owned();
    let vmid = job["sandbox"].as_u64().unwrap();
    d.wait_sandbox(vmid, |s| s["state"] == "DESTROYED");
    let t0 = Instant::now();
    loop {
        let state = d.json(&["job", "show", &id])["state"].clone();
        if ["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"].contains(&state.as_str().unwrap()) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "job {id} still {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = Instant::now();
    while !runners(&d).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "left: {:?}",
            runners(&d)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.dir.path().join("vms/fake-state.json")).unwrap())
            .unwrap();
    let ours: Vec<_> = state["vms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|vm| vm["ours"] == true)
        .collect();
    assert!(ours.is_empty(), "VMs left: {ours:?}");
}

#[test]
fn embed_workspace_creates_renews_and_rebinds() {
    let mut d = stopped_daemon(None);
    let out = Command::new(example("embed_workspace"))
        .arg("--config")
        .arg(&d.config)
        .args(["--profile", "interactive-dev", "--workspace", "embedded"])
        .args(["--renew-minutes", "300", "--keep"])
        .output()
        .unwrap();
    let ctx = text(&out);
    assert!(out.status.success(), "{ctx}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("renewed by 300 min"), "{ctx}");
    assert!(stdout.contains("workspace rebound"), "{ctx}");

    // Kept: the daemon finds the workspace on the second sandbox, READY and keepalive.
    d.spawn();
    let ws = d.json(&["workspace", "show", "embedded"]);
    let vmid = ws["attached_to"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ws}\n{ctx}"));
    let sb = d.wait_sandbox(vmid, |s| s["state"] == "READY");
    assert_eq!(sb["lease"]["keepalive"], true, "{sb}");
    let sandboxes = d.json(&["sandbox", "list"]);
    let destroyed = sandboxes
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "DESTROYED" || s["state"] == "DESTROYING")
        .count();
    assert!(destroyed <= 1, "the old sandbox is destroyed: {sandboxes}");
}

/// The local backend: the program runs in the router namespace the lab built (as the daemon
/// would), its job runs in a real isolated sandbox, and a daemon started afterwards finds the
/// job COMPLETED and nothing left behind.
#[test]
fn embed_job_on_the_local_backend() {
    if !privileged() {
        return;
    }
    let profile = "name: e2e\ntemplate_vmid: 9000\nnetwork:\n  bridge: {bridge}\n  mode: nat\n\
         resources:\n  cores: 1\n  memory_mb: 512\n\
         behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
         repo:\n  clone_path: /home/agent/repo\nsecrets_bundle: default\n\
         agent:\n  command: \"echo embedded-local; git log --oneline | head -1\"\n";
    let mut lab = NetLab::start(profile, |_| vec![("README.md".into(), "hi\n".into())]);
    lab.kill_daemon();
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.router))
        .arg("--")
        .arg(example("embed_job"))
        .arg("--config")
        .arg(&lab.config)
        .args([
            "--profile",
            "e2e",
            "--task",
            "local",
            "--repo",
            &lab.repo_url(),
        ])
        .output()
        .unwrap();
    let ctx = text(&out);
    assert!(out.status.success(), "{ctx}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("COMPLETED"),
        "{ctx}"
    );
    lab.spawn_daemon();
    let jobs = lab.json(&["job", "list"]);
    let job = &jobs.as_array().unwrap()[0];
    assert_eq!(job["state"], "COMPLETED", "{job}");
    let vmid = job["sandbox"].as_u64().unwrap();
    lab.wait_sandbox(vmid, |s| s["state"] == "DESTROYED");
    lab.assert_no_traces(vmid);
}

/// `embed_pve_sim`: the Proxmox path with no Proxmox host. The program starts the PVE
/// simulator itself, its VMs run the real `agent-runner`, and the job's clone, log and
/// artifacts are real; every request the backend sent passed the schema.
#[test]
fn embed_pve_sim_runs_a_job_on_the_simulator() {
    if harness::pve_schema_or_skip().is_none() {
        return;
    }
    let d = stopped_daemon(None);
    let repo = harness::named_repo(&d, "simrepo");
    let data = d.dir.path().join("sim");
    let out = Command::new(example("embed_pve_sim"))
        .args(["--repo", &repo, "--task", "hello"])
        .arg("--runner")
        .arg(bin("agent-runner"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let ctx = text(&out);
    assert!(out.status.success(), "{ctx}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job = stdout
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" COMPLETED"))
        .unwrap_or_else(|| panic!("no COMPLETED job: {ctx}"));
    assert!(stdout.contains("exit code: 0\n"), "{ctx}");
    assert!(
        stdout.contains("log: agent ran on the pve simulator"),
        "{ctx}"
    );
    assert!(stdout.contains("artifact: artifacts.tar.gz"), "{ctx}");
    assert!(stdout.contains("(0 invalid against the schema)"), "{ctx}");
    let vmid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sandbox ")?.strip_suffix(" DESTROYED"))
        .unwrap_or_else(|| panic!("sandbox not destroyed: {ctx}"));

    // The simulated VM cloned the repository on the job's branch; the artifacts were stored.
    let head = Command::new("git")
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .current_dir(data.join("vms").join(vmid).join("checkout"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).trim(),
        format!("agentlab/{job}"),
        "{ctx}"
    );
    let stored = data
        .join("data/artifacts")
        .join(job)
        .join("artifacts.tar.gz");
    assert!(stored.is_file(), "{} missing: {ctx}", stored.display());
}

/// `embed_janitor --once`: on the state a daemon left, a dry run lists the old sandboxes and
/// changes nothing; the real sweep destroys them but keeps the keepalive one, and prints the
/// engine's events. The daemon restarted afterwards sees the same.
#[test]
fn embed_janitor_destroys_old_sandboxes_but_not_keepalive_ones() {
    let extra = format!("  runner_path: {}\n", bin("agent-runner").display());
    let mut d = Daemon::start_with(None, &extra);
    let new = |keep: bool| {
        let mut args = vec!["sandbox", "new", "--profile", "yolo-ephemeral"];
        args.extend(keep.then_some("--keepalive"));
        let vmid = d.json(&args)["vmid"].as_u64().unwrap();
        let sb = d.wait_sandbox(vmid, |s| s["state"] == "READY");
        assert_eq!(sb["lease"]["keepalive"], keep, "{sb}");
        vmid
    };
    let (a, b, kept) = (new(false), new(false), new(true));
    d.kill();
    let janitor = |args: &[&str]| {
        let out = Command::new(example("embed_janitor"))
            .arg("--config")
            .arg(&d.config)
            .arg("--once")
            .args(args)
            .output()
            .unwrap();
        let ctx = text(&out);
        assert!(out.status.success(), "{ctx}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), ctx)
    };

    let (stdout, ctx) = janitor(&["--older-than", "1h", "--dry-run"]);
    assert!(stdout.contains("0 sandbox(es) would be destroyed"), "{ctx}");
    let (stdout, ctx) = janitor(&["--older-than", "0m", "--dry-run"]);
    for vmid in [a, b] {
        assert!(stdout.contains(&format!("would destroy {vmid} ")), "{ctx}");
    }
    assert!(!stdout.contains(&format!(" {kept} ")), "{ctx}");
    assert!(stdout.contains("2 sandbox(es) would be destroyed"), "{ctx}");

    // The dry run left both: the real sweep still finds and destroys them.
    let (stdout, ctx) = janitor(&["--older-than", "0m"]);
    for vmid in [a, b] {
        assert!(stdout.contains(&format!("destroyed {vmid} ")), "{ctx}");
    }
    let sweep: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("event "))
        .collect();
    assert!(
        !sweep.iter().any(|l| l.contains(&format!(" {kept} "))),
        "{ctx}"
    );
    assert!(stdout.contains("2 sandbox(es) destroyed"), "{ctx}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("event ") && l.contains(&a.to_string())),
        "the engine's events are printed: {ctx}"
    );

    d.spawn();
    for vmid in [a, b] {
        assert_eq!(
            d.json(&["sandbox", "show", &vmid.to_string()])["state"],
            "DESTROYED",
            "{ctx}"
        );
    }
    let sb = d.wait_sandbox(kept, |s| s["state"] == "READY");
    assert_eq!(sb["lease"]["keepalive"], true, "{sb}");
}
