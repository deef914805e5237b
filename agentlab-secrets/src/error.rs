//! [`SecretsError`]: everything the age store and its management operations can fail with.
//!
//! Messages never contain secret values: decryption and YAML errors are reduced to a reason
//! or a position before they get here.

use std::path::PathBuf;

/// Errors of [`AgeSecretStore`](crate::AgeSecretStore).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The bundle name does not match `[a-z0-9][a-z0-9_-]{0,62}`.
    #[error(
        "Invalid bundle name {0:?}: use 1-63 characters a-z, 0-9, '_' or '-', starting with a letter or digit"
    )]
    InvalidBundleName(String),
    /// The environment variable name does not match `[A-Z_][A-Z0-9_]*`.
    #[error(
        "Invalid environment variable name {0:?}: use A-Z, 0-9 and '_', not starting with a digit"
    )]
    InvalidEnvKey(String),
    /// A secret file path is absolute, empty or escapes the secrets directory.
    #[error("Invalid secret file path {0:?}: must be relative, without '..' or empty parts")]
    InvalidFilePath(String),
    /// An empty secret value was given.
    #[error("Empty secret value for {0}")]
    EmptyValue(String),
    /// The Claude settings are not valid JSON.
    #[error("Claude settings are not valid JSON (line {line}, column {column})")]
    InvalidClaudeSettings {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// No bundle with that name.
    #[error("Secret bundle {0:?} not found")]
    BundleNotFound(String),
    /// The item to remove is not in the bundle.
    #[error("Secret bundle {bundle:?} has no {item}")]
    NotPresent {
        /// Bundle name.
        bundle: String,
        /// What was asked for (e.g. `env var "X"`).
        item: String,
    },
    /// The identity file does not exist.
    #[error("Identity file {} not found (create it with `agentlab secrets init`)", path.display())]
    IdentityMissing {
        /// Identity path.
        path: PathBuf,
    },
    /// The identity file is readable by group or others.
    #[error(
        "Identity file {} is readable by group or others (mode {mode:04o}); fix with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    IdentityPermissions {
        /// Identity path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The identity file has no usable x25519 key.
    #[error("Identity file {} is invalid: {reason}", path.display())]
    IdentityInvalid {
        /// Identity path.
        path: PathBuf,
        /// Why (never key material).
        reason: String,
    },
    /// A recipient is not an `age1…` x25519 public key.
    #[error("Invalid recipient {recipient:?}: {reason}")]
    InvalidRecipient {
        /// The rejected text.
        recipient: String,
        /// Why.
        reason: String,
    },
    /// Encryption needs at least one recipient.
    #[error("No recipients: give at least one age1… public key")]
    NoRecipients,
    /// The bundle could not be decrypted with the identity.
    #[error("Cannot decrypt secret bundle {bundle:?}: {reason}")]
    Decrypt {
        /// Bundle name.
        bundle: String,
        /// Why (from age; never plaintext).
        reason: String,
    },
    /// The bundle decrypted but is not a valid bundle.
    #[error("Secret bundle {bundle:?} is corrupt: {reason}")]
    Corrupt {
        /// Bundle name.
        bundle: String,
        /// Why (position only, never content).
        reason: String,
    },
    /// Encryption failed.
    #[error("Cannot encrypt secret bundle {bundle:?}: {reason}")]
    Encrypt {
        /// Bundle name.
        bundle: String,
        /// Why.
        reason: String,
    },
    /// A file system operation failed.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SecretsError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
