//! The crate's errors: [`ClientError`] for every failed call, carrying the daemon's
//! [`ApiError`] (its error envelope: status, stable `code`, `message`, `details`) when it
//! answered with one.

use std::path::PathBuf;

/// How to get a daemon running, appended to "unreachable" errors.
/// `agentlabd.service` is the unit `agentlab init` installs (`deploy/systemd/`).
pub const START_HINT: &str = "start it with `sudo systemctl start agentlabd` (the unit \
     `sudo agentlab init` installs) or `agentlabd --config /etc/agentlab/config.yaml`, or point \
     --socket / AGENTLAB_SOCKET at its socket";

/// The hint for an unreachable remote endpoint.
pub const REMOTE_HINT: &str = "check --endpoint / AGENTLAB_ENDPOINT, and that the daemon \
     sets remote.listen and its port is reachable from here";

/// The start hint for an unreachable daemon, except when the socket is there but not ours
/// to open (starting the daemon would not help).
fn start_hint(target: &str, reason: &str) -> String {
    if target.starts_with("https://") {
        format!("; {REMOTE_HINT}")
    } else if reason.starts_with(PERMISSION_DENIED) {
        String::new()
    } else {
        format!("; {START_HINT}")
    }
}

/// How an unreachable reason for a socket we may not open starts.
pub(crate) const PERMISSION_DENIED: &str = "permission denied";

/// An error the daemon answered with (its error envelope, or a synthesized one for a non-JSON
/// error body).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine code such as `sandbox_not_found`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Structured details (`null` when none).
    pub details: serde_json::Value,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing usable answers on the socket or the remote endpoint.
    #[error(
        "Cannot reach agentlabd at {target}: {reason}{}",
        start_hint(target, reason)
    )]
    Unreachable {
        /// The socket path or endpoint URL tried.
        target: String,
        /// Why, in words (no socket file, nothing listening, permission denied, …).
        reason: String,
    },
    /// The daemon did not answer in time.
    #[error("agentlabd at {target} did not answer within {secs} s (raise --timeout)")]
    Timeout {
        /// The socket path or endpoint URL.
        target: String,
        /// The limit in seconds.
        secs: u64,
    },
    /// The TLS handshake with the remote endpoint failed.
    #[error("TLS with agentlabd at {endpoint} failed: {reason}")]
    Tls {
        /// The endpoint URL.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The remote endpoint presented another certificate than the pinned one.
    #[error(
        "The certificate of agentlabd at {endpoint} changed: pinned SHA-256 {pinned}, presented \
         {presented}. Someone may be impersonating the daemon; if its certificate was replaced \
         on purpose, {}",
        match known_file {
            Some(f) => format!("remove the endpoint's line from {} (or pass --fingerprint)", f.display()),
            None => "pass the new --fingerprint".to_owned(),
        }
    )]
    CertificateChanged {
        /// The endpoint URL.
        endpoint: String,
        /// The pinned fingerprint.
        pinned: String,
        /// The presented one.
        presented: String,
        /// The known-endpoints file holding the pin (pin on first use).
        known_file: Option<PathBuf>,
    },
    /// The client options are unusable (endpoint URL, CA file, token).
    #[error("{0}")]
    Config(String),
    /// The daemon answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The HTTP exchange broke off.
    #[error("Connection to agentlabd broke off")]
    Http(#[source] hyper::Error),
    /// The daemon answered something the client cannot read.
    #[error("Unexpected response from agentlabd to {path}: {reason}")]
    Protocol {
        /// Request path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The guest refused or failed a sandbox stream's request.
    #[error("{0}")]
    StreamRefused(String),
    /// A stream into a sandbox broke off.
    #[error("the stream into the sandbox broke off: {0}")]
    StreamBroken(String),
}

impl ClientError {
    /// The daemon's error envelope, when the daemon answered with an error.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }
}
