//! `agentlab admin restore SRC [--config PATH] [--force]`: offline restore of a backup.
//!
//! Order: read the config (the backup's own config is written to PATH first when PATH does
//! not exist), refuse while the daemon's socket answers, refuse a non-empty data dir without
//! `--force`, take the data dir's lock (refused while another engine — a daemon or an
//! embedded program — holds it; kept until the end), unpack into a private staging directory inside the data dir verifying every
//! checksum and refusing a newer schema (also checked in the database file itself), then move
//! the database, secret bundles (0600, directory 0700) and profiles into place.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use agentlab_core::backup::{BackupError, Manifest, unpack_verified};
use agentlab_core::config::{CONFIG_ENV, Config, resolve_path};
use agentlab_core::sqlite::SqliteStore;

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;

/// Arguments of `agentlab admin restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup archive written by `agentlab admin backup`.
    pub src: PathBuf,
    /// The daemon config naming where to restore (default: `AGENTLAB_CONFIG`, else
    /// /etc/agentlab/config.yaml). When it does not exist, the backup's config is written there.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Restore into a data dir that is not empty, replacing the database and same-named files.
    #[arg(long)]
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Serialize)]
struct Restored {
    config: PathBuf,
    config_written: bool,
    database: PathBuf,
    schema_version: u32,
    files: usize,
    omitted: Vec<String>,
}

/// Runs the restore on a blocking thread.
pub async fn run(ctx: &Ctx, args: RestoreArgs) -> anyhow::Result<Code> {
    let env = std::env::var_os(CONFIG_ENV);
    let config = resolve_path(args.config.as_deref(), env.as_deref());
    let done = tokio::task::spawn_blocking(move || restore(&args.src, &config, args.force))
        .await
        .context("restore task failed")??;
    if ctx.json {
        print_json(&done)?;
    } else {
        println!(
            "restored {} files (schema version {}) into {}; config {} {}",
            done.files,
            done.schema_version,
            done.database.display(),
            done.config.display(),
            if done.config_written {
                "written from the backup"
            } else {
                "kept as it was"
            }
        );
        for note in &done.omitted {
            println!("not in the backup: {note}");
        }
    }
    Ok(Code::Ok)
}

fn restore(src: &Path, config_path: &Path, force: bool) -> anyhow::Result<Restored> {
    let open =
        || std::fs::File::open(src).with_context(|| format!("Cannot read {}", src.display()));
    let config_written = !config_path.exists();
    if config_written {
        write_backup_config(open()?, config_path)?;
    }
    let cfg = Config::load(config_path)
        .with_context(|| format!("Invalid config {}", config_path.display()))?;
    if std::os::unix::net::UnixStream::connect(&cfg.socket).is_ok() {
        anyhow::bail!(
            "agentlabd answers on {}; stop it before restoring",
            cfg.socket.display()
        );
    }
    let data = &cfg.data_dir;
    // The lock file a stopped engine leaves is not data.
    let non_empty = std::fs::read_dir(data).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name() != agentlab_host::host_lock::LOCK_FILE))
    });
    if non_empty && !force {
        anyhow::bail!(
            "Data dir {} is not empty; use --force to replace its contents",
            data.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)
        .with_context(|| format!("Cannot create {}", data.display()))?;
    // Held until the restore is done: an engine without a socket (an embedded program) is
    // refused like a daemon, and neither can start on the data dir halfway through.
    let _lock = agentlab_host::HostLock::acquire(data).context("Refusing to restore")?;
    let staging = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(data)
        .context("Cannot create a staging directory in the data dir")?;
    let manifest = unpack_verified(open()?, staging.path(), SqliteStore::SCHEMA_VERSION)
        .with_context(|| format!("Refusing {}", src.display()))?;
    let db = staging.path().join("state.db");
    let found =
        SqliteStore::file_schema_version(&db).context("Cannot read the backed-up database")?;
    if found != manifest.schema_version {
        anyhow::bail!(
            "The database has schema version {found}, the manifest says {}",
            manifest.schema_version
        );
    }
    place(&manifest, staging.path(), &cfg)?;
    Ok(Restored {
        config: config_path.to_path_buf(),
        config_written,
        database: cfg.db_path(),
        schema_version: manifest.schema_version,
        files: manifest.files.len(),
        omitted: manifest.omitted,
    })
}

/// Writes the backup's `config/config.yaml` (verified) to `dest`, mode 0600.
fn write_backup_config(archive: std::fs::File, dest: &Path) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("Cannot create a temporary directory")?;
    let manifest = unpack_verified(archive, tmp.path(), SqliteStore::SCHEMA_VERSION)?;
    if manifest.file("config/config.yaml").is_none() {
        anyhow::bail!(
            "{} does not exist and the backup holds no config ({})",
            dest.display(),
            manifest.omitted.join("; ")
        );
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    copy_with_mode(&tmp.path().join("config/config.yaml"), dest, 0o600)
}

/// Moves the staged files to where `cfg` says they live.
fn place(manifest: &Manifest, staging: &Path, cfg: &Config) -> anyhow::Result<()> {
    let db = cfg.db_path();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(p)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    copy_with_mode(&staging.join("state.db"), &db, 0o600)?;
    for f in &manifest.files {
        let (dir, mode, dir_mode) = if let Some(name) = f.path.strip_prefix("secrets/") {
            (cfg.secrets.dir.join(name), 0o600, 0o700)
        } else if let Some(name) = f.path.strip_prefix("profiles/") {
            (cfg.profiles_dir.join(name), 0o644, 0o755)
        } else if f.path == "config/config.yaml" {
            (cfg.data_dir.join("restored-config.yaml"), 0o600, 0o700)
        } else {
            continue;
        };
        if let Some(parent) = dir.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(dir_mode)
                .create(parent)?;
        }
        copy_with_mode(&staging.join(&f.path), &dir, mode)?;
    }
    Ok(())
}

/// Copies `from` to `to` through a temporary file in `to`'s directory, then sets `mode`.
fn copy_with_mode(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("Cannot write in {}", dir.display()))?;
    std::fs::copy(from, tmp.path()).with_context(|| format!("Cannot write {}", to.display()))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist(to).map_err(|e| BackupError::Io {
        action: "write",
        path: to.display().to_string(),
        source: e.error,
    })?;
    Ok(())
}
