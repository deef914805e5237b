//! `agentlab admin backup DEST` and `agentlab admin restore SRC`.
//!
//! `backup` streams the archive the daemon builds (`GET /v1/admin/backup`) into DEST (mode
//! 0600, through `DEST.part`), then checks it against its own manifest before renaming it into
//! place; the daemon never writes to a path the caller chose. `restore` is offline and lives
//! in `admin_restore.rs`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use agentlab_core::backup::{Manifest, unpack_verified};

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;

/// Arguments of `agentlab admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub cmd: AdminCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCmd {
    /// Back up the daemon's state (online): database, encrypted secret bundles, profiles and
    /// config, with a manifest of SHA-256 checksums. Written by this CLI, mode 0600.
    Backup {
        /// The archive to write (a tar); refused when it exists.
        dest: PathBuf,
    },
    /// Restore a backup into this host's data dir while the daemon is stopped.
    Restore(crate::commands::admin_restore::RestoreArgs),
}

/// Runs `agentlab admin …`.
pub async fn run(ctx: &Ctx, args: AdminArgs) -> anyhow::Result<Code> {
    match args.cmd {
        AdminCmd::Backup { dest } => backup(ctx, &dest).await,
        AdminCmd::Restore(a) => crate::commands::admin_restore::run(ctx, a).await,
    }
}

async fn backup(ctx: &Ctx, dest: &Path) -> anyhow::Result<Code> {
    if dest.exists() {
        anyhow::bail!("{} exists; choose a new file", dest.display());
    }
    let part = part_path(dest);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)
        .with_context(|| format!("Cannot create {}", part.display()))?;
    let written = async {
        let mut dl = ctx.client.download("/v1/admin/backup").await?;
        while let Some(chunk) = dl.next_chunk().await? {
            out.write_all(&chunk)
                .with_context(|| format!("Cannot write {}", part.display()))?;
        }
        out.sync_all()?;
        let check = part.clone();
        tokio::task::spawn_blocking(move || verify(&check)).await?
    }
    .await;
    let manifest = match written {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, dest).with_context(|| format!("Cannot write {}", dest.display()))?;
    if ctx.json {
        print_json(&serde_json::json!({"path": dest, "manifest": manifest}))?;
    } else {
        println!(
            "{}: {} files, schema version {}, from {}",
            dest.display(),
            manifest.files.len(),
            manifest.schema_version,
            manifest.daemon_version
        );
        for note in &manifest.omitted {
            println!("not included: {note}");
        }
    }
    Ok(Code::Ok)
}

/// Checks an archive against its manifest by unpacking it into a temporary directory next to
/// it (removed afterwards).
fn verify(archive: &Path) -> anyhow::Result<Manifest> {
    let parent = archive.parent().filter(|p| !p.as_os_str().is_empty());
    let staging = tempfile::Builder::new()
        .prefix(".agentlab-verify-")
        .tempdir_in(parent.unwrap_or(Path::new(".")))
        .context("Cannot create a directory to verify the backup")?;
    let file = std::fs::File::open(archive)?;
    // Any schema: a newer daemon than this CLI still gets its archive checked.
    let manifest = unpack_verified(file, staging.path(), u32::MAX)
        .with_context(|| format!("Backup {} is not valid", archive.display()))?;
    Ok(manifest)
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}
