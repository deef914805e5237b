//! [`Manifest`]: the first entry of a backup archive.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The archive format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Name of the manifest entry (always the archive's first entry).
pub const MANIFEST_NAME: &str = "manifest.json";

/// What a backup holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Archive format ([`FORMAT`]).
    pub format: u32,
    /// `PRAGMA user_version` of the backed-up database.
    pub schema_version: u32,
    /// Version line of the daemon that wrote it.
    pub daemon_version: String,
    /// When it was written.
    pub created_at: Timestamp,
    /// Notes about what was left out and why (e.g. the config with an inline token secret).
    #[serde(default)]
    pub omitted: Vec<String>,
    /// Every other entry, in archive order.
    pub files: Vec<FileEntry>,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path inside the archive (`state.db`, `secrets/default.age`, `config/config.yaml`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Unix mode bits to restore it with.
    pub mode: u32,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

impl Manifest {
    /// The entry for `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }
}
