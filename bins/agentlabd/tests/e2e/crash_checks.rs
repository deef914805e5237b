//! What the crash matrices (`e2e_crash*.rs`) check after a restart: every sandbox and job
//! settles in a final state with a cause.
#![allow(dead_code)]

/// Sandbox states a crash test may end in.
pub const SETTLED: [&str; 5] = ["READY", "COMPLETED", "FAILED", "TIMEOUT", "DESTROYED"];

/// A sandbox is settled in a final (or READY) state; a failure carries `last_error`.
pub fn sandbox_settled(s: &serde_json::Value) -> bool {
    let state = s["state"].as_str().unwrap_or_default();
    SETTLED.contains(&state)
        // DESTROYED by request or at the end of an ephemeral job: the cause is in its events.
        && (matches!(state, "READY" | "COMPLETED" | "DESTROYED") || s["last_error"].is_string())
}

/// A job is final with a cause: a completed job's report, any other end an error or an exit
/// code.
pub fn job_settled(j: &serde_json::Value) -> bool {
    let state = j["state"].as_str().unwrap_or_default();
    let caused = if state == "COMPLETED" {
        j["outcome"].is_object()
    } else {
        j["outcome"]["error"].is_string() || j["outcome"]["exit_code"].is_number()
    };
    matches!(state, "COMPLETED" | "FAILED" | "TIMEOUT" | "CANCELLED") && caused
}

/// Whether `pid` is gone or a zombie.
pub fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(true)
}

/// The last 30 lines of a log.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Regular files under `root` whose name ends with `suffix`.
pub fn files_ending(root: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(format!("file {}", path.display()));
            }
        }
    }
    found
}
