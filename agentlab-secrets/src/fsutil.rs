//! File system helpers: private directories, atomic 0600 writes, permission checks.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::SecretsError;

/// Creates `dir` (and missing parents) with mode 0700. Existing directories are left alone.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), SecretsError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(SecretsError::io(dir))
}

/// Writes `data` to `path` atomically: a 0600 temporary file in the same directory, fsync,
/// rename over `path`, fsync the directory.
pub(crate) fn atomic_write(path: &Path, data: &[u8]) -> Result<(), SecretsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    ensure_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".agentlab-")
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(SecretsError::io(dir))?;
    tmp.write_all(data).map_err(SecretsError::io(tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(SecretsError::io(tmp.path()))?;
    tmp.persist(path).map_err(|e| SecretsError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    // Make the rename durable; failure here is not worth failing the write for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes `path`; a missing file is not an error.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), SecretsError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SecretsError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Opens the identity file after checking it is not group/world accessible.
pub(crate) fn open_private(path: &Path) -> Result<File, SecretsError> {
    let file = match OpenOptions::new().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SecretsError::IdentityMissing {
                path: path.to_owned(),
            });
        }
        Err(e) => {
            return Err(SecretsError::Io {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    let mode = file
        .metadata()
        .map_err(SecretsError::io(path))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::IdentityPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(file)
}
