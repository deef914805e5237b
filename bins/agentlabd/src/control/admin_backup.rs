//! `GET /v1/admin/backup`: a backup archive streamed over the control socket.
//!
//! The daemon runs as root and the socket's group is not root-equivalent, so it never writes
//! to a path a caller names: it builds the archive in a private directory of its own data dir
//! (`.backup-*`, mode 0700), unlinks it once opened, and streams it; the CLI writes the
//! caller's file. Contents: an online SQLite backup of the state database (`state.db`), the
//! age-encrypted secret bundles and `recipients.txt` as they are (never decrypted; the age
//! identity is never included), the profiles, and the config file unless it holds an inline
//! `pve.token_secret` (then it is left out and the manifest says so).

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use agentlab_core::backup::{FORMAT, Manifest, Source, write_archive};
use agentlab_core::config::Config;
use agentlab_core::sqlite::SqliteStore;

use crate::control::admin::AdminState;
use crate::control::error::ApiError;

/// What a backup reads: the running config and the file it came from.
#[derive(Debug)]
pub struct BackupPlan {
    /// The config the daemon runs with.
    pub config: Config,
    /// The file it was read from.
    pub config_path: PathBuf,
    /// The daemon's version line.
    pub version: &'static str,
}

/// Streams a fresh backup archive (`application/x-tar`).
pub async fn backup(State(st): State<AdminState>) -> Result<Response, ApiError> {
    let plan = &st.backup;
    let work = private_dir(&plan.config.data_dir).map_err(|e| fail("work directory", &e))?;
    let built = build(plan, &work).await;
    // The open archive stays readable after its directory is gone.
    let _ = std::fs::remove_dir_all(&work);
    let (manifest, file) = built?;
    tracing::info!(
        files = manifest.files.len(),
        schema_version = manifest.schema_version,
        omitted = ?manifest.omitted,
        "backup streamed to a control-socket client"
    );
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Copies the database into `work`, then writes the archive there and opens it.
async fn build(plan: &BackupPlan, work: &Path) -> Result<(Manifest, std::fs::File), ApiError> {
    let db_copy = work.join("state.db");
    let store = SqliteStore::open(&plan.config.db_path())
        .await
        .map_err(|e| fail("opening the state database", &e))?;
    store
        .backup_to(&db_copy)
        .await
        .map_err(|e| fail("copying the state database", &e))?;
    let schema_version = store
        .schema_version()
        .await
        .map_err(|e| fail("reading the schema version", &e))?;
    drop(store);
    let base = Manifest {
        format: FORMAT,
        schema_version,
        daemon_version: plan.version.to_owned(),
        created_at: chrono::Utc::now(),
        omitted: Vec::new(),
        files: Vec::new(),
    };
    let (cfg, cfg_path) = (plan.config.clone(), plan.config_path.clone());
    let archive = work.join("backup.tar");
    let built = tokio::task::spawn_blocking(move || {
        let (sources, omitted) = sources(&cfg, &cfg_path, db_copy)?;
        let out = std::fs::File::create(&archive)?;
        let manifest = write_archive(out, Manifest { omitted, ..base }, &sources)
            .map_err(std::io::Error::other)?;
        let file = std::fs::File::open(&archive)?;
        Ok::<_, std::io::Error>((manifest, file))
    })
    .await;
    match built {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(fail("writing the archive", &e)),
        Err(e) => Err(fail("archive task", &e)),
    }
}

/// A 500 `backup_failed`, logged.
fn fail(what: &str, e: &(dyn std::error::Error + 'static)) -> ApiError {
    let cause = agentlab_core::engine::chain(e);
    tracing::error!(error = %cause, "backup failed: {what}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "backup_failed",
        format!("Backup failed: {what}: {cause}"),
    )
}

/// A new directory `.backup-*` (mode 0700) in `data_dir`.
fn private_dir(data_dir: &Path) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = data_dir.join(format!(".backup-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Removes the `.backup-*` working directories a killed daemon left in `data_dir` (called
/// at start, before anything can begin a new backup). Returns how many went.
pub fn remove_stale_work_dirs(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

/// The files of a backup, and notes about what was left out.
fn sources(
    cfg: &Config,
    cfg_path: &Path,
    db_copy: PathBuf,
) -> std::io::Result<(Vec<Source>, Vec<String>)> {
    let mut out = vec![Source {
        from: db_copy,
        path: "state.db".into(),
        mode: 0o600,
    }];
    let mut omitted = vec!["the age identity (secrets.identity): back it up separately".to_owned()];
    let bundles = files_in(&cfg.secrets.dir, |n| {
        n.ends_with(".age") || n == "recipients.txt"
    })?;
    for (name, from) in bundles {
        if from == cfg.secrets.identity {
            continue;
        }
        out.push(Source {
            from,
            path: format!("secrets/{name}"),
            mode: 0o600,
        });
    }
    for (name, from) in files_in(&cfg.profiles_dir, |n| {
        n.ends_with(".yaml") || n.ends_with(".yml")
    })? {
        out.push(Source {
            from,
            path: format!("profiles/{name}"),
            mode: 0o644,
        });
    }
    if cfg.pve.as_ref().is_some_and(|p| p.token_secret.is_some()) {
        omitted.push("the config file: it holds an inline pve.token_secret".into());
    } else {
        out.push(Source {
            from: cfg_path.to_path_buf(),
            path: "config/config.yaml".into(),
            mode: 0o600,
        });
    }
    Ok((out, omitted))
}

/// Regular, non-hidden files of `dir` whose name passes `keep`, sorted; a missing directory
/// has none.
fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.file_type()?.is_file() && keep(&name) {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod stale_tests {
    #[test]
    fn a_killed_backups_work_dir_is_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let work = super::private_dir(dir.path()).unwrap();
        std::fs::write(work.join("state.db"), b"copy").unwrap();
        std::fs::write(dir.path().join("agentlab.db"), b"keep").unwrap();
        assert_eq!(super::remove_stale_work_dirs(dir.path()), 1);
        assert!(!work.exists());
        assert!(
            dir.path().join("agentlab.db").exists(),
            "only backup work dirs go"
        );
    }
}
