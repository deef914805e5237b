//! Copies: a tar stream into the sandbox (unpacked under a directory) and out of it (a file
//! or a directory tree), both checked with SHA-256 over the tar bytes.
//!
//! Unpacking and packing block, so each runs on its own thread; a channel of chunks bridges
//! it to the stream. When the guest agent runs as root and the request is for another user,
//! that thread switches its *filesystem* identity to the user (`setfsuid`/`setfsgid`, which
//! are per thread on Linux and drop the thread's filesystem capabilities): every file is
//! created, and every permission checked, as that user, so a copy can never write or read
//! where the user could not — no chown afterwards, no window for a planted symlink.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use agentlab_core::api::channel::{CopyInRequest, CopyOutRequest, DataSummary, ExitInfo};
use agentlab_core::api::frame::{CHUNK, Frame};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::stream::{FrameSink, FrameStream, chain, send};
use super::user::{ChannelConfig, Identity, resolve};

/// Runs `work` on a new thread with `who`'s filesystem identity; `ready` reports the
/// preparation, the returned receiver the end.
fn spawn_as<F>(who: &Identity, work: F) -> oneshot::Receiver<Result<(), String>>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    let (done_tx, done_rx) = oneshot::channel();
    let switch = (!who.is_self()).then_some((who.uid, who.gid));
    std::thread::spawn(move || {
        let result = match switch {
            Some((uid, gid)) => become_fs_user(uid, gid).and_then(|()| work()),
            None => work(),
        };
        let _ = done_tx.send(result);
    });
    done_rx
}

/// Switches this thread's filesystem identity (it ends with the thread).
fn become_fs_user(uid: u32, gid: u32) -> Result<(), String> {
    use nix::unistd::{Gid, Uid, setfsgid, setfsuid};
    setfsgid(Gid::from_raw(gid));
    setfsuid(Uid::from_raw(uid));
    // Both calls return the previous value: a second call tells whether the switch held.
    if setfsgid(Gid::from_raw(gid)).as_raw() != gid || setfsuid(Uid::from_raw(uid)).as_raw() != uid
    {
        return Err(format!("cannot switch to uid {uid} for the copy"));
    }
    Ok(())
}

/// Reads the chunks of a channel as one byte stream.
struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Cuts written bytes into [`CHUNK`]-sized chunks on a channel.
struct ChunkWriter {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// Unpacks the tar stream read from `src` under `dest`, refusing entries that leave it.
fn unpack(dest: &Path, src: ChunkReader) -> Result<(), String> {
    let mut archive = tar::Archive::new(src);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let entries = archive
        .entries()
        .map_err(|e| format!("bad tar stream: {}", chain(&e)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("bad tar stream: {}", chain(&e)))?;
        let name = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        let escapes = name.components().any(|c| {
            matches!(
                c,
                Component::RootDir | Component::ParentDir | Component::Prefix(_)
            )
        });
        if escapes {
            return Err(format!(
                "entry {} escapes {}: refused",
                name.display(),
                dest.display()
            ));
        }
        match entry.unpack_in(dest) {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "entry {} escapes {}: refused",
                    name.display(),
                    dest.display()
                ));
            }
            Err(e) => return Err(chain(&e)),
        }
    }
    // Drain what follows the end-of-archive blocks, so the sender never blocks.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| format!("bad tar stream: {e}"))?;
    Ok(())
}

/// Receives a tar stream and unpacks it under `req.path`; see the module docs.
pub(crate) async fn copy_in(
    req: CopyInRequest,
    config: &ChannelConfig,
    sink: &mut FrameSink,
    mut frames: FrameStream,
) -> Result<(), String> {
    let who = resolve(config, req.user)?;
    let dest = PathBuf::from(&req.path);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let dest2 = dest.clone();
    let done = spawn_as(&who, move || {
        let made = std::fs::create_dir_all(&dest2)
            .map_err(|e| format!("cannot create {}: {e}", dest2.display()));
        let ok = made.is_ok();
        let _ = ready_tx.send(made);
        if !ok {
            return Ok(());
        }
        unpack(
            &dest2,
            ChunkReader {
                rx,
                cur: Bytes::new(),
            },
        )
    });
    ready_rx
        .await
        .map_err(|_| "the copy thread ended early".to_owned())??;
    send(sink, Frame::Ready).await?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut tx = Some(tx);
    let summary = loop {
        match frames.next().await {
            Some(Ok(Frame::Data(b))) => {
                hasher.update(&b);
                bytes += b.len() as u64;
                // A closed channel means the unpacking failed: its error is reported below.
                if let Some(t) = &tx
                    && t.send(b).await.is_err()
                {
                    tx = None;
                }
            }
            Some(Ok(Frame::DataEnd(summary))) => break summary,
            Some(Ok(other)) => {
                tracing::debug!(frame = ?other, "ignoring an unexpected frame");
            }
            Some(Err(_)) | None => return Err("client went away during the copy".to_owned()),
        }
    };
    drop(tx);
    done.await
        .map_err(|_| "the copy thread ended early".to_owned())??;
    let sha256 = hex::encode(hasher.finalize());
    match summary {
        None => return Err("the copy ended without a summary".to_owned()),
        Some(s) if s.bytes != bytes || s.sha256 != sha256 => {
            return Err(format!(
                "sha256 mismatch: received {bytes} bytes ({sha256}), the client sent {} ({})",
                s.bytes, s.sha256
            ));
        }
        Some(_) => {}
    }
    tracing::info!(path = %dest.display(), bytes, "copy in done");
    send(
        sink,
        Frame::Exit(ExitInfo {
            code: 0,
            signal: None,
            timed_out: false,
        }),
    )
    .await
}

/// Packs `path` (a file, or a directory with its tree) under its base name.
fn pack(path: &Path, out: ChunkWriter) -> Result<(), String> {
    let name = path
        .file_name()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let added = if is_dir {
        builder.append_dir_all(&name, path)
    } else {
        builder.append_path_with_name(path, &name)
    };
    added.map_err(|e| format!("cannot read {}: {}", path.display(), chain(&e)))?;
    let mut out = builder
        .into_inner()
        .map_err(|e| format!("cannot finish the tar stream: {e}"))?;
    out.flush()
        .map_err(|e| format!("cannot finish the tar stream: {e}"))
}

/// Streams `req.path` out as a tar stream; see the module docs.
pub(crate) async fn copy_out(
    req: CopyOutRequest,
    config: &ChannelConfig,
    sink: &mut FrameSink,
) -> Result<(), String> {
    let who = resolve(config, req.user)?;
    let path = PathBuf::from(&req.path);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let path2 = path.clone();
    let done = spawn_as(&who, move || {
        let found = match std::fs::symlink_metadata(&path2) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("{}: No such file or directory", path2.display()))
            }
            Err(e) => Err(format!("{}: {e}", path2.display())),
        };
        let ok = found.is_ok();
        let _ = ready_tx.send(found);
        if !ok {
            return Ok(());
        }
        pack(
            &path2,
            ChunkWriter {
                tx,
                buf: BytesMut::with_capacity(CHUNK),
            },
        )
    });
    ready_rx
        .await
        .map_err(|_| "the copy thread ended early".to_owned())??;
    send(sink, Frame::Ready).await?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = rx.recv().await {
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        send(sink, Frame::Data(chunk)).await?;
    }
    done.await
        .map_err(|_| "the copy thread ended early".to_owned())??;
    let sha256 = hex::encode(hasher.finalize());
    tracing::info!(path = %path.display(), bytes, "copy out done");
    send(sink, Frame::DataEnd(Some(DataSummary { bytes, sha256 }))).await
}
