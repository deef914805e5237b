//! Prerequisite handling: FAIL in CI (env `CI` set), skip with a printed reason elsewhere.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `Ok(())` or the reason the test cannot run here.
pub fn skip_or_fail(reason: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("prerequisite missing in CI: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Checks root and tools; false (after printing) when missing outside CI.
pub fn require(tools: &[(&str, &str)]) -> bool {
    match agentlab_image::tools::check(tools) {
        Ok(()) => true,
        Err(e) => skip_or_fail(&e.to_string()),
    }
}

/// The workspace's `agent-runner` binary (built with cargo when missing).
pub fn runner_binary() -> PathBuf {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| ws.join("target"), PathBuf::from);
    let bin = target.join("debug/agent-runner");
    if !bin.is_file() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "agent-runner"])
            .current_dir(&ws)
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p agent-runner failed");
    }
    bin
}

/// Whether the npm registry answers (the first, cache-filling npm run needs it).
pub fn npm_registry_reachable() -> bool {
    Command::new("npm")
        .args(["view", "is-number@7.0.0", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}
