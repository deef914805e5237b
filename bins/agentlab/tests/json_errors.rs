//! With `--json`, errors are JSON too: one line on stderr with the error envelope the API
//! uses (`{"error": {"code", "message", "details"}}`), the exit code unchanged.
#![cfg(test)]

use std::process::Command;

#[test]
fn errors_are_json_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_agentlab"))
        .args(["--json", "--socket", sock.to_str().unwrap(), "status"])
        .output()
        .expect("run agentlab");
    assert_eq!(
        out.status.code(),
        Some(69),
        "unreachable keeps its exit code"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_str(stderr.trim()).expect("one JSON line");
    assert_eq!(v["error"]["code"], "unreachable", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("none.sock"),
        "{v}"
    );
    // Without --json the same error is text.
    let out = Command::new(env!("CARGO_BIN_EXE_agentlab"))
        .args(["--socket", sock.to_str().unwrap(), "status"])
        .output()
        .expect("run agentlab");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}
