//! [`NetError`]: this crate's error type, and its mapping onto [`FirewallError`].

use agentlab_core::FirewallError;

/// Errors of `agentlab-net`.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The network configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A sandbox's identity (interface, MAC, address, allowlist) is invalid.
    #[error("{0}")]
    Invalid(String),
    /// `nft` refused the batch (its stderr, which never contains secrets).
    #[error("nft rejected the ruleset: {0}")]
    Rejected(String),
    /// A tool (`nft`, `ip`) could not be started.
    #[error("Cannot run {program}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran but failed.
    #[error("{program} failed: {message}")]
    Command {
        /// The program.
        program: String,
        /// Its stderr (trimmed).
        message: String,
    },
    /// Reading back the ruleset failed.
    #[error("Cannot parse nft output: {0}")]
    Parse(String),
    /// Any other I/O failure.
    #[error("I/O error: {context}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl From<NetError> for FirewallError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Config(m) | NetError::Invalid(m) => FirewallError::Invalid(m),
            NetError::Rejected(m) => FirewallError::Rejected(m),
            e @ NetError::Spawn { .. } => FirewallError::Unavailable(Box::new(e)),
            e => FirewallError::Backend(Box::new(e)),
        }
    }
}
