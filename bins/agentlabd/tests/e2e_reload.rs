//! End to end: profiles reloaded by SIGHUP and `agentlab profile reload` in a real daemon, and
//! `agentlab profile validate` with no daemon at all.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{Daemon, cli_at};

fn profile(name: &str) -> String {
    format!(
        "name: {name}\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
         behavior:\n  ttl_minutes_default: 10\nagent:\n  command: \"true\"\n"
    )
}

fn names(d: &Daemon) -> Vec<String> {
    d.json(&["profile", "ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn hup(d: &Daemon) {
    let pid = d.pid().unwrap().to_string();
    let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(st.success());
}

/// Waits until the daemon's log holds `needle` `n` times.
fn wait_log(d: &Daemon, needle: &str, n: usize) {
    let t0 = Instant::now();
    while d.log().matches(needle).count() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no {needle:?} in the log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_and_profile_reload_swap_the_set_and_keep_it_on_errors() {
    let d = Daemon::start_with(Some(&profile("alpha")), "");
    let dir = d.dir.path().join("profiles");
    assert_eq!(names(&d), vec!["alpha"]);

    // SIGHUP applies a new file.
    std::fs::write(dir.join("more.yaml"), profile("beta")).unwrap();
    hup(&d);
    wait_log(&d, "profiles reloaded", 1);
    assert_eq!(names(&d), vec!["alpha", "beta"]);

    // An invalid file: SIGHUP is refused with a log line, the set is kept.
    std::fs::write(
        dir.join("bad.yaml"),
        profile("gamma").replace("cores", "coers"),
    )
    .unwrap();
    hup(&d);
    wait_log(&d, "reload refused", 1);
    assert_eq!(names(&d), vec!["alpha", "beta"]);

    // The CLI route gives the typed error, naming the file and field.
    let out = d.cli(&["profile", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("coers"), "{err}");
    assert!(err.contains("invalid_profile"), "{err}");

    // Fixed: the CLI reload applies it and says what changed.
    std::fs::remove_file(dir.join("more.yaml")).unwrap();
    std::fs::write(dir.join("bad.yaml"), profile("gamma")).unwrap();
    let report = d.json(&["profile", "reload"]);
    assert_eq!(report["profiles"]["added"], serde_json::json!(["gamma"]));
    assert_eq!(report["profiles"]["removed"], serde_json::json!(["beta"]));
    assert_eq!(report["restart_required"], serde_json::json!([]));
    assert_eq!(names(&d), vec!["alpha", "gamma"]);
}

#[test]
fn profile_validate_works_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-daemon.sock");
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    let dup = dir.path().join("dup.yaml");
    std::fs::write(&good, format!("{}---\n{}", profile("a"), profile("b"))).unwrap();
    std::fs::write(&bad, profile("c").replace("memory_mb", "memroy_mb")).unwrap();
    std::fs::write(&dup, profile("a")).unwrap();
    let path = |p: &Path| p.display().to_string();

    let out = cli_at(&nowhere, &["profile", "validate", &path(&good)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid (a, b)"), "{text}");

    let out = cli_at(
        &nowhere,
        &[
            "--json",
            "profile",
            "validate",
            &path(&good),
            &path(&bad),
            &path(&dup),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[1]["error"]["code"], "invalid_profile");
    assert_eq!(files[1]["error"]["details"]["suggestion"], "memory_mb");
    assert_eq!(files[2]["error"]["code"], "duplicate");

    let out = cli_at(&nowhere, &["profile", "validate", &path(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml, document 1, field resources.memroy_mb (line 5, column 3)"),
        "{err}"
    );
    assert!(err.contains("did you mean \"memory_mb\"?"), "{err}");
}

/// A profile written for the Go original loads with one warning per old spelling in the
/// daemon's log (at start and at each reload) and `profile validate` prints the same.
#[test]
fn go_profile_keys_load_with_deprecation_warnings() {
    let go = "name: legacy\ntemplate_vmid: 9000\nnetwork:\n  firewall_group: agent_nat_default\n\
              resources:\n  cores: 1\n  memory_mb: 512\n  balloon: false\nbehavior:\n  \
              mode: dangerous\nagent:\n  command: \"true\"\n";
    let d = Daemon::start_with(Some(go), "");
    assert_eq!(names(&d), vec!["legacy"]);
    wait_log(&d, "deprecated profile key accepted", 3);
    let log = d.log();
    for field in [
        "network.firewall_group",
        "resources.balloon",
        "behavior.mode",
    ] {
        assert!(log.contains(field), "{field} not in the log:\n{log}");
    }
    let shown = d.json(&["profile", "show", "legacy"]);
    assert_eq!(shown["behavior"]["mode"], "yolo", "{shown}");
    assert_eq!(shown["network"]["mode"], "nat", "{shown}");
    assert_eq!(shown["resources"]["balloon"], 0, "{shown}");

    let file = d.dir.path().join("go.yaml");
    std::fs::write(&file, go).unwrap();
    let out = Command::new(harness::bin("agentlab"))
        .args(["profile", "validate"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("(deprecated)").count(), 3, "{err}");
}
