//! The tools that reach into a running sandbox through its stream: `exec` (output collected,
//! no terminal), `read_file` (a copy out, the file's content read from the tar stream) and
//! `write_file` (a copy in of a one-file tar stream).

use std::io::Read;
use std::path::{Component, Path};

use agentlab_client::{ChunkReader, Client, ClientError};
use agentlab_core::Vmid;
use agentlab_core::api::channel::{CopyInRequest, CopyOutRequest, ExecRequest, ExecUser};
use agentlab_core::api::frame::CHUNK;
use rmcp::model::{CallToolResult, ContentBlock};
use sha2::{Digest as _, Sha256};

use crate::params::ExecParams;
use crate::render::{self, client_failure, failure, json};

/// Most bytes of stdout and of stderr `exec` returns, and of a file `read_file` returns
/// (1 MiB).
pub const OUTPUT_MAX: usize = 1 << 20;
/// The time limit of an `exec` without `timeout_secs` (300 s).
pub const DEFAULT_EXEC_TIMEOUT_SECS: u64 = 300;

type Answer = Result<CallToolResult, CallToolResult>;

/// The tool error for a failed stream: a refusal from inside the sandbox keeps a leading
/// `code: ` of its own (such as `agent_not_connected: …`), else it is `sandbox_error`.
fn stream_failure(e: &ClientError) -> CallToolResult {
    if let ClientError::StreamRefused(m) = e {
        if let Some((code, rest)) = m.split_once(": ")
            && !code.is_empty()
            && code.bytes().all(|b| b == b'_' || b.is_ascii_lowercase())
        {
            return failure(code, rest);
        }
        return failure("sandbox_error", m);
    }
    client_failure(e)
}

/// Runs `exec`.
pub async fn exec(client: &Client, p: ExecParams) -> Answer {
    let vmid = render::vmid(p.vmid)?;
    let req = ExecRequest {
        argv: p.argv,
        user: p.user.into(),
        cwd: p.cwd,
        env: p.env,
        timeout_secs: Some(p.timeout_secs.unwrap_or(DEFAULT_EXEC_TIMEOUT_SECS)),
        tty: None,
    };
    let stdin = p.stdin.unwrap_or_default().into_bytes().into();
    let out = client
        .exec_captured(vmid, req, stdin, OUTPUT_MAX)
        .await
        .map_err(|e| stream_failure(&e))?;
    let mut answer = serde_json::json!({
        "exit_code": out.exit.code,
        "signal": out.exit.signal,
        "timed_out": out.exit.timed_out,
        "stdout": String::from_utf8_lossy(&out.stdout.data),
        "stderr": String::from_utf8_lossy(&out.stderr.data),
        "stdout_bytes": out.stdout.total,
        "stderr_bytes": out.stderr.total,
        "stdout_truncated": out.stdout.truncated(),
        "stderr_truncated": out.stderr.truncated(),
    });
    if !out.notices.is_empty() {
        answer["notices"] = serde_json::json!(out.notices);
    }
    Ok(json(&answer))
}

/// The first entry of a copy's tar stream.
#[derive(Debug)]
enum Entry {
    /// A regular file: its first bytes (at most [`OUTPUT_MAX`]), size and SHA-256.
    File {
        head: Vec<u8>,
        size: u64,
        sha256: String,
    },
    /// Something else, named (`a directory`, `a symbolic link to X`, …).
    Other(String),
}

/// Reads the first entry of a tar stream, then the rest of the stream.
fn first_entry(r: ChunkReader) -> Result<Entry, String> {
    let mut ar = tar::Archive::new(r);
    let entry = {
        let mut entries = ar.entries().map_err(|e| format!("bad tar stream: {e}"))?;
        let mut e = entries
            .next()
            .ok_or("the copy was empty")?
            .map_err(|e| format!("bad tar stream: {e}"))?;
        let kind = e.header().entry_type();
        if kind.is_file() {
            let size = e.size();
            let mut hash = Sha256::new();
            let mut head = Vec::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = e
                    .read(&mut buf)
                    .map_err(|e| format!("bad tar stream: {e}"))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                let room = OUTPUT_MAX.saturating_sub(head.len());
                head.extend_from_slice(&buf[..n.min(room)]);
            }
            Entry::File {
                head,
                size,
                sha256: hex::encode(hash.finalize()),
            }
        } else if kind.is_dir() {
            return Ok(Entry::Other("a directory".into()));
        } else if kind.is_symlink() {
            let target = e
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.display().to_string());
            return Ok(Entry::Other(format!(
                "a symbolic link to {}",
                target.unwrap_or_else(|| "?".into())
            )));
        } else {
            return Ok(Entry::Other(format!("not a regular file ({kind:?})")));
        }
    };
    // Drain the rest, so the sender never blocks.
    let _ = std::io::copy(&mut ar.into_inner(), &mut std::io::sink());
    Ok(entry)
}

/// Whether `head` (the first bytes of a file, `cut` when the file is longer) is text: UTF-8
/// without NUL bytes, allowing a character cut at the end.
fn is_text(head: &[u8], cut: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => cut && e.error_len().is_none(),
    }
}

/// Runs `read_file`.
pub async fn read_file(client: &Client, vmid: u32, path: String, user: ExecUser) -> Answer {
    let vmid = render::vmid(vmid)?;
    let mut copy = client
        .copy_out(
            vmid,
            CopyOutRequest {
                path: path.clone(),
                user,
            },
        )
        .await
        .map_err(|e| stream_failure(&e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let reader = tokio::task::spawn_blocking(move || first_entry(ChunkReader::new(rx)));
    let pumped = async {
        while let Some(chunk) = copy.next_chunk().await? {
            if tx.send(chunk).await.is_err() {
                break; // the reader has what it needs
            }
        }
        Ok::<(), ClientError>(())
    }
    .await;
    drop(tx);
    let entry = reader
        .await
        .map_err(|e| failure("internal", &format!("the tar reader failed: {e}")))?;
    pumped.map_err(|e| stream_failure(&e))?;
    match entry.map_err(|m| failure("bad_response", &m))? {
        Entry::Other(what) => Err(failure(
            "not_a_file",
            &format!(
                "{path} is {what}; read_file reads regular files (use exec to look at others)"
            ),
        )),
        Entry::File { head, size, sha256 } => {
            let cut = size > head.len() as u64;
            if !is_text(&head, cut) {
                return Ok(render::text(format!(
                    "{path} is a binary file: {size} bytes, sha256 {sha256}. Use exec (such as `xxd`, `file` or `base64`) to look inside."
                )));
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            if !cut {
                return Ok(render::text(text));
            }
            Ok(CallToolResult::success(vec![
                ContentBlock::text(text),
                ContentBlock::text(format!(
                    "[truncated: the first {} of {size} bytes of {path} (sha256 {sha256}); use exec (such as `sed -n` or `tail`) for the rest]",
                    head.len()
                )),
            ]))
        }
    }
}

/// Splits an absolute file path into its directory and file name.
fn split_path(path: &str) -> Result<(String, String), CallToolResult> {
    let p = Path::new(path);
    let bad = |why: &str| failure("invalid_path", &format!("{path:?} {why}"));
    if !p.is_absolute() || path.contains('\0') {
        return Err(bad("is not an absolute path"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) || path.ends_with('/') {
        return Err(bad("must name a file (no `..`, no trailing `/`)"));
    }
    let name = p.file_name().ok_or_else(|| bad("has no file name"))?;
    let dir = p.parent().unwrap_or(Path::new("/"));
    Ok((
        dir.to_string_lossy().into_owned(),
        name.to_string_lossy().into_owned(),
    ))
}

/// A tar stream of one regular file `name` (mode 0644) holding `content`.
fn one_file_tar(name: &str, content: &[u8]) -> Result<Vec<u8>, CallToolResult> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    header.set_mtime(now);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header, name, content)
        .and_then(|()| b.into_inner())
        .map_err(|e| failure("internal", &format!("cannot build the tar stream: {e}")))
}

/// Runs `write_file`.
pub async fn write_file(
    client: &Client,
    vmid: Vmid,
    path: String,
    content: String,
    user: ExecUser,
) -> Answer {
    let (dir, name) = split_path(&path)?;
    let tar = one_file_tar(&name, content.as_bytes())?;
    let mut copy = client
        .copy_in(vmid, CopyInRequest { path: dir, user })
        .await
        .map_err(|e| stream_failure(&e))?;
    for chunk in tar.chunks(CHUNK) {
        copy.send(chunk.to_vec().into())
            .await
            .map_err(|e| stream_failure(&e))?;
    }
    copy.finish().await.map_err(|e| stream_failure(&e))?;
    Ok(json(&serde_json::json!({
        "path": path,
        "bytes": content.len(),
        "sha256": hex::encode(Sha256::digest(content.as_bytes())),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_directory_and_name() {
        assert_eq!(
            split_path("/home/agent/a.txt").unwrap(),
            ("/home/agent".into(), "a.txt".into())
        );
        assert_eq!(split_path("/a").unwrap(), ("/".into(), "a".into()));
        for bad in ["a.txt", "/home/agent/", "/home/../etc/passwd", "/"] {
            assert!(split_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_utf8_without_nul_allowing_a_cut_character() {
        assert!(is_text("héllo\n".as_bytes(), false));
        assert!(!is_text(b"a\0b", false));
        assert!(!is_text(&[0xff, 0xfe], false));
        let cut = &"é".as_bytes()[..1];
        assert!(is_text(cut, true));
        assert!(!is_text(cut, false));
    }
}
