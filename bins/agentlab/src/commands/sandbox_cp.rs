//! `agentlab sandbox cp SRC DST`: files and directories into or out of a running sandbox,
//! one side written `<vmid>:/path`.
//!
//! The data is a tar stream cut into frames; its size and SHA-256 travel with it and the
//! receiver checks both. Into the sandbox, `DST` is a directory (created if missing) that
//! receives `SRC` under its own name. Out of it, the local `DST` directory receives the file
//! or tree under its name; entries that would land outside `DST` (absolute paths, `..`,
//! links leading out) are refused, and set-uid/set-gid bits are not kept.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use hyper::body::Bytes;
use sha2::{Digest as _, Sha256};

use agentlab_core::Vmid;
use agentlab_core::api::channel::{
    CopyInRequest, CopyOutRequest, DataSummary, ExecUser, StreamRequest,
};
use agentlab_core::api::frame::{CHUNK, Frame};

use super::sandbox_exec::UserArg;
use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;

/// Arguments of `agentlab sandbox cp`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Source: a local path or `<vmid>:/path`.
    pub src: String,
    /// Destination directory: a local path or `<vmid>:/path`.
    pub dst: String,
    /// Owner of the files inside the sandbox (reader for a copy out).
    #[arg(long, value_enum, default_value = "agent")]
    pub user: UserArg,
}

/// `<vmid>:/path` split, or `None` for a local path.
fn remote(s: &str) -> Option<(Vmid, String)> {
    let (id, path) = s.split_once(':')?;
    Some((id.parse().ok()?, path.to_owned()))
}

/// What a copy moved.
#[derive(Debug, serde::Serialize)]
struct Copied {
    bytes: u64,
    sha256: String,
}

/// Runs `agentlab sandbox cp`.
pub async fn run(ctx: &Ctx, a: CpArgs) -> anyhow::Result<Code> {
    let user: ExecUser = a.user.into();
    let copied = match (remote(&a.src), remote(&a.dst)) {
        (None, Some((vmid, path))) => upload(ctx, vmid, Path::new(&a.src), path, user).await?,
        (Some((vmid, path)), None) => download(ctx, vmid, path, Path::new(&a.dst), user).await?,
        (Some(_), Some(_)) => {
            bail!("copy between two sandboxes is not supported: copy through the host")
        }
        (None, None) => bail!("one side must be <vmid>:/path"),
    };
    if ctx.json {
        print_json(&copied)?;
    } else {
        println!("copied {} bytes (sha256 {})", copied.bytes, copied.sha256);
    }
    Ok(Code::Ok)
}

/// A `Write` that hands chunks to an async channel (tar runs on a blocking thread).
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stream closed"))
    }
}

async fn upload(
    ctx: &Ctx,
    vmid: Vmid,
    src: &Path,
    path: String,
    user: ExecUser,
) -> anyhow::Result<Copied> {
    let meta = std::fs::symlink_metadata(src).with_context(|| format!("{}", src.display()))?;
    let name = src
        .file_name()
        .map(PathBuf::from)
        .with_context(|| format!("{} has no file name", src.display()))?;
    let mut stream = ctx
        .client
        .open_stream(vmid, StreamRequest::CopyIn(CopyInRequest { path, user }))
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let src = src.to_owned();
    let packer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut w = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        {
            let mut b = tar::Builder::new(&mut w);
            b.follow_symlinks(false);
            if meta.is_dir() {
                b.append_dir_all(&name, &src)?;
            } else {
                b.append_path_with_name(&src, &name)?;
            }
            b.finish()?;
        }
        std::io::Write::flush(&mut w)
    });
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = rx.recv().await {
        hash.update(&chunk);
        bytes += chunk.len() as u64;
        stream.send(Frame::Data(chunk)).await?;
    }
    packer.await?.with_context(|| "reading the source")?;
    let sha256 = hex::encode(hash.finalize());
    stream
        .send(Frame::DataEnd(Some(DataSummary {
            bytes,
            sha256: sha256.clone(),
        })))
        .await?;
    match stream.next().await {
        Some(Ok(Frame::Exit(x))) if x.code == 0 => Ok(Copied { bytes, sha256 }),
        Some(Ok(Frame::Exit(x))) => bail!("the copy failed in the sandbox (code {})", x.code),
        Some(Ok(Frame::Error(m))) => bail!("{m}"),
        other => bail!("the sandbox did not confirm the copy: {other:?}"),
    }
}

/// A `Read` fed by an async channel.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

async fn download(
    ctx: &Ctx,
    vmid: Vmid,
    path: String,
    dst: &Path,
    user: ExecUser,
) -> anyhow::Result<Copied> {
    std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut stream = ctx
        .client
        .open_stream(vmid, StreamRequest::CopyOut(CopyOutRequest { path, user }))
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let dst = dst.to_owned();
    let unpacker = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut ar = tar::Archive::new(ChunkReader {
            rx,
            cur: Bytes::new(),
        });
        ar.set_preserve_permissions(false);
        ar.set_overwrite(true);
        ar.unpack(&dst)?;
        // Drain what tar did not read (padding), so the sender never blocks.
        std::io::copy(&mut ar.into_inner(), &mut std::io::sink())?;
        Ok(())
    });
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let summary = loop {
        match stream.next().await {
            Some(Ok(Frame::Data(b))) => {
                hash.update(&b);
                bytes += b.len() as u64;
                if tx.send(b).await.is_err() {
                    break None;
                }
            }
            Some(Ok(Frame::DataEnd(s))) => break s,
            Some(Ok(Frame::Error(m))) => bail!("{m}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("the stream broke off: {e}"),
            None => bail!("the sandbox closed the stream before the copy ended"),
        }
    };
    drop(tx);
    unpacker.await?.with_context(|| "unpacking the copy")?;
    let sha256 = hex::encode(hash.finalize());
    match summary {
        Some(s) if s.bytes == bytes && s.sha256 == sha256 => Ok(Copied { bytes, sha256 }),
        Some(s) => bail!(
            "the copy arrived damaged: {bytes} bytes with sha256 {sha256}, the sandbox sent {} bytes with sha256 {}",
            s.bytes,
            s.sha256
        ),
        None => bail!("the copy ended without its checksum"),
    }
}
