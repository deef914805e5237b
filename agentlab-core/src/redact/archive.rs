//! Secret scanning inside archives: gzip streams, tar archives and any nesting of the two
//! (`artifacts.tar.gz` holding `logs.tar.gz` holding `out.txt.gz`).
//!
//! [`scan`] reads a stream and reports every member (by path, never by content) in which the
//! [`Redactor`] finds a secret value or encoding. Members are read in chunks with an overlap
//! of [`Redactor::max_pattern_len`], so a value across a chunk boundary is still found and a
//! large member is never held in memory. Gzip and tar are recognised by content (magic bytes,
//! tar header checksum), not by name, down to [`ScanLimits::max_depth`] levels; deeper data is
//! scanned as plain bytes. Binary data is scanned as lossily decoded UTF-8. Other formats
//! (zip, bzip2, xz, zstd) are not decompressed: only what is readable in their raw bytes is
//! checked.
//!
//! [`sanitize_tar_gz`] rewrites a `.tar.gz` whose members contain secrets: a top-level text
//! member (valid UTF-8, at most [`ScanLimits::max_rewrite_bytes`]) is redacted in place; any
//! other member with a finding (binary, compressed, nested archive, too large) is dropped; a
//! `redacted.txt` member lists what was changed. Decompression is bounded by
//! [`ScanLimits::max_total_bytes`] (a gzip bomb is an [`ArchiveError::TooLarge`]).
//! This is blocking code; call it from `spawn_blocking`.

use std::io::{self, BufReader, Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::Redactor;

/// Bounds on what a scan decompresses and buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Levels of gzip/tar nesting unpacked (deeper data is scanned as bytes).
    pub max_depth: u8,
    /// Decompressed bytes read in total before the scan fails with [`ArchiveError::TooLarge`].
    pub max_total_bytes: u64,
    /// Largest text member [`sanitize_tar_gz`] redacts in memory (larger ones are dropped).
    pub max_rewrite_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_depth: 4,
            max_total_bytes: 4 << 30,
            max_rewrite_bytes: 64 << 20,
        }
    }
}

/// Why an archive could not be scanned; the caller must not store it unchecked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// More than [`ScanLimits::max_total_bytes`] of decompressed data.
    #[error("Archive decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Not a readable gzip or tar stream, or truncated.
    #[error("Archive is corrupt at {member:?}")]
    Corrupt {
        /// Member path where reading failed (`""` for the outer stream).
        member: String,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// Writing the rewritten archive failed.
    #[error("Cannot write the rewritten archive")]
    Write(#[source] io::Error),
}

/// One member in which a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Path of the member; nested members are joined with `!`
    /// (`artifacts/logs.tar.gz!out.txt`); `""` is the stream itself.
    pub member: String,
}

const CHUNK: usize = 1 << 20;

struct Ctx<'a> {
    redactor: &'a Redactor,
    limits: ScanLimits,
    read: u64,
    findings: Vec<Finding>,
}

/// Reports every member of `input` (gzip, tar, nested, or plain bytes) that contains a secret.
pub fn scan(
    input: impl Read,
    redactor: &Redactor,
    limits: ScanLimits,
) -> Result<Vec<Finding>, ArchiveError> {
    let mut ctx = Ctx {
        redactor,
        limits,
        read: 0,
        findings: Vec::new(),
    };
    let mut reader = input;
    scan_stream(&mut reader, "", 0, &mut ctx)?;
    Ok(ctx.findings)
}

/// Whether `data` (plain, gzip, tar or nested) contains a secret; unreadable or oversized
/// archives count as containing one (they cannot be shown clean).
pub fn bytes_contain_secret(data: &[u8], redactor: &Redactor) -> bool {
    if redactor.is_empty() {
        return false;
    }
    scan(data, redactor, ScanLimits::default()).map_or(true, |f| !f.is_empty())
}

fn corrupt(member: &str) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Corrupt {
        member: member.to_owned(),
        source,
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}!{name}")
    }
}

fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// A tar header: `ustar` magic, or a valid header checksum.
fn is_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&head[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    head[0] != 0 && stored == Some(sum)
}

fn scan_stream(
    reader: &mut dyn Read,
    member: &str,
    depth: u8,
    ctx: &mut Ctx<'_>,
) -> Result<(), ArchiveError> {
    let mut head = vec![0u8; 512];
    let n = read_full(reader, &mut head).map_err(corrupt(member))?;
    head.truncate(n);
    let unpack = depth < ctx.limits.max_depth;
    let gzip = unpack && is_gzip(&head);
    let tar = unpack && is_tar(&head);
    let mut stream = io::Cursor::new(head).chain(reader);
    if gzip {
        let mut gz = MultiGzDecoder::new(BufReader::new(stream));
        return scan_stream(&mut gz, member, depth + 1, ctx);
    }
    if tar {
        return scan_tar(&mut stream, member, depth, ctx);
    }
    scan_bytes(&mut stream, member, ctx)
}

fn scan_tar(
    reader: &mut dyn Read,
    member: &str,
    depth: u8,
    ctx: &mut Ctx<'_>,
) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(corrupt(member))? {
        let entry = entry.map_err(corrupt(member))?;
        let name = join(member, &String::from_utf8_lossy(&entry.path_bytes()));
        // Names and link targets are data too.
        let mut meta = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(link) = entry.link_name_bytes() {
            meta.push(' ');
            meta.push_str(&String::from_utf8_lossy(&link));
        }
        let before = ctx.findings.len();
        if ctx.redactor.finds(&meta) {
            ctx.findings.push(Finding {
                member: name.clone(),
            });
        }
        if entry.header().entry_type().is_file() {
            let mut body = entry;
            scan_stream(&mut body, &name, depth + 1, ctx)?;
            // One finding per member is enough.
            ctx.findings.truncate(before + 1);
        }
    }
    // Bytes after the end-of-archive blocks are kept in the file: scan them too.
    let mut rest = archive.into_inner();
    scan_bytes(&mut rest, &join(member, "(after the end of the tar)"), ctx)
}

/// Scans `reader` as bytes in overlapping chunks.
fn scan_bytes(reader: &mut dyn Read, member: &str, ctx: &mut Ctx<'_>) -> Result<(), ArchiveError> {
    let overlap = ctx.redactor.max_pattern_len() + 4;
    let mut window: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut found = false;
    loop {
        let n = read_full(reader, &mut chunk).map_err(corrupt(member))?;
        if n == 0 {
            break;
        }
        ctx.read += n as u64;
        if ctx.read > ctx.limits.max_total_bytes {
            return Err(ArchiveError::TooLarge {
                limit: ctx.limits.max_total_bytes,
            });
        }
        window.extend_from_slice(&chunk[..n]);
        if !found && ctx.redactor.finds(&String::from_utf8_lossy(&window)) {
            found = true;
        }
        let keep = window.len().min(overlap);
        window.drain(..window.len() - keep);
    }
    if found {
        ctx.findings.push(Finding {
            member: member.to_owned(),
        });
    }
    Ok(())
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What [`sanitize_tar_gz`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanitizeReport {
    /// Top-level members redacted in place.
    pub redacted: Vec<String>,
    /// Top-level members left out (binary, compressed or too large, with a finding inside).
    pub dropped: Vec<String>,
}

/// Copies the `.tar.gz` `input` to `output`, redacting or dropping every top-level member in
/// which [`scan`] found a secret (see the module docs). `findings` come from a previous
/// [`scan`] of the same data.
pub fn sanitize_tar_gz(
    input: impl Read,
    output: impl Write,
    redactor: &Redactor,
    findings: &[Finding],
    limits: ScanLimits,
) -> Result<SanitizeReport, ArchiveError> {
    let flagged = |name: &str| {
        findings
            .iter()
            .any(|f| f.member == name || f.member.starts_with(&format!("{name}!")))
    };
    let mut report = SanitizeReport::default();
    let mut out = tar::Builder::new(GzEncoder::new(output, Compression::default()));
    let mut archive = tar::Archive::new(MultiGzDecoder::new(BufReader::new(input)));
    for entry in archive.entries().map_err(corrupt(""))? {
        let mut entry = entry.map_err(corrupt(""))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut header = entry.header().clone();
        if !flagged(&name) {
            out.append_data(&mut header, &name, &mut entry)
                .map_err(ArchiveError::Write)?;
            continue;
        }
        let size = entry.size();
        let text = if entry.header().entry_type().is_file()
            && size <= limits.max_rewrite_bytes
            && !redactor.finds(&name)
        {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(corrupt(&name))?;
            String::from_utf8(data)
                .ok()
                .filter(|t| !is_gzip(t.as_bytes()) && !is_tar(t.as_bytes()))
        } else {
            None
        };
        match text {
            Some(t) => {
                let red = redactor.redact(&t);
                header.set_size(red.len() as u64);
                out.append_data(&mut header, &name, red.as_bytes())
                    .map_err(ArchiveError::Write)?;
                report.redacted.push(name);
            }
            None => report.dropped.push(redactor.redact(&name)),
        }
    }
    let mut note = String::from("AgentLab found secret values in these members:\n");
    for (what, list) in [("redacted", &report.redacted), ("dropped", &report.dropped)] {
        for name in list {
            note.push_str(&format!("{what}: {name}\n"));
        }
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(note.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    out.append_data(&mut header, "redacted.txt", note.as_bytes())
        .map_err(ArchiveError::Write)?;
    let gz = out.into_inner().map_err(ArchiveError::Write)?;
    gz.finish().map_err(ArchiveError::Write)?;
    Ok(report)
}
