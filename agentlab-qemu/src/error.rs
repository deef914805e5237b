//! [`QemuError`]: failures inside the QEMU backend, mapped onto [`HypervisorError`] at the
//! trait boundary.

use std::path::PathBuf;

use agentlab_core::HypervisorError;
use agentlab_net::NetError;

/// Errors of the QEMU backend.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// A file or directory operation failed.
    #[error("Cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An `ip` command failed.
    #[error("Network setup failed")]
    Net(#[source] NetError),
    /// A program failed or could not be spawned.
    #[error("{program} failed: {message}")]
    Tool {
        /// The program.
        program: String,
        /// Its stderr or the spawn error.
        message: String,
    },
    /// A prerequisite is missing (QEMU binary, image, bridge, KVM when `accel: kvm`).
    #[error("{0}")]
    Missing(String),
    /// QMP or the guest agent answered with an error or not at all.
    #[error("{channel} of VM {vmid}: {message}")]
    Protocol {
        /// `QMP` or `guest agent`.
        channel: &'static str,
        /// The VM.
        vmid: u32,
        /// What went wrong.
        message: String,
    },
    /// The guest did not come up in time; the VM was killed.
    #[error("VM {vmid}: {what} within {secs} s (console: {console_tail})")]
    BootTimeout {
        /// The VM.
        vmid: u32,
        /// What did not happen.
        what: String,
        /// The deadline.
        secs: u64,
        /// The last console lines.
        console_tail: String,
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

impl QemuError {
    /// A [`QemuError::Io`] builder for `map_err`.
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

impl From<NetError> for QemuError {
    fn from(e: NetError) -> Self {
        Self::Net(e)
    }
}

impl From<QemuError> for HypervisorError {
    fn from(e: QemuError) -> Self {
        match e {
            QemuError::Missing(_) => Self::Unavailable(Box::new(e)),
            QemuError::BootTimeout { .. } => Self::Timeout(e.to_string()),
            e => Self::Backend(Box::new(e)),
        }
    }
}
