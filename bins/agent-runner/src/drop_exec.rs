//! `agent-runner drop-exec --uid U --gid G -- argv…`: becomes that user (no supplementary
//! groups) and executes argv in place. The channel runs terminal execs for another user
//! through it, inside the terminal it already set up.

use std::process::ExitCode;

/// Runs the helper; returns only on failure (exit 127, as shells report a command that
/// could not run).
pub fn run(uid: u32, gid: u32, argv: &[String]) -> ExitCode {
    let e = agentlab_guest::privdrop::exec_as(uid, gid, argv);
    eprintln!("agent-runner drop-exec: {e}");
    ExitCode::from(127)
}
