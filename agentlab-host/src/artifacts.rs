//! Artifact files on the host: `<artifact_dir>/<job>/<name>`, written through a temp file
//! (`.<name>.<random>.part`, removed on every failure or abort and at daemon start; never
//! counted against quota), size-limited while streaming, sha256 computed on receipt; plus the
//! retention GC.

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

    /// Streams `body` into the artifact file, refusing more than `limit` bytes. The temporary
    /// file is removed when the upload fails or is dropped half-way (connection lost).
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
        let seq = PART_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let part = PartFile(Some(
            dir.join(format!(".{name}.{}-{seq}{PART_SUFFIX}", std::process::id())),
        ));
        let tmp = part.path().to_owned();
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UploadError::Io(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
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
        drop(file);
        agentlab_core::fail_point!("artifact:upload");
        tokio::fs::rename(&tmp, dir.join(name))
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        part.keep();
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Bytes stored for a job, not counting temporary files or the artifact `except` (which
    /// an upload of the same name replaces).
    pub async fn used(&self, job: &JobId, except: Option<&str>) -> u64 {
        let mut total = 0;
        if let Ok(mut rd) = tokio::fs::read_dir(self.dir.join(job.as_str())).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(PART_SUFFIX) || except == Some(name.as_ref()) {
                    continue;
                }
                total += e.metadata().await.map(|m| m.len()).unwrap_or(0);
            }
        }
        total
    }

    /// Removes temporary upload files last written before `before` (uploads a previous daemon
    /// process left half-done), for every job. Returns how many.
    pub async fn clean_partials(&self, before: std::time::SystemTime) -> usize {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || clean_partials_sync(&dir, before))
            .await
            .unwrap_or(0)
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
                    .job_profile(&job)
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
        let started = std::time::SystemTime::now();
        tokio::spawn(async move {
            let n = self.clean_partials(started).await;
            if n > 0 {
                tracing::info!(
                    removed = n,
                    "removed half-done artifact uploads of an earlier run"
                );
            }
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

/// Makes concurrent uploads of one name use distinct temporary files.
static PART_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Suffix of temporary upload files.
const PART_SUFFIX: &str = ".part";

/// A temporary upload file, removed on drop unless kept (renamed into place).
struct PartFile(Option<PathBuf>);

impl PartFile {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or_else(|| Path::new(""))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove a temporary upload file");
        }
    }
}

fn clean_partials_sync(dir: &Path, before: std::time::SystemTime) -> usize {
    let mut removed = 0;
    let Ok(jobs) = std::fs::read_dir(dir) else {
        return 0;
    };
    for job in jobs.flatten() {
        let Ok(files) = std::fs::read_dir(job.path()) else {
            continue;
        };
        for f in files.flatten() {
            let stale = f.file_name().to_string_lossy().ends_with(PART_SUFFIX)
                && f.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < before);
            if stale && std::fs::remove_file(f.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
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
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles"),
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
        assert_eq!(store.used(&job, None).await, 0);
        assert!(
            !ArtifactStore::valid_name("../x")
                && !ArtifactStore::valid_name(".hidden")
                && ArtifactStore::valid_name("a-b_c.tar.gz")
        );
    }
}
