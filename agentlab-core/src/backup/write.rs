//! [`write_archive`]: hashing the sources and writing manifest and files as a tar.

use std::io::{Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::error::BackupError;
use super::manifest::{FileEntry, MANIFEST_NAME, Manifest};

/// A file to put into the archive.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it is read from.
    pub from: PathBuf,
    /// Its relative path inside the archive.
    pub path: String,
    /// Mode bits recorded for restore.
    pub mode: u32,
}

/// Hashes every source, then writes `manifest.json` (with `base`'s fields and the file list)
/// followed by the files to `out`. A source that changes between hashing and copying makes the
/// archive fail verification on restore, never silently differ. Blocking: call it off async
/// threads.
pub fn write_archive<W: Write>(
    out: W,
    mut base: Manifest,
    sources: &[Source],
) -> Result<Manifest, BackupError> {
    base.files.clear();
    for s in sources {
        let (size, sha256) = hash_file(&s.from)?;
        base.files.push(FileEntry {
            path: s.path.clone(),
            size,
            mode: s.mode,
            sha256,
        });
    }
    let manifest = serde_json::to_vec_pretty(&base)
        .map_err(|e| BackupError::Malformed(format!("cannot encode the manifest: {e}")))?;
    let mut tar = tar::Builder::new(out);
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(base.created_at.timestamp()).unwrap_or(0));
    header.set_cksum();
    let werr = |e| BackupError::io("write", std::path::Path::new("archive"), e);
    tar.append_data(&mut header, MANIFEST_NAME, manifest.as_slice())
        .map_err(werr)?;
    for (s, entry) in sources.iter().zip(&base.files) {
        let file = std::fs::File::open(&s.from).map_err(|e| BackupError::io("read", &s.from, e))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.size);
        header.set_mode(entry.mode);
        header.set_mtime(u64::try_from(base.created_at.timestamp()).unwrap_or(0));
        header.set_cksum();
        // Exactly `size` bytes: a file that grew since hashing fails its checksum on restore.
        tar.append_data(&mut header, &entry.path, file.take(entry.size))
            .map_err(werr)?;
    }
    tar.into_inner().map_err(werr)?.flush().map_err(werr)?;
    Ok(base)
}

/// Size and hex SHA-256 of a file.
pub(crate) fn hash_file(path: &std::path::Path) -> Result<(u64, String), BackupError> {
    let mut file = std::fs::File::open(path).map_err(|e| BackupError::io("read", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| BackupError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}
