//! Quota arithmetic: which sandboxes hold a slot, whether one more fits, and how many bytes an
//! artifact upload may still write. Pure functions over what the caller read, so the engine,
//! the daemon's upload route and embedders decide the same way.

use std::fmt;

use serde::Serialize;

use crate::config::QuotasConfig;
use crate::model::Sandbox;
use crate::state::SandboxState;

/// A refused request: which limit, its configured value and the usage it met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaExceeded {
    /// The config key under `quotas:` (`max_sandboxes`, `max_sandboxes_per_profile`,
    /// `max_artifact_bytes_per_job`, `max_artifact_bytes_total`).
    pub limit: &'static str,
    /// The configured limit.
    pub value: u64,
    /// The usage when the request came (sandboxes, or bytes already stored).
    pub used: u64,
    /// What the request asked for on top (1 sandbox; the bytes of an upload, when known).
    pub requested: Option<u64>,
    /// The profile, for `max_sandboxes_per_profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.limit.starts_with("max_artifact") {
            " bytes"
        } else {
            ""
        };
        write!(f, "Quota exceeded: quotas.{}", self.limit)?;
        if let Some(p) = &self.profile {
            write!(f, ".{p}")?;
        }
        write!(f, " is {}{unit}, {} in use", self.value, self.used)?;
        if let Some(r) = self.requested {
            write!(f, ", {r}{unit} requested")?;
        }
        Ok(())
    }
}

/// Whether `sb` counts against the sandbox quotas: every state but DESTROYED, and FAILED or
/// TIMEOUT with no VM left (the guest is gone; only the record stays for inspection).
pub fn holds_slot(sb: &Sandbox) -> bool {
    match sb.state {
        SandboxState::Destroyed => false,
        SandboxState::Failed | SandboxState::Timeout => sb.vm_created,
        _ => true,
    }
}

/// Whether one more sandbox of `profile` fits, given every sandbox in the store.
pub fn check_sandbox(
    quotas: &QuotasConfig,
    sandboxes: &[Sandbox],
    profile: &str,
) -> Result<(), QuotaExceeded> {
    let live = || sandboxes.iter().filter(|s| holds_slot(s));
    if let Some(max) = quotas.max_sandboxes {
        let used = live().count() as u64;
        if used >= max {
            return Err(QuotaExceeded {
                limit: "max_sandboxes",
                value: max,
                used,
                requested: Some(1),
                profile: None,
            });
        }
    }
    if let Some(&max) = quotas.max_sandboxes_per_profile.get(profile) {
        let used = live().filter(|s| s.profile == profile).count() as u64;
        if used >= max {
            return Err(QuotaExceeded {
                limit: "max_sandboxes_per_profile",
                value: max,
                used,
                requested: Some(1),
                profile: Some(profile.to_owned()),
            });
        }
    }
    Ok(())
}

/// Bytes already stored, as an artifact upload sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArtifactUsage {
    /// The job's artifacts, without the one the upload replaces.
    pub job_bytes: u64,
    /// Every job's artifacts, without the one the upload replaces.
    pub total_bytes: u64,
}

/// How much an artifact upload may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactAllowance {
    /// The most bytes the upload may have.
    pub bytes: u64,
    /// The quota that sets `bytes`, when a quota is tighter than the size limit: an upload
    /// over `bytes` is refused naming it. `None`: the size limit binds (`too_large`).
    pub quota: Option<QuotaExceeded>,
}

impl ArtifactAllowance {
    /// The refusal for an upload that turned out (or announced itself) `size` bytes long,
    /// with the quota it breaks; `None` when it fits or only the size limit binds.
    pub fn refusal(&self, size: Option<u64>) -> Option<QuotaExceeded> {
        if size.is_some_and(|s| s <= self.bytes) {
            return None;
        }
        self.quota.clone().map(|q| QuotaExceeded {
            requested: size,
            ..q
        })
    }
}

/// The allowance of an upload: `size_cap` is the remaining per-job size limit without quotas
/// (the profile's `artifacts.max_bytes` and `guest.artifact_max_bytes`, less the job's bytes);
/// the quotas `max_artifact_bytes_per_job` and `max_artifact_bytes_total` may lower it.
pub fn artifact_allowance(
    quotas: &QuotasConfig,
    size_cap: u64,
    usage: ArtifactUsage,
) -> ArtifactAllowance {
    let mut out = ArtifactAllowance {
        bytes: size_cap,
        quota: None,
    };
    let limits = [
        (
            "max_artifact_bytes_per_job",
            quotas.max_artifact_bytes_per_job,
            usage.job_bytes,
        ),
        (
            "max_artifact_bytes_total",
            quotas.max_artifact_bytes_total,
            usage.total_bytes,
        ),
    ];
    for (limit, value, used) in limits {
        let Some(value) = value else { continue };
        let left = value.saturating_sub(used);
        if left < out.bytes {
            out.bytes = left;
            out.quota = Some(QuotaExceeded {
                limit,
                value,
                used,
                requested: None,
                profile: None,
            });
        }
    }
    out
}

/// Remembers which watched filesystems are above the disk usage threshold, so a warning is
/// given once per crossing (and a note once when usage falls back below).
#[derive(Debug, Clone, Default)]
pub struct DiskWatch {
    above: std::collections::BTreeMap<std::path::PathBuf, bool>,
}

/// A change [`DiskWatch::observe`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskCrossing {
    /// Usage rose to or above the threshold.
    Above,
    /// Usage fell below the threshold again.
    Below,
}

impl DiskWatch {
    /// Records that `path`'s filesystem is `used_percent` full; answers a crossing of
    /// `threshold` (the first observation above it counts as one; below it does not).
    pub fn observe(
        &mut self,
        path: &std::path::Path,
        used_percent: f64,
        threshold: u8,
    ) -> Option<DiskCrossing> {
        let now_above = used_percent >= f64::from(threshold);
        let was_above = self.above.insert(path.to_path_buf(), now_above);
        match (was_above.unwrap_or(false), now_above) {
            (false, true) => Some(DiskCrossing::Above),
            (true, false) => Some(DiskCrossing::Below),
            _ => None,
        }
    }

    /// The watched paths above the threshold at their last observation.
    pub fn above(&self) -> Vec<std::path::PathBuf> {
        self.above
            .iter()
            .filter(|(_, a)| **a)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
