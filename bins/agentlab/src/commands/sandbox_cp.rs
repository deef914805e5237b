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
use hyper::body::Bytes;

use agentlab_client::{ChunkReader, ChunkWriter};
use agentlab_core::Vmid;
use agentlab_core::api::channel::{CopyInRequest, CopyOutRequest, ExecUser};

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
    let mut copy = ctx
        .client
        .copy_in(vmid, CopyInRequest { path, user })
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let src = src.to_owned();
    let packer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut w = ChunkWriter::new(tx);
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
    while let Some(chunk) = rx.recv().await {
        copy.send(chunk).await?;
    }
    packer.await?.with_context(|| "reading the source")?;
    let s = copy.finish().await?;
    Ok(Copied {
        bytes: s.bytes,
        sha256: s.sha256,
    })
}

async fn download(
    ctx: &Ctx,
    vmid: Vmid,
    path: String,
    dst: &Path,
    user: ExecUser,
) -> anyhow::Result<Copied> {
    std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut copy = ctx
        .client
        .copy_out(vmid, CopyOutRequest { path, user })
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let dst = dst.to_owned();
    let unpacker = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut ar = tar::Archive::new(ChunkReader::new(rx));
        ar.set_preserve_permissions(false);
        ar.set_overwrite(true);
        ar.unpack(&dst)?;
        // Drain what tar did not read (padding), so the sender never blocks.
        std::io::copy(&mut ar.into_inner(), &mut std::io::sink())?;
        Ok(())
    });
    let received = async {
        while let Some(chunk) = copy.next_chunk().await? {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    drop(tx);
    let unpacked = unpacker.await?;
    received?;
    unpacked.with_context(|| "unpacking the copy")?;
    let s = copy.summary();
    Ok(Copied {
        bytes: s.bytes,
        sha256: s.sha256,
    })
}
