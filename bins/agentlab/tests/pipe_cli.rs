//! Output into a pipe whose reader went away (`agentlab … | head`): the CLI ends quietly
//! with 0 instead of panicking (exit 101).
#![cfg(test)]

use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_pipe_ends_the_cli_quietly() {
    for args in [&["completion", "bash"][..], &["completion", "zsh"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agentlab"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agentlab");
        // Close the read end before the script is written: the write gets EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
