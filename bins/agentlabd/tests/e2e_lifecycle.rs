//! End to end through the real daemon and CLI binaries (fake backend): sandbox lifecycle,
//! error output and the unreachable-daemon message.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use harness::{Daemon, bin};

#[test]
fn sandbox_create_list_show_renew_destroy() {
    let d = Daemon::start("");
    let sb = d.json(&[
        "sandbox",
        "new",
        "--profile",
        "interactive-dev",
        "--ttl",
        "30",
    ]);
    let vmid = sb["vmid"].as_u64().unwrap();
    d.wait_sandbox(vmid, |v| v["state"] == "READY");
    let list = d.json(&["sandbox", "list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["vmid"].as_u64() == Some(vmid))
    );
    let human = d.cli(&["sandbox", "list"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains(&vmid.to_string()));
    let renewed = d.json(&[
        "sandbox",
        "lease",
        "renew",
        &vmid.to_string(),
        "--ttl",
        "120",
    ]);
    assert_eq!(renewed["lease"]["ttl_minutes"], 120);
    let gone = d.json(&["sandbox", "destroy", &vmid.to_string()]);
    assert_eq!(gone["state"], "DESTROYED");
    let status = d.json(&["status"]);
    assert_eq!(status["backend"], "fake");
    // A clear error with the API code.
    let out = d.cli(&["sandbox", "show", "99999"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sandbox_not_found"), "{err}");
}

#[test]
fn unreachable_daemon_names_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nothing.sock");
    let out = std::process::Command::new(bin("agentlab"))
        .arg("--socket")
        .arg(&sock)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&sock.display().to_string()) && err.contains("agentlabd"),
        "{err}"
    );
}

#[test]
fn every_binary_prints_version_and_commit() {
    for name in ["agentlab", "agentlabd", "agent-runner"] {
        let out = std::process::Command::new(bin(name))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(&format!("{name} {}", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
        assert!(
            text.contains("(commit ") && text.contains(", built "),
            "{text}"
        );
    }
}
