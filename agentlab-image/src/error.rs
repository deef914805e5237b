//! [`ImageError`]: why an image spec could not be loaded or an image not built.

use std::path::PathBuf;

use agentlab_core::yaml::ErrorDetails;

/// Errors of this crate. Each names the file, tool or build step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image spec is invalid: file, line, field and reason (with a suggestion for typos).
    #[error("Invalid image spec: {0}")]
    Spec(Box<ErrorDetails>),
    /// A host tool the build needs is not installed.
    #[error("{tool} is not installed (install the Debian package {package})")]
    MissingTool {
        /// The program looked up in `PATH`.
        tool: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// The build needs root (mmdebstrap's root mode, loop mounts, chown to uid 1000).
    #[error("Building an image needs root (run it with sudo)")]
    NotRoot,
    /// The output exists and replacing it was not asked for.
    #[error("{} exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    /// The file system holding the output has too little free space for the build.
    #[error(
        "{} has {} MiB free; building this image needs about {} MiB (free some space or pass another --out)",
        dir.display(), free_bytes >> 20, needed_bytes >> 20
    )]
    NoSpace {
        /// The directory the build writes into (the output's parent).
        dir: PathBuf,
        /// Bytes available (statvfs `f_bavail × f_frsize`).
        free_bytes: u64,
        /// The estimate the build needs.
        needed_bytes: u64,
    },
    /// A build step failed.
    #[error("Image build step {step} failed: {reason}")]
    Step {
        /// The step (`mmdebstrap`, `configure`, `npm`, `disk`, …).
        step: &'static str,
        /// What went wrong (command, exit status, stderr tail).
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A failed build step.
    pub fn step(step: &'static str, reason: impl Into<String>) -> Self {
        Self::Step {
            step,
            reason: reason.into(),
        }
    }
}
