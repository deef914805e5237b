//! The secrets directory: a tmpfs (checked with `statfs`), mode 0700, files 0600.
//!
//! Layout: `payload.json` (the cached bootstrap payload, so a restarted runner does not need
//! the spent token), `.runner/` (git credential helper files; hidden from a bubblewrapped
//! agent) and the bundle's extra files at their relative paths. [`SecretsDir::wipe`] removes
//! everything inside at exit (the directory itself may be a mount point and stays).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use agentlab_core::BootstrapData;
use agentlab_core::api::guest::BootstrapPayload;

use crate::error::GuestError;

/// File name of the cached payload.
pub const PAYLOAD_FILE: &str = "payload.json";
/// File name (under [`RUNNER_SUBDIR`]) of the bootstrap data kept while fetching.
pub const BOOTSTRAP_FILE: &str = "bootstrap.json";
/// Sub-directory for the runner's own credential files.
pub const RUNNER_SUBDIR: &str = ".runner";

/// A prepared secrets directory.
#[derive(Debug)]
pub struct SecretsDir {
    path: PathBuf,
}

impl SecretsDir {
    /// Creates `path` (0700) and checks that it is a tmpfs unless `allow_non_tmpfs`.
    pub fn prepare(path: &Path, allow_non_tmpfs: bool) -> Result<Self, GuestError> {
        let bad = |reason: String| GuestError::SecretsDir {
            path: path.to_owned(),
            reason,
        };
        fs::create_dir_all(path).map_err(|e| bad(format!("cannot create it: {e}")))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| bad(format!("cannot chmod 0700: {e}")))?;
        let st = nix::sys::statfs::statfs(path).map_err(|e| bad(format!("statfs failed: {e}")))?;
        if st.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
            if !allow_non_tmpfs {
                return Err(bad(
                    "not a tmpfs (secrets must not touch disk; mount a tmpfs there)".to_owned(),
                ));
            }
            tracing::warn!(path = %path.display(), "secrets directory is not a tmpfs (allowed by flag)");
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The runner-private sub-directory (created 0700 on first use).
    pub fn runner_dir(&self) -> Result<PathBuf, GuestError> {
        let dir = self.path.join(RUNNER_SUBDIR);
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Reads the cached payload, if any.
    pub fn load_cached_payload(&self) -> Result<Option<BootstrapPayload>, GuestError> {
        let file = self.path.join(PAYLOAD_FILE);
        match fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(p) => Ok(Some(p)),
                Err(e) => {
                    tracing::warn!(
                        line = e.line(),
                        column = e.column(),
                        "cached payload is corrupt, ignoring it"
                    );
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(GuestError::io(format!("Cannot read {}", file.display()), e)),
        }
    }

    /// Writes the payload cache (0600).
    pub fn cache_payload(&self, payload: &BootstrapPayload) -> Result<(), GuestError> {
        let bytes = serde_json::to_vec(payload).map_err(|e| GuestError::SecretsDir {
            path: self.path.clone(),
            reason: format!("cannot serialize payload: {e}"),
        })?;
        write_private(&self.path.join(PAYLOAD_FILE), &bytes, 0o600)
    }

    /// Keeps the bootstrap data (with its token) in the runner-private part of this tmpfs
    /// directory (0600), so the delivered file can be removed at once and a restarted runner
    /// can still fetch.
    pub fn cache_bootstrap(&self, data: &BootstrapData) -> Result<(), GuestError> {
        let json = serde_json::json!({
            "controller_url": data.controller_url,
            "token": data.token.expose(),
            "vmid": data.vmid,
        });
        let bytes = json.to_string().into_bytes();
        write_private(&self.runner_dir()?.join(BOOTSTRAP_FILE), &bytes, 0o600)
    }

    /// The bootstrap data kept by [`SecretsDir::cache_bootstrap`], if any.
    pub fn load_cached_bootstrap(&self) -> Result<Option<BootstrapData>, GuestError> {
        let file = self.path.join(RUNNER_SUBDIR).join(BOOTSTRAP_FILE);
        match fs::read(&file) {
            Ok(bytes) => crate::bootstrap::parse(&file, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(GuestError::io(format!("Cannot read {}", file.display()), e)),
        }
    }

    /// Removes the kept bootstrap data (the token is spent or given up).
    pub fn forget_bootstrap(&self) {
        let file = self.path.join(RUNNER_SUBDIR).join(BOOTSTRAP_FILE);
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %file.display(), error = %e, "cannot remove the kept bootstrap data");
            }
        }
    }

    /// Writes a bundle file at `rel` (relative, no `..`, not a reserved name).
    pub fn write_bundle_file(
        &self,
        rel: &str,
        content: &[u8],
        mode: u32,
    ) -> Result<PathBuf, GuestError> {
        let rel_path = Path::new(rel);
        let ok = !rel.is_empty()
            && rel_path
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            && !matches!(
                rel_path.components().next(),
                Some(Component::Normal(first)) if first == PAYLOAD_FILE || first == RUNNER_SUBDIR
            );
        if !ok {
            return Err(GuestError::step(
                "bootstrap",
                format!(
                    "secret file path {rel:?} must be relative, without '..', and not {PAYLOAD_FILE} or {RUNNER_SUBDIR}"
                ),
            ));
        }
        let path = self.path.join(rel_path);
        if let Some(parent) = path.parent() {
            create_private_dir(parent)?;
        }
        write_private(&path, content, mode & 0o700)?;
        Ok(path)
    }

    /// Removes everything inside the directory.
    pub fn wipe(&self) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            let res = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if let Err(e) = res {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove secret file");
            }
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), GuestError> {
    fs::create_dir_all(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
        .map_err(|e| GuestError::io(format!("Cannot create {}", dir.display()), e))
}

/// Writes `bytes` to `path` with `mode`, replacing any existing file.
pub fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), GuestError> {
    let ctx = || format!("Cannot write {}", path.display());
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(GuestError::io(ctx(), e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| GuestError::io(ctx(), e))?;
    f.write_all(bytes).map_err(|e| GuestError::io(ctx(), e))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| GuestError::io(ctx(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_tmpfs_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secrets");
        let on_tmpfs = nix::sys::statfs::statfs(dir.path())
            .unwrap()
            .filesystem_type()
            == nix::sys::statfs::TMPFS_MAGIC;
        let res = SecretsDir::prepare(&target, false);
        if on_tmpfs {
            assert!(res.is_ok());
        } else {
            let msg = res.unwrap_err().to_string();
            assert!(msg.contains("not a tmpfs"), "{msg}");
        }
        let s = SecretsDir::prepare(&target, true).unwrap();
        let mode = fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn bundle_files_are_private_and_confined() {
        let dir = tempfile::tempdir().unwrap();
        let s = SecretsDir::prepare(&dir.path().join("s"), true).unwrap();
        let p = s.write_bundle_file("sub/key.pem", b"k", 0o644).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        for bad in ["../x", "/etc/x", "payload.json", ".runner/x", ""] {
            assert!(s.write_bundle_file(bad, b"k", 0o600).is_err(), "{bad}");
        }
        s.wipe();
        assert_eq!(fs::read_dir(s.path()).unwrap().count(), 0);
    }
}
