//! The periodic upkeep besides the engine's tick: retention passes over the event
//! store (every `retention.gc_interval_secs`) and disk usage checks of the directories it
//! writes (every `quotas.disk_check_interval_secs`). Both stop when the host shuts down ([`crate::Host::shutdown`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use agentlab_core::api::control::DiskStatus;
use agentlab_core::config::{BackendKind, Config};
use agentlab_core::engine::{Lab, RetentionPolicy};
use agentlab_core::quota::{DiskCrossing, DiskWatch};
use agentlab_core::{EventKind, NewEvent};

/// Last disk usages, shared with the status route.
pub type DiskReport = Arc<Mutex<Vec<DiskStatus>>>;

/// The directories whose filesystems are watched: `data_dir`, the artifact directory, the
/// database's directory and the workspace volumes of the local and qemu backends.
pub fn watched_paths(cfg: &Config) -> Vec<PathBuf> {
    let mut paths = vec![cfg.data_dir.clone(), cfg.artifact_dir()];
    if let Some(dir) = cfg.db_path().parent() {
        paths.push(dir.to_path_buf());
    }
    match cfg.backend {
        BackendKind::Local => paths.push(cfg.data_dir.join("local").join("volumes")),
        BackendKind::Qemu => paths.push(cfg.data_dir.join("qemu").join("volumes")),
        BackendKind::Pve | BackendKind::Fake => {}
    }
    paths.dedup();
    paths
}

/// Filesystem id and percent used of `path`'s filesystem; `None` when it cannot be read
/// (a volume directory not created yet). Blocking.
fn usage(path: &std::path::Path) -> Option<(u64, f64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let used = st.blocks().saturating_sub(st.blocks_free()) as f64;
    let avail = st.blocks_available() as f64;
    let pct = if used + avail > 0.0 {
        used * 100.0 / (used + avail)
    } else {
        0.0
    };
    Some((st.filesystem_id() as u64, pct))
}

/// One disk check: reads every watched filesystem once, logs a warning and records a
/// `disk_usage` event when one crosses `threshold` (and when it falls back below).
pub async fn check_disks(
    lab: &Lab,
    paths: &[PathBuf],
    threshold: u8,
    watch: &mut DiskWatch,
) -> Vec<DiskStatus> {
    let owned = paths.to_vec();
    let seen = tokio::task::spawn_blocking(move || {
        let mut fs_seen = Vec::new();
        let mut out = Vec::new();
        for p in owned {
            if let Some((fsid, pct)) = usage(&p)
                && !fs_seen.contains(&fsid)
            {
                fs_seen.push(fsid);
                out.push((p, pct));
            }
        }
        out
    })
    .await
    .unwrap_or_default();
    let mut report = Vec::new();
    for (path, pct) in seen {
        let crossing = watch.observe(&path, pct, threshold);
        let above = pct >= f64::from(threshold);
        match crossing {
            Some(DiskCrossing::Above) => tracing::warn!(path = %path.display(),
                used_percent = format!("{pct:.1}"), threshold_percent = threshold,
                "filesystem usage is above quotas.disk_warn_percent"),
            Some(DiskCrossing::Below) => tracing::info!(path = %path.display(),
                used_percent = format!("{pct:.1}"), threshold_percent = threshold,
                "filesystem usage is below quotas.disk_warn_percent again"),
            None => {}
        }
        if crossing.is_some() {
            let msg = format!(
                "{} is {pct:.1}% full ({} the {threshold}% threshold)",
                path.display(),
                if above { "at or above" } else { "back below" }
            );
            let ev = NewEvent::new(lab.deps().clock.now(), EventKind::DiskUsage, msg).payload(
                serde_json::json!({
                    "path": path,
                    "used_percent": (pct * 10.0).round() / 10.0,
                    "threshold_percent": threshold,
                    "above": above,
                }),
            );
            if let Err(e) = lab.deps().store.append_event(ev).await {
                tracing::error!(error = %e, "failed to record the disk usage event");
            }
        }
        report.push(DiskStatus {
            path: path.display().to_string(),
            used_percent: pct.clamp(0.0, 100.0) as u8,
            above,
        });
    }
    report
}

/// The retention policy of the config.
pub fn retention_policy(cfg: &Config) -> RetentionPolicy {
    RetentionPolicy {
        events_days: cfg.retention.events_days,
        jobs_days: cfg.retention.jobs_days,
        ..RetentionPolicy::default()
    }
}

/// Starts the retention and disk loops; they end when `cancel` fires. Returns the disk
/// report the status route reads.
pub fn spawn(lab: &Arc<Lab>, cfg: &Config, cancel: &CancellationToken) -> DiskReport {
    let report = DiskReport::default();
    let policy = retention_policy(cfg);
    let every = Duration::from_secs(cfg.retention.gc_interval_secs);
    let (l, c) = (Arc::clone(lab), cancel.clone());
    tokio::spawn(async move {
        loop {
            if let Err(e) = l.prune_retention(&policy, &c).await {
                tracing::warn!(error = %agentlab_core::engine::chain(&e), "retention pass failed");
            }
            tokio::select! {
                () = c.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
    if let Some(threshold) = cfg.quotas.disk_warn_percent {
        let paths = watched_paths(cfg);
        let every = Duration::from_secs(cfg.quotas.disk_check_interval_secs);
        let (l, c, r) = (Arc::clone(lab), cancel.clone(), Arc::clone(&report));
        tokio::spawn(async move {
            let mut watch = DiskWatch::default();
            loop {
                let now = check_disks(&l, &paths, threshold, &mut watch).await;
                *r.lock().unwrap_or_else(PoisonError::into_inner) = now;
                tokio::select! {
                    () = c.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }
    report
}

#[cfg(test)]
mod tests;
