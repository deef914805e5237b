//! The clone-task journal: the UPID of every clone task is written to
//! `<task_journal_dir>/<newid>.upid` as soon as PVE returns it, before the backend waits for
//! the task, and removed once the task has ended. A daemon killed during the clone leaves the
//! file behind, so a restarted daemon finds the clone by its UPID: `destroy` of that id stops
//! the task if it still runs (`DELETE /nodes/{node}/tasks/{upid}`; PVE then removes the
//! half-made VM) before destroying whatever is left. Without a directory nothing is recorded
//! and `destroy` falls back to waiting for the `lock: clone` placeholder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::client::{Params, seg};
use crate::error::PveError;
use crate::pve::ProxmoxHypervisor;
use crate::task::upid_node;

/// Status polls answering "no such task" before a recorded task counts as gone.
const UNSEEN_POLLS: u32 = 10;

/// Where clone UPIDs are kept (`None`: not kept).
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskJournal {
    dir: Option<PathBuf>,
}

fn file(dir: &Path, vmid: u32) -> PathBuf {
    dir.join(format!("{vmid}.upid"))
}

impl TaskJournal {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// Records `upid` as the clone task making `vmid` (written to a temp file, then renamed).
    pub(crate) async fn record(&self, vmid: u32, upid: &str) {
        let Some(dir) = self.dir.clone() else { return };
        let upid = upid.to_owned();
        let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{vmid}.upid.tmp"));
            std::fs::write(&tmp, format!("{upid}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, file(&dir, vmid))
        })
        .await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::warn!(sandbox = vmid, result = ?r, "cannot record the clone task's UPID");
        }
    }

    /// The recorded UPID for `vmid`, if any.
    pub(crate) async fn get(&self, vmid: u32) -> Option<String> {
        let dir = self.dir.clone()?;
        tokio::task::spawn_blocking(move || std::fs::read_to_string(file(&dir, vmid)).ok())
            .await
            .ok()
            .flatten()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// Forgets `vmid`'s clone task.
    pub(crate) async fn remove(&self, vmid: u32) {
        let Some(dir) = self.dir.clone() else { return };
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(file(&dir, vmid))).await;
    }
}

impl ProxmoxHypervisor {
    /// A clone task recorded for `vmid` that may still run (its daemon died while waiting):
    /// stopped and waited for, so the half-made VM is gone or complete before `destroy`
    /// looks at it. Errors (PVE unreachable) keep the record for the next attempt.
    pub(crate) async fn settle_clone_task(&self, vmid: u32) -> Result<(), PveError> {
        let Some(upid) = self.journal.get(vmid).await else {
            return Ok(());
        };
        let node = upid_node(&upid).ok_or_else(|| PveError::Decode {
            call: "clone task journal".into(),
            detail: format!("not a UPID: {upid}"),
        })?;
        let path = format!("/nodes/{node}/tasks/{}", seg(&upid));
        let mut unseen = 0;
        let running = loop {
            match self
                .api
                .get(&format!("{path}/status"), &Params::new())
                .await
            {
                Ok(st) => break st.get("status").and_then(Value::as_str) == Some("running"),
                // "no such task" is transient right after a task starts; a task that stays
                // unknown is gone (e.g. the node was reinstalled): nothing runs.
                Err(PveError::Api {
                    status: 400,
                    message,
                    ..
                }) if message.contains("no such task") => {
                    unseen += 1;
                    if unseen >= UNSEEN_POLLS {
                        break false;
                    }
                    tokio::time::sleep(Duration::from_millis(
                        self.opts.poll.task_interval_ms.max(1),
                    ))
                    .await;
                }
                Err(e) => return Err(e),
            }
        };
        if running {
            tracing::warn!(sandbox = vmid, upid = %upid, "stopping a clone task whose daemon did not wait for it");
            self.api.delete(&path, &Params::new()).await?;
            let call = format!("DELETE {path}");
            match self
                .api
                .wait_task(&call, &Value::String(upid.clone()), &self.opts.poll)
                .await
            {
                Ok(()) | Err(PveError::Task { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.journal.remove(vmid).await;
        self.forget_node(vmid);
        Ok(())
    }
}
