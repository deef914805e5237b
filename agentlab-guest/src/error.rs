//! The crate's error type, [`GuestError`].
//!
//! The binary maps errors to exit codes with [`GuestError::is_retryable`]: retryable conditions
//! (controller unreachable, bootstrap file not there yet) exit 1 so systemd restarts the runner;
//! everything else exits 2 (use `RestartPreventExitStatus=2`). No message ever contains a secret
//! value.

use std::path::PathBuf;

/// Errors of the runner.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The bootstrap file exists but is not valid.
    #[error("Bootstrap file {path} is invalid: {reason}")]
    BootstrapFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (never contains the token).
        reason: String,
    },
    /// No bootstrap file appeared in time.
    #[error("No bootstrap file after {waited_secs} s (looked for {paths})")]
    BootstrapMissing {
        /// Seconds waited.
        waited_secs: u64,
        /// The candidate paths, comma-separated.
        paths: String,
    },
    /// The controller refused the bootstrap token (unknown, expired, consumed or wrong vmid).
    #[error("Bootstrap token refused by the controller")]
    Forbidden,
    /// The controller could not be reached or kept failing.
    #[error("Controller unreachable at {url} after {attempts} attempts: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Last failure.
        reason: String,
    },
    /// The controller answered something the runner does not understand.
    #[error("Unexpected controller response from {url}: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The secrets directory is unusable (not a tmpfs, wrong permissions, …).
    #[error("Secrets directory {path} is unusable: {reason}")]
    SecretsDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A local I/O operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, including the path.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runner was asked to stop before it had a job.
    #[error("Runner stopped before the job started")]
    Stopped,
    /// A job step (`bootstrap`, `clone`, `agent`, `artifacts`) failed; the message is redacted.
    #[error("Step {step} failed: {reason}")]
    Step {
        /// The step.
        step: &'static str,
        /// Why (redacted).
        reason: String,
    },
}

impl GuestError {
    /// Whether systemd should restart the runner (exit code 1) rather than give up (exit 2).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::BootstrapMissing { .. }
        )
    }

    /// Builds an [`GuestError::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds a [`GuestError::Step`].
    pub fn step(step: &'static str, reason: impl Into<String>) -> Self {
        Self::Step {
            step,
            reason: reason.into(),
        }
    }
}
