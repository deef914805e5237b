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

    /// How many bytes an upload of artifact `name` of `job` may write. `size_cap` is what
    /// the size limits leave (the profile's and the listener's, less the job's files); the
    /// quotas count the stored artifact records, without the record of `name` the upload
    /// would replace.
    pub async fn artifact_allowance(
        &self,
        job: &JobId,
        name: &str,
        size_cap: u64,
    ) -> Result<ArtifactAllowance, EngineError> {
        let q = &self.settings.quotas;
        let mut usage = ArtifactUsage::default();
        if q.max_artifact_bytes_per_job.is_some() || q.max_artifact_bytes_total.is_some() {
            let mut replacing = 0;
            for a in self.deps.store.list_artifacts(job).await? {
                if a.name == name {
                    replacing = a.size;
                } else {
                    usage.job_bytes += a.size;
                }
            }
            if q.max_artifact_bytes_total.is_some() {
                usage.total_bytes = self
                    .deps
                    .store
                    .artifact_bytes_total()
                    .await?
                    .saturating_sub(replacing);
            }
        }
        Ok(crate::quota::artifact_allowance(q, size_cap, usage))
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
