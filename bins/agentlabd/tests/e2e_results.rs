//! Results back to git, end to end with `backend: local`: a job run with `--push` whose agent
//! commits one change and leaves another uncommitted ends with its branch on a real git
//! server — `git http-backend` behind HTTP Basic auth in the lab's `wan` namespace, reached
//! from the sandbox through AgentLab's firewall — with the credentials from the secrets
//! bundle, and with the job record showing the pushed branch and commit.
//!
//! Privileged: needs root, `bwrap`, `ip`, `nft`, `nsenter`, `git`, `python3`. Without them
//! the test prints `SKIP: …` (or panics under `CI`). Nothing is sent from the machine's own
//! network namespace.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/netlab.rs"]
mod netlab;

use std::process::Command;

use netlab::{NetLab, privileged};

/// The bundle's git token (distinctive, so a leak is easy to find).
const TOKEN: &str = "e2e-push-token-Zq81xVw0";

/// Commits one change, leaves one file uncommitted.
const AGENT: &str =
    "echo pushed-by-e2e >> README.md && git commit -qam 'e2e change' && echo left > left.txt";

fn profile() -> String {
    format!(
        "name: e2e\ntemplate_vmid: 9000\nnetwork:\n  bridge: {{bridge}}\n  mode: nat\n\
         resources:\n  cores: 1\n  memory_mb: 512\n\
         behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
         repo:\n  clone_path: /home/agent/repo\nsecrets_bundle: default\n\
         result:\n  branch: e2e/{{job}}\n\
         agent:\n  command: {AGENT:?}\n"
    )
}

fn server_git(lab: &NetLab, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(lab.server_repo())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn pushed_job_branch_lands_on_the_server_and_in_the_job_record() {
    if !privileged() {
        return;
    }
    let mut lab = NetLab::start(&profile(), |_| Vec::new());
    lab.secrets(&["set-git", "--username", "bob"], Some(TOKEN));
    let url = lab.serve_git_http("bob", TOKEN);
    let out = lab.cli(&[
        "job",
        "run",
        "--repo",
        &url,
        "--task",
        "edit",
        "--profile",
        "e2e",
        "--push",
    ]);
    let jobs = lab.json(&["job", "list"]);
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    let job = lab.json(&["job", "show", &id]);
    let text = format!(
        "stdout:\n{}\nstderr:\n{}\njob: {job}\nlog:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(job["state"], "COMPLETED", "{text}");
    let branch = format!("e2e/{id}");
    assert_eq!(job["result"]["branch"], branch.as_str(), "{text}");
    assert_eq!(job["pushed"]["branch"], branch.as_str(), "{text}");
    let commit = job["pushed"]["commit"].as_str().unwrap().to_owned();
    assert_eq!(job["outcome"]["commit"], commit.as_str());
    // The server has the branch at that commit: the agent's change plus the committed leftover.
    assert_eq!(
        server_git(&lab, &["rev-parse", &format!("refs/heads/{branch}")]),
        commit
    );
    assert_eq!(
        server_git(&lab, &["show", &format!("{branch}:left.txt")]),
        "left"
    );
    let subjects = server_git(&lab, &["log", "--format=%an|%s", "-2", &branch]);
    assert!(
        subjects.starts_with("AgentLab|AgentLab: changes"),
        "{subjects}"
    );
    assert!(subjects.ends_with("|e2e change"), "{subjects}");
    // The base branch is untouched.
    assert_eq!(
        server_git(&lab, &["log", "--format=%s", "-1", "main"]),
        "init"
    );
    // The CLI shows it; the steps are events; the token appears nowhere.
    let shown = lab.cli(&["job", "show", &id]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("pushed:") && shown.contains(&commit),
        "{shown}"
    );
    let events = lab.json(&["logs", &id]);
    let steps: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "job_step")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(steps.contains(&"push"), "{steps:?}");
    let everything = format!("{text}\n{shown}\n{events}");
    assert!(!everything.contains(TOKEN), "the token leaked");
}
