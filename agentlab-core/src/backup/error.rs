//! [`BackupError`]: why an archive could not be written or was refused.

/// Why a backup archive could not be written, or why one was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("Cannot {action} {path}")]
    Io {
        /// What was being done (`read`, `write`, `create`).
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The archive is not a backup (no leading manifest, unreadable tar or manifest).
    #[error("Not an AgentLab backup: {0}")]
    Malformed(String),
    /// A file's content does not match the SHA-256 in the manifest.
    #[error("Checksum mismatch for {path}: manifest says {expected}, archive holds {actual}")]
    Checksum {
        /// The archive path.
        path: String,
        /// SHA-256 in the manifest.
        expected: String,
        /// SHA-256 of the content.
        actual: String,
    },
    /// The archive holds a file the manifest does not list, or lacks one it lists.
    #[error("Archive and manifest disagree about {path}: {reason}")]
    Mismatch {
        /// The archive path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry's path is absolute, climbs out with `..`, or is not a plain file.
    #[error("Unsafe entry {0} in the archive")]
    UnsafePath(String),
    /// The archive's database schema is newer than this build understands.
    #[error(
        "Backup schema version {found} is newer than this build's {supported}; restore with a newer AgentLab"
    )]
    NewerSchema {
        /// The archive's schema version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The archive's format version is unknown to this build.
    #[error("Backup format {0} is not supported")]
    Format(u32),
}

impl BackupError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}
