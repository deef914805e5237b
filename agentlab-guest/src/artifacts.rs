//! The artifact bundle: `artifacts.tar.gz` with `report.json`, `runner.log`, `changes.patch`
//! and everything under `$AGENTLAB_ARTIFACTS_DIR` (as `artifacts/<path>`).
//!
//! Every entry passes the redactor: text files are redacted; a binary file that contains a
//! secret value is left out. Symlinks are never followed (so an agent cannot link a secret
//! file into the bundle). The bundle stays within `max_bytes`: the compressor is flushed after
//! each entry so the compressed size is exact, and an entry that could push the bundle past the
//! limit is left out (the runner log is cut to its tail instead). Left-out entries are listed
//! in `skipped.txt` inside the bundle. This is blocking code; call it via `spawn_blocking`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use agentlab_core::redact::Redactor;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::error::GuestError;

/// Bytes kept free for the tar trailer, `skipped.txt` and the gzip footer.
const RESERVE: u64 = 8 * 1024;

/// What goes into the bundle.
#[derive(Debug)]
pub struct BundleSpec<'a> {
    /// Output file.
    pub out: &'a Path,
    /// Size limit of the output.
    pub max_bytes: u64,
    /// Redactor for every entry.
    pub redactor: &'a Redactor,
    /// Top-level entries `(name, file)` in priority order; missing files are ignored.
    pub files: Vec<(String, PathBuf)>,
    /// Entry whose tail is kept when it does not fit whole (the runner log).
    pub truncatable: Option<String>,
    /// Directory bundled as `artifacts/…`.
    pub artifacts_dir: &'a Path,
}

/// What ended up in the bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSummary {
    /// Size of the `.tar.gz` in bytes.
    pub size: u64,
    /// Entry names included.
    pub included: Vec<String>,
    /// Entries left out, with the reason.
    pub skipped: Vec<String>,
}

struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Tar = tar::Builder<GzEncoder<Counting<fs::File>>>;

/// Builds the bundle.
pub fn bundle(spec: &BundleSpec<'_>) -> Result<BundleSummary, GuestError> {
    let io_err = |e: io::Error| GuestError::io(format!("Cannot write {}", spec.out.display()), e);
    let file = fs::File::create(spec.out).map_err(io_err)?;
    let gz = GzEncoder::new(
        Counting {
            inner: file,
            count: 0,
        },
        Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let budget = spec.max_bytes.saturating_sub(RESERVE);
    let mut summary = BundleSummary::default();

    let mut candidates: Vec<(String, PathBuf)> = spec.files.clone();
    collect_dir(
        spec.artifacts_dir,
        "artifacts",
        &mut candidates,
        &mut summary.skipped,
    );
    for (name, path) in candidates {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let written = tar.get_ref().get_ref().count;
        let room = budget.saturating_sub(written);
        let fits = |len: u64| len + len / 100 + 2048 <= room;
        let truncatable = spec.truncatable.as_deref() == Some(name.as_str());
        if !fits(meta.len()) && !truncatable {
            summary.skipped.push(format!(
                "{name}: too large ({} bytes) for the size limit",
                meta.len()
            ));
            continue;
        }
        let raw = match fs::read(&path) {
            Ok(r) => r,
            Err(e) => {
                summary.skipped.push(format!("{name}: unreadable ({e})"));
                continue;
            }
        };
        let Some(mut data) = redact_bytes(spec.redactor, raw) else {
            summary
                .skipped
                .push(format!("{name}: binary file containing a secret value"));
            continue;
        };
        if !fits(data.len() as u64) {
            let keep = usize::try_from(room.saturating_sub(4096) * 100 / 101).unwrap_or(0);
            if keep == 0 {
                summary.skipped.push(format!("{name}: no room left"));
                continue;
            }
            data = data.split_off(data.len().saturating_sub(keep));
            summary
                .skipped
                .push(format!("{name}: truncated to its last {keep} bytes"));
        }
        append(&mut tar, &name, &data).map_err(io_err)?;
        summary.included.push(name);
    }
    if !summary.skipped.is_empty() {
        let mut text = summary.skipped.join("\n");
        text.push('\n');
        text.truncate(4096);
        append(&mut tar, "skipped.txt", text.as_bytes()).map_err(io_err)?;
    }
    let gz = tar.into_inner().map_err(io_err)?;
    let mut counting = gz.finish().map_err(io_err)?;
    counting.flush().map_err(io_err)?;
    summary.size = counting.count;
    Ok(summary)
}

fn append(tar: &mut Tar, name: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)?;
    // Sync-flush so the counted compressed size is exact.
    tar.get_mut().flush()
}

/// Redacted text, the unchanged bytes of a binary (or archive) without secrets, or `None`.
fn redact_bytes(redactor: &Redactor, raw: Vec<u8>) -> Option<Vec<u8>> {
    match String::from_utf8(raw) {
        Ok(text) => Some(redactor.redact(&text).into_bytes()),
        Err(e) => {
            // Binary: also unpacks gzip/tar (nested) so a compressed secret is caught.
            let raw = e.into_bytes();
            (!agentlab_core::redact::archive::bytes_contain_secret(&raw, redactor)).then_some(raw)
        }
    }
}

fn collect_dir(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf)>,
    skipped: &mut Vec<String>,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_dir(&entry.path(), &name, out, skipped),
            Ok(t) if t.is_file() => out.push((name, entry.path())),
            Ok(t) if t.is_symlink() => skipped.push(format!("{name}: symlink (not followed)")),
            _ => skipped.push(format!("{name}: not a regular file")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn unpack(path: &Path) -> Vec<(String, Vec<u8>)> {
        let f = fs::File::open(path).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn redacts_skips_links_and_respects_limit() {
        let dir = tempfile::tempdir().unwrap();
        let arts = dir.path().join("arts");
        fs::create_dir_all(arts.join("sub")).unwrap();
        fs::write(arts.join("sub/notes.txt"), "token=supersecret-123\n").unwrap();
        fs::write(
            arts.join("bin.dat"),
            [
                0xff, 0xfe, b's', b'u', b'p', b'e', b'r', b's', b'e', b'c', b'r', b'e', b't', b'-',
                b'1', b'2', b'3',
            ],
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", arts.join("link")).unwrap();
        let big: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80)
            .collect();
        fs::write(arts.join("zbig.bin"), big).unwrap();
        let log = dir.path().join("runner.log");
        fs::write(&log, "line one\n").unwrap();
        let redactor = Redactor::new(&["supersecret-123"]);
        let out = dir.path().join("a.tar.gz");
        let spec = BundleSpec {
            out: &out,
            max_bytes: 100_000,
            redactor: &redactor,
            files: vec![("runner.log".into(), log)],
            truncatable: Some("runner.log".into()),
            artifacts_dir: &arts,
        };
        let s = bundle(&spec).unwrap();
        assert!(s.size <= 100_000);
        assert_eq!(s.size, fs::metadata(&out).unwrap().len());
        let entries = unpack(&out);
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["runner.log", "artifacts/sub/notes.txt", "skipped.txt"]
        );
        assert_eq!(entries[1].1, b"token=[REDACTED]\n");
        let skipped = String::from_utf8(entries[2].1.clone()).unwrap();
        assert!(skipped.contains("artifacts/bin.dat: binary file containing a secret"));
        assert!(skipped.contains("artifacts/link: symlink"));
        assert!(skipped.contains("artifacts/zbig.bin: too large"));
    }
}
