//! [`unpack_verified`]: reading an archive into a staging directory, checking everything.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use super::error::BackupError;
use super::manifest::{FORMAT, MANIFEST_NAME, Manifest};

/// Largest manifest accepted (it lists files; a bigger one is not ours).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// Reads the archive from `input` into `staging` (an existing, empty, private directory),
/// file modes 0600. Refuses: no leading manifest, an unknown format, a schema newer than
/// `supported_schema` (before anything is written), unsafe or non-file entries, entries the
/// manifest does not list or lists twice, sizes or SHA-256 that differ, and listed files that
/// are missing. Blocking: call it off async threads.
pub fn unpack_verified<R: Read>(
    input: R,
    staging: &Path,
    supported_schema: u32,
) -> Result<Manifest, BackupError> {
    let mut archive = tar::Archive::new(input);
    let malformed = |e: std::io::Error| BackupError::Malformed(e.to_string());
    let mut entries = archive.entries().map_err(malformed)?;
    let manifest = read_manifest(&mut entries)?;
    if manifest.format != FORMAT {
        return Err(BackupError::Format(manifest.format));
    }
    if manifest.schema_version > supported_schema {
        return Err(BackupError::NewerSchema {
            found: manifest.schema_version,
            supported: supported_schema,
        });
    }
    let mut seen = HashSet::new();
    for entry in entries {
        let mut entry = entry.map_err(malformed)?;
        let path = entry
            .path()
            .map_err(malformed)?
            .to_string_lossy()
            .into_owned();
        let rel = safe_relative(&path)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::UnsafePath(path));
        }
        let Some(listed) = manifest.file(&path) else {
            return Err(BackupError::Mismatch {
                path,
                reason: "not listed in the manifest",
            });
        };
        if !seen.insert(path.clone()) {
            return Err(BackupError::Mismatch {
                path,
                reason: "present twice",
            });
        }
        let dest = staging.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BackupError::io("create", parent, e))?;
        }
        let (size, sha256) = copy_hashed(&mut entry, &dest)?;
        if sha256 != listed.sha256 || size != listed.size {
            return Err(BackupError::Checksum {
                path,
                expected: listed.sha256.clone(),
                actual: sha256,
            });
        }
    }
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.path)) {
        return Err(BackupError::Mismatch {
            path: missing.path.clone(),
            reason: "listed in the manifest but missing",
        });
    }
    Ok(manifest)
}

fn read_manifest<R: Read>(entries: &mut tar::Entries<'_, R>) -> Result<Manifest, BackupError> {
    let first = entries
        .next()
        .ok_or_else(|| BackupError::Malformed("empty archive".into()))?
        .map_err(|e| BackupError::Malformed(e.to_string()))?;
    let name = first
        .path()
        .map_err(|e| BackupError::Malformed(e.to_string()))?
        .to_string_lossy()
        .into_owned();
    if name != MANIFEST_NAME {
        return Err(BackupError::Malformed(format!(
            "first entry is {name}, not {MANIFEST_NAME}"
        )));
    }
    if first.header().size().unwrap_or(u64::MAX) > MAX_MANIFEST {
        return Err(BackupError::Malformed("manifest too large".into()));
    }
    let mut text = Vec::new();
    first
        .take(MAX_MANIFEST)
        .read_to_end(&mut text)
        .map_err(|e| BackupError::Malformed(e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| BackupError::Malformed(format!("manifest: {e}")))
}

/// `path` as a relative path of plain components only.
fn safe_relative(path: &str) -> Result<&Path, BackupError> {
    let p = Path::new(path);
    let plain = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(p)
    } else {
        Err(BackupError::UnsafePath(path.to_owned()))
    }
}

/// Copies `from` into a new 0600 file at `dest`, returning size and hex SHA-256.
fn copy_hashed(from: &mut impl Read, dest: &Path) -> Result<(u64, String), BackupError> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| BackupError::io("create", dest, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| BackupError::Malformed(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| BackupError::io("write", dest, e))?;
        size += n as u64;
    }
    out.sync_all()
        .map_err(|e| BackupError::io("write", dest, e))?;
    Ok((size, hex::encode(hasher.finalize())))
}
