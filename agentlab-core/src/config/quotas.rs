//! `quotas:` limits on how much the daemon holds at once (see `docs/operations.md`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `quotas:` every limit is optional; absent (`null`) means unlimited.
///
/// A sandbox counts against `max_sandboxes` and `max_sandboxes_per_profile` from its request
/// until its guest is gone: every state but DESTROYED, and FAILED or TIMEOUT with no VM left
/// (see [`crate::quota::holds_slot`]). Artifact bytes are those of the stored artifact
/// records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// Most sandboxes at once, over all profiles (default unlimited).
    pub max_sandboxes: Option<u64>,
    /// Most sandboxes at once per profile name (default: no per-profile limit). A profile
    /// that is not listed is limited by `max_sandboxes` only.
    pub max_sandboxes_per_profile: BTreeMap<String, u64>,
    /// Most bytes of artifacts one job may store, over all its uploads (default unlimited;
    /// the profile's `artifacts.max_bytes` and `guest.artifact_max_bytes` apply as well).
    pub max_artifact_bytes_per_job: Option<u64>,
    /// Most bytes of artifacts stored over all jobs (default unlimited).
    pub max_artifact_bytes_total: Option<u64>,
    /// Filesystem usage in percent above which the daemon warns about `data_dir`, the
    /// artifact directory and the backend's workspace volumes (default 90; `null` turns the
    /// check off).
    pub disk_warn_percent: Option<u8>,
    /// Seconds between disk usage checks (default 60).
    pub disk_check_interval_secs: u64,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            max_sandboxes: None,
            max_sandboxes_per_profile: BTreeMap::new(),
            max_artifact_bytes_per_job: None,
            max_artifact_bytes_total: None,
            disk_warn_percent: Some(90),
            disk_check_interval_secs: 60,
        }
    }
}
