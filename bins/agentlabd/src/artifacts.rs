//! Artifact files on the host: `<artifact_dir>/<job>/<name>`, written through a temp file,
//! size-limited while streaming, sha256 computed on receipt; plus the retention GC.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use agentlab_core::JobId;
use agentlab_core::engine::Lab;

/// Why an upload failed.
#[derive(Debug)]
pub enum UploadError {
    /// The body exceeded the limit.
    TooLarge(u64),
    /// Reading the body or writing the file failed.
    Io(String),
}

impl std::error::Error for UploadError {}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "Artifact exceeds the limit of {limit} bytes"),
            Self::Io(e) => write!(f, "Artifact upload failed: {e}"),
        }
    }
}

/// The artifact directory.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
}

impl ArtifactStore {
    /// Uses `dir` (created on demand, mode 0700).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where an artifact lives.
    pub fn path(&self, job: &JobId, name: &str) -> PathBuf {
        self.dir.join(job.as_str()).join(name)
    }

    /// Whether `name` is acceptable as a file name.
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    }

    /// Streams `body` into the artifact file, refusing more than `limit` bytes.
    pub async fn receive<S, E>(
        &self,
        job: &JobId,
        name: &str,
        mut body: S,
        limit: u64,
    ) -> Result<(u64, String), UploadError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let dir = self.dir.join(job.as_str());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        restrict(&self.dir).await;
        let tmp = dir.join(format!(".{name}.part"));
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UploadError::Io(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                drop(file);
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(UploadError::TooLarge(limit));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| UploadError::Io(e.to_string()))?;
        }
        file.flush()
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        agentlab_core::fail_point!("artifact:upload");
        tokio::fs::rename(&tmp, dir.join(name))
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Bytes already stored for a job.
    pub async fn used(&self, job: &JobId) -> u64 {
        let mut total = 0;
        if let Ok(mut rd) = tokio::fs::read_dir(self.dir.join(job.as_str())).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                total += e.metadata().await.map(|m| m.len()).unwrap_or(0);
            }
        }
        total
    }

    /// Deletes artifacts older than their job's profile retention. Returns how many.
    pub async fn gc(&self, lab: &Lab) -> usize {
        let now = lab.deps().clock.now();
        let Ok(old) = lab
            .deps()
            .store
            .artifacts_before(now - chrono::Duration::days(1))
            .await
        else {
            return 0;
        };
        let mut removed = 0;
        for a in old {
            let days = match lab.job(&a.job).await {
                Ok(job) => lab
                    .profiles()
                    .get(&job.profile)
                    .map_or(7, |p| p.artifacts.retention_days),
                Err(_) => 0,
            };
            if a.created_at + chrono::Duration::days(i64::from(days)) > now {
                continue;
            }
            let _ = tokio::fs::remove_file(self.path(&a.job, &a.name)).await;
            if lab
                .deps()
                .store
                .delete_artifact(&a.job, &a.name)
                .await
                .is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Runs [`ArtifactStore::gc`] every `every` until `cancel` fires.
    pub fn spawn_gc(
        self,
        lab: Arc<Lab>,
        every: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let n = self.gc(&lab).await;
                if n > 0 {
                    tracing::info!(removed = n, "artifact retention removed files");
                }
            }
        });
    }
}

async fn restrict(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentlab_core::engine::{JobRequest, Lab, LabDeps, LabSettings};
    use agentlab_core::fake::{
        FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
    };
    use agentlab_core::profile::Profiles;
    use agentlab_core::{Artifact, Clock};

    use super::*;

    #[tokio::test]
    async fn gc_removes_artifacts_after_the_profile_retention() {
        let clock = Arc::new(ManualClock::at_epoch());
        let deps = LabDeps {
            hypervisor: Arc::new(FakeHypervisor::new()),
            firewall: Arc::new(FakeFirewall::new()),
            secrets: Arc::new(MemorySecretStore::new()),
            store: Arc::new(MemoryStore::new()),
            clock: clock.clone(),
        };
        let profiles = Profiles::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles"),
        )
        .unwrap();
        let retention = profiles
            .get("yolo-ephemeral")
            .unwrap()
            .artifacts
            .retention_days;
        let lab = Lab::new(deps, LabSettings::default(), profiles);
        let job = lab
            .run_job(JobRequest {
                repo: "file:///r".into(),
                task: "t".into(),
                profile: "yolo-ephemeral".into(),
                ..JobRequest::default()
            })
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().to_path_buf());
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            b"hello",
        ))]);
        let (size, sha) = store.receive(&job.id, "a.tar.gz", body, 100).await.unwrap();
        assert_eq!(size, 5);
        let art = Artifact {
            job: job.id.clone(),
            name: "a.tar.gz".into(),
            size,
            sha256: sha,
            created_at: clock.now(),
        };
        lab.record_artifact(&art).await.unwrap();
        clock.advance(std::time::Duration::from_secs(
            u64::from(retention - 1) * 86_400,
        ));
        assert_eq!(store.gc(&lab).await, 0);
        assert!(store.path(&job.id, "a.tar.gz").exists());
        clock.advance(std::time::Duration::from_secs(2 * 86_400));
        assert_eq!(store.gc(&lab).await, 1);
        assert!(!store.path(&job.id, "a.tar.gz").exists());
        assert!(
            lab.deps()
                .store
                .list_artifacts(&job.id)
                .await
                .unwrap()
                .is_empty()
        );
        lab.shutdown().await;
    }

    #[tokio::test]
    async fn upload_over_the_limit_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().to_path_buf());
        let job = JobId::generate();
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(vec![
                0u8;
                64
            ]))]);
        assert!(matches!(
            store.receive(&job, "big", body, 10).await,
            Err(UploadError::TooLarge(10))
        ));
        assert!(!store.path(&job, "big").exists());
        assert_eq!(store.used(&job).await, 0);
        assert!(
            !ArtifactStore::valid_name("../x")
                && !ArtifactStore::valid_name(".hidden")
                && ArtifactStore::valid_name("a-b_c.tar.gz")
        );
    }
}
