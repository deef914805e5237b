//! [`LocalError`]: failures inside the local backend, mapped onto [`HypervisorError`] at the
//! trait boundary.

use std::path::PathBuf;

use agentlab_core::HypervisorError;
use agentlab_net::NetError;

/// Errors of the local backend.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A file or directory operation failed.
    #[error("Cannot {action} {path}")]
    Io {
        /// What was being done (`write`, `read`, `remove`, …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An `ip`/`sysctl` command failed.
    #[error("Network setup failed")]
    Net(#[source] NetError),
    /// A program could not be spawned.
    #[error("Cannot start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox exited during start; the tail of its log (no secrets: the token only
    /// travels in the bootstrap file).
    #[error("Sandbox {vmid} exited during start: {log_tail}")]
    StartFailed {
        /// The sandbox.
        vmid: u32,
        /// Last lines of `runner.log`.
        log_tail: String,
    },
    /// A prerequisite is missing (bridge, runner binary, bwrap).
    #[error("{0}")]
    Missing(String),
    /// The host cannot enforce the sandbox's resource limits and `allow_unlimited` is off.
    #[error(
        "Resource limits cannot be enforced: cgroup controller(s) {missing} missing ({detail}); \
         set local.allow_unlimited: true to run sandboxes without limits"
    )]
    LimitsUnavailable {
        /// The missing controllers (`memory, cpu, pids`).
        missing: String,
        /// Where they were looked for.
        detail: String,
    },
    /// Destroy/stop could not verify that a piece of the sandbox is gone.
    #[error("Sandbox {vmid} is not gone: {what}")]
    NotGone {
        /// The sandbox.
        vmid: u32,
        /// What is left (processes, network namespace, cgroup).
        what: String,
    },
    /// No subordinate uid/gid range is free (`local.uid_slots` sandboxes exist).
    #[error("No free uid range: all {slots} slots are in use")]
    NoUidSlot {
        /// `local.uid_slots`.
        slots: u32,
    },
    /// A stored file could not be parsed.
    #[error("Corrupt state file {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
}

impl LocalError {
    /// An [`LocalError::Io`] builder for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

impl From<NetError> for LocalError {
    fn from(e: NetError) -> Self {
        Self::Net(e)
    }
}

impl From<LocalError> for HypervisorError {
    fn from(e: LocalError) -> Self {
        match e {
            LocalError::Missing(_) | LocalError::Spawn { .. } => Self::Unavailable(Box::new(e)),
            // Refusals whose message is the whole point: keep it in the top-level text.
            LocalError::LimitsUnavailable { .. } | LocalError::NoUidSlot { .. } => Self::Rejected {
                reason: e.to_string(),
            },
            e => Self::Backend(Box::new(e)),
        }
    }
}
