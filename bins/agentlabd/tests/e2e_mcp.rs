//! End to end: `agentlab mcp` driven by a real MCP client (the official Python SDK, `mcp`)
//! against the real daemon on the fake backend, whose boot hook runs the real `agent-runner`:
//! the tool list, a profile listing, a job run to COMPLETED with progress, its logs and
//! artifacts (a file read from inside the bundle), and daemon errors as `isError` results carrying the API's code.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::process::Command;

use harness::{Daemon, bin};

const SCRIPT: &str = include_str!("e2e/mcp_client.py");

const PROFILE: &str = "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
     behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
     repo:\n  clone_path: {dir}/checkout\nagent:\n  command: \"echo mcp-agent-output; \
     echo notes > $AGENTLAB_ARTIFACTS_DIR/notes.txt\"\n";

#[test]
fn a_python_mcp_client_runs_a_job_through_agentlab_mcp() {
    if !harness::python_mcp_available() {
        return;
    }
    let extra = format!("  runner_path: {}\n", bin("agent-runner").display());
    let d = Daemon::start_with(Some(PROFILE), &extra);
    let repo = harness::empty_repo(&d);
    let script = d.dir.path().join("mcp_client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(bin("agentlab"))
        .arg(&d.socket)
        .arg(&repo)
        .arg("e2e")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed\nstdout:\n{stdout}\nstderr:\n{stderr}\ndaemon log:\n{}",
        d.log()
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{stdout}\nstderr:\n{stderr}"));
    let ctx = || format!("{v:#}\nstderr:\n{stderr}\ndaemon log:\n{}", d.log());

    assert_eq!(v["server"]["name"], "agentlab", "{}", ctx());
    assert_eq!(v["server"]["version"], env!("CARGO_PKG_VERSION"));
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(
        tools,
        [
            "create_sandbox",
            "destroy_sandbox",
            "exec",
            "job_logs",
            "job_status",
            "list_artifacts",
            "list_profiles",
            "list_sandboxes",
            "read_artifact",
            "read_file",
            "renew_lease",
            "run_job",
            "show_sandbox",
            "write_file",
        ]
    );
    assert_eq!(v["list_profiles"]["is_error"], false);
    assert_eq!(v["list_profiles"]["json"][0]["name"], "e2e");

    let run = &v["run_job"];
    assert_eq!(run["is_error"], false, "{}", ctx());
    assert_eq!(run["json"]["finished"], true, "{}", ctx());
    assert_eq!(run["json"]["job"]["state"], "COMPLETED", "{}", ctx());
    let progress = v["progress"].as_array().unwrap();
    assert!(
        progress
            .iter()
            .any(|p| p["message"].as_str() == Some("mcp-agent-output")),
        "the agent's output arrives as progress: {}",
        ctx()
    );
    let steps: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["progress"].as_f64())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");

    assert_eq!(v["job_status"]["json"]["state"], "COMPLETED");
    assert_eq!(v["job_logs"]["is_error"], false);
    assert!(
        v["job_logs"]["text"]
            .as_str()
            .unwrap()
            .lines()
            .any(|l| l == "mcp-agent-output"),
        "{}",
        ctx()
    );
    let artifacts = v["list_artifacts"]["json"].as_array().unwrap();
    assert!(!artifacts.is_empty(), "{}", ctx());
    let name = artifacts[0]["name"].as_str().unwrap();
    assert_eq!(name, "artifacts.tar.gz", "{}", ctx());
    let read = v["read_artifact"]["text"].as_str().unwrap();
    assert!(
        read.contains("  runner.log\n") && read.contains("  artifacts/notes.txt\n"),
        "the bundle's file list: {read}"
    );
    assert_eq!(v["read_notes"]["is_error"], false, "{}", ctx());
    assert_eq!(v["read_notes"]["text"], "notes\n", "{}", ctx());

    let unknown = &v["unknown_profile"];
    assert_eq!(unknown["is_error"], true, "{}", ctx());
    assert!(
        unknown["text"]
            .as_str()
            .unwrap()
            .starts_with("profile_not_found: "),
        "{}",
        ctx()
    );
    let missing = &v["missing_sandbox"];
    assert_eq!(missing["is_error"], true);
    assert!(
        missing["text"]
            .as_str()
            .unwrap()
            .starts_with("sandbox_not_found: "),
        "{}",
        ctx()
    );
}
