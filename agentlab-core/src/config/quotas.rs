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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_yaml_str(&format!("backend: fake\n{text}"), "config.yaml")
    }

    #[test]
    fn quotas_default_to_unlimited_with_disk_warnings_at_90() {
        let q = parse("").expect("defaults").quotas;
        assert_eq!(q.max_sandboxes, None);
        assert!(q.max_sandboxes_per_profile.is_empty());
        assert_eq!(q.disk_warn_percent, Some(90));
        let set = parse(
            "quotas:\n  max_sandboxes: 5\n  max_sandboxes_per_profile:\n    yolo-ephemeral: 2\n  \
             max_artifact_bytes_total: 1000\n  disk_warn_percent: null\n",
        )
        .expect("set")
        .quotas;
        assert_eq!(set.max_sandboxes, Some(5));
        assert_eq!(set.max_sandboxes_per_profile["yolo-ephemeral"], 2);
        assert_eq!(set.max_artifact_bytes_total, Some(1000));
        assert_eq!(set.disk_warn_percent, None);
    }

    #[test]
    fn zero_limits_out_of_range_percentages_and_typos_are_refused() {
        for (yaml, field) in [
            ("quotas:\n  max_sandboxes: 0\n", "quotas.max_sandboxes"),
            (
                "quotas:\n  max_sandboxes_per_profile:\n    a: 0\n",
                "quotas.max_sandboxes_per_profile",
            ),
            (
                "quotas:\n  disk_warn_percent: 101\n",
                "quotas.disk_warn_percent",
            ),
            ("retention:\n  events_days: 0\n", "retention.events_days"),
            ("quotas:\n  max_sandbox: 1\n", "max_sandboxes"),
        ] {
            let e = parse(yaml).expect_err(yaml).to_string();
            assert!(e.contains(field), "{yaml}: {e}");
        }
    }
}
