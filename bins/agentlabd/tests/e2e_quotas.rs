//! End to end through the real daemon and CLI (fake backend): `quotas:` refusals. A sandbox
//! over `max_sandboxes` is a typed 409 the CLI shows (exit 1, `--json` error naming the
//! limit); an artifact over `max_artifact_bytes_per_job`, uploaded by the real
//! `agent-runner`, is refused with an event on the job and no file left.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::process::Command;

use harness::{Daemon, bin};

#[test]
fn sandbox_new_over_quota_is_refused_naming_the_limit() {
    let d = Daemon::start("quotas:\n  max_sandboxes: 1\n");
    let first = d.json(&["sandbox", "new", "--profile", "interactive-dev"]);
    let vmid = first["vmid"].as_u64().unwrap();
    d.wait_sandbox(vmid, |v| v["state"] == "READY");

    let out = d.cli(&["--json", "sandbox", "new", "--profile", "yolo-ephemeral"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON error line: {stderr}"));
    let err: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(err["error"]["code"], "quota_exceeded", "{err}");
    assert_eq!(err["error"]["details"]["limit"], "max_sandboxes");
    assert_eq!(err["error"]["details"]["value"], 1);
    assert_eq!(err["error"]["details"]["used"], 1);

    let human = d.cli(&["sandbox", "new", "--profile", "yolo-ephemeral"]);
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8_lossy(&human.stderr);
    assert!(
        text.contains("quotas.max_sandboxes is 1, 1 in use"),
        "{text}"
    );

    // The slot frees when the sandbox is destroyed.
    d.json(&["sandbox", "destroy", &vmid.to_string()]);
    d.json(&["sandbox", "new", "--profile", "yolo-ephemeral"]);
}

#[test]
fn an_artifact_over_the_job_quota_is_refused_and_recorded() {
    let profiles = "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
        behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
        repo:\n  clone_path: {dir}/checkout\nagent:\n  command: \
        \"head -c 20000 /dev/urandom > $AGENTLAB_ARTIFACTS_DIR/big.bin\"\n";
    let extra = format!(
        "  runner_path: {}\nquotas:\n  max_artifact_bytes_per_job: 1000\n",
        bin("agent-runner").display()
    );
    let d = Daemon::start_with(Some(profiles), &extra);
    let repo = d.dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "demo\n").unwrap();
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "init"]);
    let url = format!("file://{}", repo.display());
    let out = d.cli(&[
        "job",
        "run",
        "--repo",
        &url,
        "--task",
        "t",
        "--profile",
        "e2e",
    ]);
    let jobs = d.json(&["job", "list"]);
    let job = &jobs.as_array().unwrap()[0];
    let id = job["id"].as_str().unwrap();
    assert!(
        ["COMPLETED", "FAILED"].contains(&job["state"].as_str().unwrap()),
        "the job ends: {job}\n{out:?}\n{}",
        d.log()
    );
    let events = d.json(&["job", "logs", id]);
    let refusal = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "quota_exceeded")
        .unwrap_or_else(|| panic!("no quota_exceeded event: {events}\n{}", d.log()));
    assert_eq!(refusal["payload"]["limit"], "max_artifact_bytes_per_job");
    assert_eq!(refusal["payload"]["value"], 1000);
    assert!(
        d.json(&["job", "artifacts", id])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let dir = d.dir.path().join("data/artifacts").join(id);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing is left on disk: {left:?}");
}
