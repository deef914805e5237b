//! Reloading profiles (and reading the config again) on SIGHUP or `POST /v1/profiles/reload`.
//!
//! A reload reads the config file the daemon started with and the profiles directory it
//! started with, validates everything, and only then swaps the engine's profile set in one
//! step ([`agentlab_core::engine::Lab::replace_profiles`]); an invalid file leaves the running
//! set untouched. Profiles are the only thing a reload applies: every other config key is read
//! once at start, so the report lists the top-level keys whose value on disk differs from the
//! running one (`restart_required`) instead of ignoring them silently.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use agentlab_core::api::admin::ReloadReport;
use agentlab_core::config::{Config, ConfigError};
use agentlab_core::engine::Lab;
use agentlab_core::profile::{ProfileError, Profiles};

/// Why a reload was refused (the running profiles are kept).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file is invalid.
    #[error("Invalid config {path}")]
    Config {
        /// The config file.
        path: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// A profile file is invalid (or the directory cannot be read).
    #[error("Invalid profiles")]
    Profiles(#[source] ProfileError),
    /// The blocking reader task failed.
    #[error("Reload task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Reloads the engine's profiles from the config the daemon started with.
#[derive(Debug)]
pub struct Reloader {
    config_path: PathBuf,
    running: Config,
    lab: Arc<Lab>,
}

impl Reloader {
    /// A reloader for a daemon started with `running`, read from `config_path`.
    pub fn new(config_path: PathBuf, running: Config, lab: Arc<Lab>) -> Self {
        Self {
            config_path,
            running,
            lab,
        }
    }

    /// Reads config and profiles on a blocking thread, then swaps the profile set.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let path = self.config_path.clone();
        let dir = self.running.profiles_dir.clone();
        let (cfg, profiles) = tokio::task::spawn_blocking(move || {
            let cfg = Config::load(&path).map_err(|source| ReloadError::Config {
                path: path.display().to_string(),
                source,
            })?;
            let profiles = Profiles::load_dir(&dir).map_err(ReloadError::Profiles)?;
            Ok::<_, ReloadError>((cfg, profiles))
        })
        .await
        .map_err(ReloadError::Task)??;
        let restart_required = restart_only_changes(&self.running, &cfg);
        log_deprecations(&profiles);
        let changes = self.lab.replace_profiles(profiles);
        if !restart_required.is_empty() {
            tracing::warn!(keys = ?restart_required, "config keys changed on disk need a restart");
        }
        Ok(ReloadReport {
            config: self.config_path.display().to_string(),
            profiles: changes,
            restart_required,
        })
    }
}

/// One warning line per Go-original spelling the loaded profiles use (see
/// docs/upgrade-from-go.md).
pub fn log_deprecations(profiles: &Profiles) {
    for w in profiles.warnings() {
        tracing::warn!(
            file = %w.file,
            document = w.document,
            field = %w.field,
            line = ?w.line,
            "deprecated profile key accepted: {}",
            w.message
        );
    }
}

/// Top-level config keys whose value differs between `running` and `on_disk` (every key but
/// the profiles' contents needs a restart; `profiles_dir` itself does too). A difference in a
/// key this list does not name yet is reported as `other`.
pub fn restart_only_changes(running: &Config, on_disk: &Config) -> Vec<String> {
    let (a, b) = (running, on_disk);
    let keys: [(&str, bool); 18] = [
        ("socket", a.socket != b.socket),
        ("socket_group", a.socket_group != b.socket_group),
        ("data_dir", a.data_dir != b.data_dir),
        ("db_path", a.db_path != b.db_path),
        ("artifact_dir", a.artifact_dir != b.artifact_dir),
        ("profiles_dir", a.profiles_dir != b.profiles_dir),
        ("backend", a.backend != b.backend),
        ("guest", a.guest != b.guest),
        ("vmid_range", a.vmid_range != b.vmid_range),
        ("network", a.network != b.network),
        ("pve", a.pve != b.pve),
        ("local", a.local != b.local),
        ("qemu", a.qemu != b.qemu),
        ("fake", a.fake != b.fake),
        ("secrets", a.secrets != b.secrets),
        ("retention", a.retention != b.retention),
        ("log", a.log != b.log),
        ("limits", a.limits != b.limits),
    ];
    let mut out: Vec<String> = keys
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| (*k).to_owned())
        .collect();
    if a.ssh_public_keys != b.ssh_public_keys {
        out.push("ssh_public_keys".into());
    }
    // A key added to `Config` after this list was written still shows up.
    if out.is_empty() && a != b {
        out.push("other".into());
    }
    out.sort();
    out
}

/// Reloads on every SIGHUP until `cancel` fires; each outcome is one log line.
pub fn spawn_sighup(reloader: Arc<Reloader>, cancel: CancellationToken) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload only through the API");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            match reloader.reload().await {
                Ok(r) => tracing::info!(
                    trigger = "SIGHUP",
                    added = ?r.profiles.added,
                    removed = ?r.profiles.removed,
                    changed = ?r.profiles.changed,
                    restart_required = ?r.restart_required,
                    "profiles reloaded"
                ),
                Err(e) => tracing::error!(
                    trigger = "SIGHUP",
                    error = %agentlab_core::engine::chain(&e),
                    "reload refused; the running profiles are kept"
                ),
            }
        }
    });
}
