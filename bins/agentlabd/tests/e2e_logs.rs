//! End to end: agentlabd's log format off a terminal — JSON lines by default (`auto`) and
//! with `--log-format json`, plain text without ANSI escapes with `--log-format text`.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{Daemon, bin, cli_at};

/// Runs the daemon of `d`'s config with stderr to a pipe and `args`, until it answers; stops
/// it with SIGTERM and returns what it wrote to stderr.
fn stderr_of(d: &Daemon, args: &[&str]) -> String {
    let mut child = Command::new(bin("agentlabd"))
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        pipe.read_to_string(&mut s).unwrap();
        s
    });
    let t0 = Instant::now();
    while !cli_at(&d.socket, &["status"]).status.success() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    child.wait().unwrap();
    reader.join().unwrap()
}

fn assert_json_lines(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    assert!(text.contains("\"listening\""), "{text}");
}

#[test]
fn logs_are_json_lines_off_a_terminal_and_text_has_no_ansi() {
    let mut d = Daemon::start("");
    // The harness sends stderr to a file: `auto` wrote JSON there too.
    assert_json_lines(&d.log());
    d.kill();

    assert_json_lines(&stderr_of(&d, &[]));
    assert_json_lines(&stderr_of(&d, &["--log-format", "json"]));

    let text = stderr_of(&d, &["--log-format", "text"]);
    assert!(text.contains("listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape in {text:?}");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()),
        "{text}"
    );
}
