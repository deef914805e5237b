//! Backup archives of a daemon's state: a tar whose first entry is `manifest.json` (format,
//! schema version, daemon version, creation time, and the size, mode and SHA-256 of every
//! other entry), then the files it lists.
//!
//! [`write_archive`] streams the files into any writer (the daemon writes to a private
//! temporary file it then streams over the control socket); [`unpack_verified`] reads an
//! archive into a staging directory, refusing unsafe paths, unlisted or missing files, a
//! checksum mismatch, and a schema newer than this build's. Nothing here decrypts: secret
//! bundles travel as the age files they are.

mod error;
mod manifest;
mod read;
mod write;

pub use error::BackupError;
pub use manifest::{FORMAT, FileEntry, MANIFEST_NAME, Manifest};
pub use read::unpack_verified;
pub use write::{Source, write_archive};
