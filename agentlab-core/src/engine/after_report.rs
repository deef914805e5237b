//! [`AfterReport`]: a finished job's ephemeral destroy, held until the guest has its answer.

use std::sync::Arc;

use crate::engine::lab::Lab;
use crate::ids::Vmid;

/// Begins the ephemeral destroy of a finished job's sandbox when dropped (see
/// [`Lab::report_status_deferred`]).
#[must_use = "dropping it begins the sandbox's destroy"]
pub struct AfterReport {
    pub(crate) lab: Arc<Lab>,
    pub(crate) vmid: Vmid,
}

impl std::fmt::Debug for AfterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfterReport")
            .field("vmid", &self.vmid)
            .finish()
    }
}

impl Drop for AfterReport {
    fn drop(&mut self) {
        // Outside a runtime nothing can run now; `tick` finds the finished sandbox.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (lab, vmid) = (Arc::clone(&self.lab), self.vmid);
        self.lab.tasks.spawn(async move {
            let _ = lab
                .destroy_with(
                    vmid,
                    lab.settings.shutdown_grace,
                    "job finished (ephemeral)",
                )
                .await;
        });
    }
}
