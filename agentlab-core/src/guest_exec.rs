//! Running one command through the hypervisor's own guest agent ([`GuestExec`], reached
//! through [`crate::hypervisor::Hypervisor::guest_exec`]): the fallback way into a sandbox
//! whose AgentLab guest agent (`agent-runner`) is not connected.
//!
//! It is deliberately small: the whole stdin is given up front, the output comes back in one
//! piece when the command has ended (capped at [`GuestExecRequest::max_output`] bytes per
//! stream), there is no PTY, no signals and no way to stop the command — a command that
//! outlives [`GuestExecRequest::timeout`] keeps running in the guest. Proxmox VE implements it
//! with `agent/exec` + `agent/exec-status`, QEMU with the QEMU guest agent's `guest-exec` +
//! `guest-exec-status`.

use std::time::Duration;

use async_trait::async_trait;

use crate::hypervisor::HypervisorError;
use crate::ids::Vmid;

/// A command for [`GuestExec::exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExecRequest {
    /// Program and arguments (`argv[0]` looked up in the guest agent's `PATH`; it runs as the
    /// guest agent's user, normally root).
    pub argv: Vec<String>,
    /// The command's whole stdin (`None`: none).
    pub input: Option<Vec<u8>>,
    /// How long to wait for the command to end.
    pub timeout: Duration,
    /// Most bytes kept of stdout and of stderr each; beyond it the output is cut and
    /// [`GuestExecOutput::truncated`] set.
    pub max_output: usize,
}

/// How a [`GuestExecRequest`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestExecOutput {
    /// Exit code; for a command ended by a signal, 128 + the signal number.
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Its stdout (at most `max_output` bytes).
    pub stdout: Vec<u8>,
    /// Its stderr (at most `max_output` bytes).
    pub stderr: Vec<u8>,
    /// Some output was cut: by `max_output`, or by the guest agent's own limit.
    pub truncated: bool,
}

impl GuestExecOutput {
    /// Cuts stdout and stderr to `max` bytes each, setting `truncated` when it cut.
    pub fn cap(&mut self, max: usize) {
        for out in [&mut self.stdout, &mut self.stderr] {
            if out.len() > max {
                out.truncate(max);
                self.truncated = true;
            }
        }
    }
}

/// Why a [`GuestExec::exec`] failed.
#[derive(Debug, thiserror::Error)]
pub enum GuestExecError {
    /// The hypervisor's guest agent cannot run it now: not configured, the VM is not
    /// running, or the agent does not answer.
    #[error("the hypervisor's guest agent is not available: {0}")]
    AgentUnavailable(String),
    /// The command did not end within its timeout; it may still run in the guest (the guest
    /// agent cannot stop it).
    #[error(
        "the command did not end within {0:?}; it may still run in the guest (the guest agent cannot stop it)"
    )]
    TimedOut(Duration),
    /// The guest agent refused or failed the command (e.g. no such program).
    #[error("the guest agent could not run the command: {0}")]
    Failed(String),
    /// The hypervisor failed (unreachable, no privilege, no such VM).
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
}

/// Optional ability of backends whose VMs run a hypervisor guest agent (Proxmox VE, QEMU):
/// run one command in the guest through it. Reached through
/// [`crate::hypervisor::Hypervisor::guest_exec`].
#[async_trait]
pub trait GuestExec: Send + Sync {
    /// Runs `req` in `vmid`'s guest and waits (up to `req.timeout`) for it to end.
    async fn exec(
        &self,
        vmid: Vmid,
        req: &GuestExecRequest,
    ) -> Result<GuestExecOutput, GuestExecError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_each_stream_and_says_so() {
        let mut out = GuestExecOutput {
            stdout: vec![1; 10],
            stderr: vec![2; 3],
            ..Default::default()
        };
        out.cap(5);
        assert_eq!(out.stdout, vec![1; 5]);
        assert_eq!(out.stderr, vec![2; 3]);
        assert!(out.truncated);
        let mut small = GuestExecOutput {
            stdout: b"ok".to_vec(),
            ..Default::default()
        };
        small.cap(5);
        assert!(!small.truncated);
    }
}
