//! Quota checks of the engine: sandbox slots at creation (under the allocation lock, so two
//! creates never both take the last slot) and the allowance of an artifact upload.

use crate::engine::error::EngineError;
use crate::engine::lab::Lab;
use crate::event::{EventKind, NewEvent};
use crate::ids::JobId;
use crate::quota::{ArtifactAllowance, ArtifactUsage, QuotaExceeded};
use crate::store::SandboxFilter;

impl Lab {
    /// The quotas this lab enforces.
    pub fn quotas(&self) -> &crate::config::QuotasConfig {
        &self.settings.quotas
    }

    /// Refuses one more sandbox of `profile` when a sandbox quota is reached, recording a
    /// `quota_exceeded` event (on `job` when the sandbox is for one). Called under
    /// `alloc_lock` by creation, so the count and the insert are one step.
    pub(crate) async fn check_sandbox_quota(
        &self,
        profile: &str,
        job: Option<&JobId>,
    ) -> Result<(), EngineError> {
        let q = &self.settings.quotas;
        if q.max_sandboxes.is_none() && !q.max_sandboxes_per_profile.contains_key(profile) {
            return Ok(());
        }
        let live = self
            .deps
            .store
            .list_sandboxes(&SandboxFilter::default())
            .await?;
        match crate::quota::check_sandbox(q, &live, profile) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                self.record_quota_refusal(job, &refusal).await;
                Err(EngineError::QuotaExceeded(refusal))
            }
        }
    }

    /// How many bytes an artifact upload of `job` may write: `size_cap` is what the size
    /// limits leave (profile and listener limits less the job's stored bytes, `job_bytes`),
    /// `replacing` the size of the artifact of the same name the upload would replace. The
    /// total is read from the store.
    pub async fn artifact_allowance(
        &self,
        size_cap: u64,
        job_bytes: u64,
        replacing: u64,
    ) -> Result<ArtifactAllowance, EngineError> {
        let q = &self.settings.quotas;
        let total_bytes = if q.max_artifact_bytes_total.is_some() {
            self.deps
                .store
                .artifact_bytes_total()
                .await?
                .saturating_sub(replacing)
        } else {
            0
        };
        Ok(crate::quota::artifact_allowance(
            q,
            size_cap,
            ArtifactUsage {
                job_bytes,
                total_bytes,
            },
        ))
    }

    /// Records a `quota_exceeded` event for a refused request (on `job` when it has one) and
    /// logs it.
    pub async fn record_quota_refusal(&self, job: Option<&JobId>, refusal: &QuotaExceeded) {
        tracing::warn!(
            limit = refusal.limit,
            value = refusal.value,
            used = refusal.used,
            profile = refusal.profile.as_deref(),
            job = job.map(JobId::as_str),
            "request refused by a quota"
        );
        self.event(
            NewEvent::new(self.now(), EventKind::QuotaExceeded, refusal.to_string())
                .job(job.cloned())
                .payload(serde_json::to_value(refusal).unwrap_or_default()),
        )
        .await;
    }
}
