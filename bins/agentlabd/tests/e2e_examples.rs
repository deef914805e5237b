//! End to end: the scripting templates of `examples/` (`run_job`, `fan_out`, `watch_events`,
//! `cleanup`, examples of the `agentlab-examples` package) run as real programs against the real
//! daemon on the fake backend, whose boot hook runs the real `agent-runner`, so jobs really
//! complete.
//!
//! The example binaries are taken from `target/<profile>/examples/`, next to the daemon's
//! directory. `scripts/test.sh` builds them (`cargo build --workspace --all-targets`); when one
//! is missing, [`example`] builds them with `cargo build -p agentlab-examples --examples`.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use harness::{Daemon, bin, example};

/// The fake backend runs each VM's `agent-runner` on the host, in the VM's own directory; the
/// clone path goes through `/proc/self/cwd` so that concurrent jobs clone into their own VM's
/// directory instead of one shared checkout.
const PROFILE: &str = "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
     behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
     repo:\n  clone_path: /proc/self/cwd/checkout\nagent:\n  command: \"echo examples-agent-output; \
     sleep 1; echo examples-agent-done\"\n";

/// The example `name` as a command talking to `d` through `AGENTLAB_SOCKET`.
fn cmd(d: &Daemon, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(example(name));
    c.args(args)
        .env("AGENTLAB_SOCKET", &d.socket)
        .env_remove("AGENTLAB_ENDPOINT");
    c
}

fn run(d: &Daemon, name: &str, args: &[&str]) -> (Output, String) {
    let out = cmd(d, name, args).output().unwrap();
    let text = format!(
        "{name} {args:?} exited {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// A repository `name` with one commit under the daemon's dir; its `file://` URL.
fn repo(d: &Daemon, name: &str) -> String {
    harness::named_repo(d, name)
}

fn daemon() -> Daemon {
    let extra = format!("  runner_path: {}\n", bin("agent-runner").display());
    Daemon::start_with(Some(PROFILE), &extra)
}

fn timestamp(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .to_utc()
}

#[test]
fn run_job_completes_while_watch_events_follows_it() {
    let d = daemon();
    let url = repo(&d, "repo");
    let mut child = cmd(
        &d,
        "run_job",
        &["--repo", &url, "--task", "say hello", "--profile", "e2e"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let job = first
        .strip_prefix("submitted ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("first line of run_job: {first:?}\nlog:\n{}", d.log()))
        .to_owned();

    // Follows the job while it runs, until the daemon ends the stream.
    let (watch, ctx) = run(&d, "watch_events", &["--job", &job]);
    assert!(watch.status.success(), "{ctx}\nlog:\n{}", d.log());
    let events = String::from_utf8_lossy(&watch.stdout);
    let lines: Vec<&str> = events.lines().collect();
    let has = |kind: &str, msg: &str| {
        lines
            .iter()
            .any(|l| l.contains(&format!(" {job} {kind} ")) && l.contains(msg))
    };
    assert!(has("job_queued", ""), "{ctx}");
    assert!(has("job_log", "examples-agent-output"), "{ctx}");
    assert!(has("job_log", "examples-agent-done"), "{ctx}");
    assert!(has("job_finished", ""), "{ctx}");
    assert_eq!(
        lines.last().copied(),
        Some(format!("job {job} ended COMPLETED").as_str()),
        "{ctx}"
    );

    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "run_job: {status}\n{first}{rest}");
    assert!(
        rest.starts_with(&format!("job {job} ended COMPLETED after ")),
        "{first}{rest}"
    );
    assert!(rest.contains("\n  summary:   "), "{first}{rest}");
    assert_eq!(d.json(&["job", "show", &job])["state"], "COMPLETED");

    // A job that fails: run_job says so and exits non-zero.
    let missing = format!("file://{}", d.dir.path().join("no-such-repo").display());
    let (out, ctx) = run(
        &d,
        "run_job",
        &["--repo", &missing, "--task", "t", "--profile", "e2e"],
    );
    assert_eq!(out.status.code(), Some(1), "{ctx}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" ended FAILED after "),
        "{ctx}"
    );
}

#[test]
fn fan_out_runs_three_repos_two_at_a_time() {
    let d = daemon();
    let repos: Vec<String> = (1..=3).map(|i| repo(&d, &format!("repo{i}"))).collect();
    let file = d.dir.path().join("repos.txt");
    std::fs::write(&file, format!("# fleet\n{}\n\n{}\n", repos[1], repos[2])).unwrap();
    let (out, ctx) = run(
        &d,
        "fan_out",
        &[
            "--task",
            "say hello",
            "--profile",
            "e2e",
            "--concurrency",
            "2",
            "--repos-file",
            &file.display().to_string(),
            &repos[0],
        ],
    );
    assert!(out.status.success(), "{ctx}\nlog:\n{}", d.log());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{ctx}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["REPO", "JOB", "STATE", "DURATION"], "{ctx}");
    assert_eq!(lines[4], "3 jobs, 3 completed, 0 not", "{ctx}");
    let mut spans = Vec::new();
    for (row, url) in lines[1..4].iter().zip(&repos) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 4, "{ctx}");
        assert_eq!(cols[0], url, "rows in input order: {ctx}");
        assert!(cols[1].starts_with("job-"), "{ctx}");
        assert_eq!(cols[2], "COMPLETED", "{ctx}");
        assert!(cols[3].ends_with('s'), "{ctx}");
        let job = d.json(&["job", "show", cols[1]]);
        assert_eq!(job["state"], "COMPLETED");
        assert_eq!(job["repo"], *url);
        spans.push((timestamp(&job["created_at"]), timestamp(&job["ended_at"])));
    }
    // Never more than two jobs at once: at each job's submission, fewer than two others ran.
    for (i, (start, _)) in spans.iter().enumerate() {
        let running = spans
            .iter()
            .enumerate()
            .filter(|(j, (s, e))| *j != i && s <= start && start < e)
            .count();
        assert!(running < 2, "{spans:?}\n{ctx}");
    }
}

#[test]
fn cleanup_lists_then_destroys_old_sandboxes() {
    let d = daemon();
    let sb = d.json(&["sandbox", "new", "--profile", "e2e"]);
    let vmid = sb["vmid"].as_u64().unwrap();
    d.wait_sandbox(vmid, |v| v["state"] == "READY");
    let line = format!(" {vmid} ");

    // Too young: nothing to do.
    let (out, ctx) = run(&d, "cleanup", &["--older-than", "60", "--dry-run"]);
    assert!(out.status.success(), "{ctx}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(&line), "{ctx}");
    assert!(
        stdout.contains("0 sandbox(es) older than 60 minute(s)"),
        "{ctx}"
    );

    // Another profile: not listed.
    let (out, ctx) = run(
        &d,
        "cleanup",
        &["--older-than", "0", "--profile", "other", "--dry-run"],
    );
    assert!(out.status.success(), "{ctx}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&line),
        "{ctx}"
    );

    // Dry run: listed, left alone.
    let (out, ctx) = run(&d, "cleanup", &["--older-than", "0", "--dry-run"]);
    assert!(out.status.success(), "{ctx}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("would destroy {vmid} ")) && stdout.contains("profile=e2e"),
        "{ctx}"
    );
    assert!(stdout.contains("none destroyed (dry run)"), "{ctx}");
    assert_eq!(
        d.json(&["sandbox", "show", &vmid.to_string()])["state"],
        "READY"
    );

    // Follows the sandbox's events while cleanup destroys it; the stream ends with it.
    let mut watcher = cmd(&d, "watch_events", &["--sandbox", &vmid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // For real.
    let (out, ctx) = run(&d, "cleanup", &["--older-than", "0", "--profile", "e2e"]);
    assert!(out.status.success(), "{ctx}\nlog:\n{}", d.log());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("destroying {vmid} ")), "{ctx}");
    assert!(stdout.contains(&format!("destroyed {vmid}\n")), "{ctx}");
    assert_eq!(
        d.json(&["sandbox", "show", &vmid.to_string()])["state"],
        "DESTROYED"
    );
    let (out, ctx) = run(&d, "cleanup", &["--older-than", "0", "--dry-run"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&line),
        "{ctx}"
    );

    // The stream must end with the sandbox (its few lines fit in the pipes meanwhile).
    let t0 = std::time::Instant::now();
    while watcher.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(30) {
            let _ = watcher.kill();
            panic!("watch_events --sandbox did not end\nlog:\n{}", d.log());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = watcher.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout);
    let ctx = format!(
        "{events}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "watch_events --sandbox: {}\n{ctx}",
        out.status
    );
    assert!(
        events.contains(&format!(" {vmid} sandbox_requested ")),
        "{ctx}"
    );
    assert!(events.contains(" state_changed "), "{ctx}");
    assert!(events.ends_with("event stream ended\n"), "{ctx}");
}

#[test]
fn the_examples_refuse_a_missing_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket: &Path = &dir.path().join("none.sock");
    let out = Command::new(example("cleanup"))
        .args(["--older-than", "0"])
        .env("AGENTLAB_SOCKET", socket)
        .env_remove("AGENTLAB_ENDPOINT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no socket file there"), "{stderr}");
}
