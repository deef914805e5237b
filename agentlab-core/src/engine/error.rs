//! [`EngineError`]: what the engine's callers (daemon handlers, embedders) branch on.

use crate::firewall::FirewallError;
use crate::hypervisor::HypervisorError;
use crate::secrets::SecretStoreError;
use crate::store::StateStoreError;

/// Errors of [`crate::engine::Lab`] operations.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A sandbox, job, workspace or profile does not exist.
    #[error("{kind} {id} not found{}", .suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    NotFound {
        /// Record kind (`sandbox`, `job`, `workspace`, `profile`).
        kind: &'static str,
        /// The id asked for.
        id: String,
        /// A close existing name (profiles), for the "did you mean" hint.
        suggestion: Option<String>,
    },
    /// The request is not valid in the current state.
    #[error("{0}")]
    InvalidState(String),
    /// The request itself is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Concurrent modification or a unique-name clash.
    #[error("{0}")]
    Conflict(String),
    /// No free VM id is left in the configured range (ids of recently destroyed sandboxes
    /// wait out their quarantine before they are handed out again).
    #[error(
        "No free VM id in {start}..={end} ({quarantined} recently destroyed ids in quarantine)"
    )]
    Exhausted {
        /// Range start.
        start: u32,
        /// Range end.
        end: u32,
        /// Free ids not handed out yet because their quarantine has not passed.
        quarantined: usize,
    },
    /// Credentials were refused (same answer for every cause).
    #[error("Forbidden")]
    Forbidden,
    /// The job has ended; its runner token no longer works.
    #[error("{0}")]
    JobEnded(String),
    /// The sandbox has no job to hand out.
    #[error("Sandbox {0} has no job")]
    NoJob(String),
    /// A `quotas:` limit refused the request (which limit, its value, the usage).
    #[error("{0}")]
    QuotaExceeded(crate::quota::QuotaExceeded),
    /// A size limit was exceeded.
    #[error("{0}")]
    TooLarge(String),
    /// The hypervisor failed.
    #[error("Hypervisor call {call} failed")]
    Hypervisor {
        /// The trait method called.
        call: &'static str,
        /// The cause.
        #[source]
        source: HypervisorError,
    },
    /// The firewall failed.
    #[error("Firewall call {call} failed")]
    Firewall {
        /// The trait method called.
        call: &'static str,
        /// The cause.
        #[source]
        source: FirewallError,
    },
    /// The secret store failed.
    #[error("Secret store failed")]
    Secrets(#[source] SecretStoreError),
    /// The state store failed.
    #[error("State store failed")]
    Store(#[source] StateStoreError),
}

impl EngineError {
    /// The stable machine code used in the API's error envelope.
    pub fn code(&self) -> String {
        match self {
            Self::NotFound { kind, .. } => format!("{}_not_found", kind.replace(' ', "_")),
            Self::InvalidState(_) => "invalid_state".into(),
            Self::Invalid(_) => "invalid_request".into(),
            Self::Conflict(_) => "conflict".into(),
            Self::Exhausted { .. } => "vmid_exhausted".into(),
            Self::Forbidden => "forbidden".into(),
            Self::NoJob(_) => "no_job".into(),
            Self::JobEnded(_) => "job_ended".into(),
            Self::TooLarge(_) => "too_large".into(),
            Self::QuotaExceeded(_) => "quota_exceeded".into(),
            Self::Hypervisor { source, .. } => match source {
                HypervisorError::Unavailable(_) | HypervisorError::Timeout(_) => {
                    "backend_unavailable".into()
                }
                _ => "backend_error".into(),
            },
            Self::Firewall { .. } => "firewall_error".into(),
            Self::Secrets(_) => "secrets_error".into(),
            Self::Store(StateStoreError::NotFound { kind, .. }) => {
                format!("{}_not_found", kind.replace(' ', "_"))
            }
            Self::Store(
                StateStoreError::Conflict { .. } | StateStoreError::AlreadyExists { .. },
            ) => "conflict".into(),
            Self::Store(StateStoreError::IllegalTransition { .. }) => "invalid_state".into(),
            Self::Store(_) => "store_error".into(),
        }
    }
}

impl From<StateStoreError> for EngineError {
    fn from(e: StateStoreError) -> Self {
        match e {
            StateStoreError::NotFound { kind, id } => Self::NotFound {
                kind,
                id,
                suggestion: None,
            },
            other => Self::Store(other),
        }
    }
}

/// Formats an error and its whole `source()` chain on one line: `a: b: c`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
