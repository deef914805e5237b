//! [`PveError`]: what went wrong talking to PVE, always naming the API call, and its mapping
//! onto the engine's [`HypervisorError`] variants.

use agentlab_core::hypervisor::HypervisorError;

/// A failed PVE interaction. `call` is `METHOD /path` (e.g. `POST /nodes/pve1/qemu/9000/clone`).
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    /// PVE answered with an error status.
    #[error("{call} failed: HTTP {status}: {message}")]
    Api {
        /// The call.
        call: String,
        /// HTTP status.
        status: u16,
        /// PVE's message (parameter errors appended).
        message: String,
    },
    /// The connection failed or was dropped.
    #[error("{call} failed: connection error: {detail}")]
    Connection {
        /// The call.
        call: String,
        /// Transport detail.
        detail: String,
    },
    /// The task the call started failed.
    #[error("{call} failed: task {upid} ended with: {exitstatus} (log tail: {})", log_tail.join(" | "))]
    Task {
        /// The call.
        call: String,
        /// Task id.
        upid: String,
        /// PVE's exit status (the error text).
        exitstatus: String,
        /// Last lines of the task log.
        log_tail: Vec<String>,
    },
    /// An answer that does not have the expected shape.
    #[error("{call}: unexpected response: {detail}")]
    Decode {
        /// The call.
        call: String,
        /// What was wrong.
        detail: String,
    },
    /// Waiting for a task or the guest agent took too long.
    #[error("{call}: timed out waiting for {what}")]
    Timeout {
        /// The call.
        call: String,
        /// What was awaited.
        what: String,
    },
    /// Invalid options or local setup.
    #[error("Invalid PVE setup: {0}")]
    Setup(String),
    /// AgentLab refuses the operation (e.g. destroying a VM without its tag).
    #[error("{0}")]
    Refused(String),
}

/// Whether a PVE message is a lock timeout worth retrying.
pub fn is_lock_timeout(msg: &str) -> bool {
    msg.contains("can't lock file")
        || msg.contains("got lock request timeout")
        || msg.contains("cfs-lock")
}

impl PveError {
    /// PVE's message (or the transport detail).
    pub fn message(&self) -> &str {
        match self {
            Self::Api { message, .. } => message,
            Self::Task { exitstatus, .. } => exitstatus,
            Self::Connection { detail, .. } | Self::Decode { detail, .. } => detail,
            Self::Timeout { what, .. } => what,
            Self::Setup(m) | Self::Refused(m) => m,
        }
    }

    /// Whether this is a lock timeout (retryable).
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, Self::Api { .. } | Self::Task { .. }) && is_lock_timeout(self.message())
    }

    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 500, .. }) && self.message().contains("does not exist")
    }

    /// Maps onto the engine's error variants.
    pub fn into_hypervisor(self) -> HypervisorError {
        let msg = self.message().to_owned();
        match &self {
            Self::Connection { .. }
            | Self::Api {
                status: 595 | 596 | 599,
                ..
            } => HypervisorError::Unavailable(Box::new(self)),
            Self::Timeout { .. } => HypervisorError::Timeout(self.to_string()),
            Self::Setup(_)
            | Self::Refused(_)
            | Self::Api {
                status: 401 | 403, ..
            } => HypervisorError::Rejected {
                reason: self.to_string(),
            },
            _ if msg.contains("already exists") => HypervisorError::AlreadyExists(self.to_string()),
            _ if self.is_not_found() => HypervisorError::NotFound(self.to_string()),
            _ if is_lock_timeout(&msg)
                || msg.contains("VM is locked")
                || msg.contains("is running - ") =>
            {
                HypervisorError::Conflict(self.to_string())
            }
            Self::Api { status: 400, .. } => HypervisorError::Rejected {
                reason: self.to_string(),
            },
            _ => HypervisorError::Backend(Box::new(self)),
        }
    }
}

impl From<PveError> for HypervisorError {
    fn from(e: PveError) -> Self {
        e.into_hypervisor()
    }
}
