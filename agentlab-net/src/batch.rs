//! Group commit of sandbox element changes. Concurrent [`Firewall::allow`] and
//! [`Firewall::remove`] calls queue their change; whoever holds the gate next applies every
//! queued change in one `nft -f` batch and records the tables' digest once, so N sandboxes
//! coming up together cost about one nft transaction instead of N serialized ones. If nft
//! refuses a combined batch, it is split in halves until the refused change stands alone, so
//! each caller gets its own result (one bad change never fails another sandbox).
//!
//! [`Firewall::allow`]: agentlab_core::Firewall::allow
//! [`Firewall::remove`]: agentlab_core::Firewall::remove

use std::collections::BTreeMap;

use agentlab_core::{SandboxNet, Vmid};
use tokio::sync::oneshot;

use crate::error::NetError;
use crate::firewall::{NftFirewall, union};
use crate::render::{Element, render_elements, same_family};

/// One queued change.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Let a (validated, resolved) sandbox entry through.
    Allow(SandboxNet),
    /// Remove every entry of a sandbox.
    Remove(Vmid),
}

/// A change and where its result goes.
#[derive(Debug)]
pub(crate) struct Pending {
    change: Change,
    done: oneshot::Sender<Result<(), NetError>>,
}

type Record = BTreeMap<Vmid, Vec<SandboxNet>>;

/// Plans `change` against `record` (updated in place): the nft commands it needs.
fn plan(cfg: &crate::NetConfig, record: &mut Record, change: &Change) -> Result<String, NetError> {
    match change {
        Change::Allow(sbx) => {
            for (vmid, entries) in record.iter().filter(|(v, _)| **v != sbx.vmid) {
                if let Some(e) = entries
                    .iter()
                    .find(|e| e.iface == sbx.iface || e.ip == sbx.ip)
                {
                    return Err(NetError::Invalid(format!(
                        "Port {} / address {} already bound to sandbox {vmid}",
                        e.iface, e.ip
                    )));
                }
            }
            let old = record.get(&sbx.vmid).cloned().unwrap_or_default();
            let mut new: Vec<SandboxNet> = old
                .iter()
                .filter(|e| e.iface == sbx.iface && e.mac == sbx.mac && !same_family(e.ip, sbx.ip))
                .cloned()
                .collect();
            new.push(sbx.clone());
            let (old_el, new_el) = (union(&old), union(&new));
            let stale: Vec<Element> = old_el.into_iter().filter(|e| !new_el.contains(e)).collect();
            record.insert(sbx.vmid, new);
            Ok(render_elements(cfg, &new_el, &stale))
        }
        Change::Remove(vmid) => Ok(record
            .remove(vmid)
            .map(|entries| render_elements(cfg, &[], &union(&entries)))
            .unwrap_or_default()),
    }
}

impl NftFirewall {
    /// Queues `change`, flushes the queue under the gate (unless an earlier holder already
    /// applied it) and returns its own result.
    pub(crate) async fn submit(&self, change: Change) -> Result<(), NetError> {
        let (done, result) = oneshot::channel();
        self.lock_queue().push(Pending { change, done });
        {
            let _order = self.gate.lock().await;
            self.flush().await;
        }
        result
            .await
            .unwrap_or_else(|_| Err(NetError::Invalid("firewall change was dropped".into())))
    }

    /// Applies every queued change (gate held).
    async fn flush(&self) {
        let queued = std::mem::take(&mut *self.lock_queue());
        if queued.is_empty() {
            return;
        }
        // The tables are listed again only when something reached nft (removing a sandbox
        // that never had entries changes nothing).
        if self.apply_group(queued).await {
            self.remember_installed().await;
        }
    }

    /// Applies `group` as one batch; if nft refuses it, each half on its own (so a refused
    /// change costs O(log n) extra transactions and fails alone). Gate held. Returns whether
    /// any script was sent to nft.
    fn apply_group(
        &self,
        group: Vec<Pending>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            let mut record = self.lock_record().clone();
            let mut script = String::new();
            let mut planned = Vec::new();
            for p in group {
                match plan(&self.cfg, &mut record, &p.change) {
                    Ok(piece) => {
                        script.push_str(&piece);
                        planned.push(p);
                    }
                    Err(e) => {
                        let _ = p.done.send(Err(e));
                    }
                }
            }
            if planned.len() <= 1 {
                for p in planned {
                    let r = self.apply_one(&p.change).await;
                    if r.is_ok() {
                        log_done(&p.change);
                    }
                    let _ = p.done.send(r);
                }
                return !script.is_empty();
            }
            if script.is_empty() || self.runner.apply(&script).await.is_ok() {
                *self.lock_record() = record;
                tracing::debug!(
                    changes = planned.len(),
                    "sandbox network changes applied in one batch"
                );
                for p in planned {
                    log_done(&p.change);
                    let _ = p.done.send(Ok(()));
                }
                return !script.is_empty();
            }
            tracing::warn!(
                changes = planned.len(),
                "batched network change refused; splitting it"
            );
            let second = planned.split_off(planned.len() / 2);
            self.apply_group(planned).await;
            self.apply_group(second).await;
            // The refused batch itself reached nft.
            true
        })
    }

    /// Applies one change on its own (gate held); a removal succeeds when AgentLab's table is
    /// gone altogether.
    async fn apply_one(&self, change: &Change) -> Result<(), NetError> {
        let mut record = self.lock_record().clone();
        let script = plan(&self.cfg, &mut record, change)?;
        if !script.is_empty()
            && let Err(e) = self.runner.apply(&script).await
            && (matches!(change, Change::Allow(_)) || self.table_exists().await)
        {
            return Err(e);
        }
        *self.lock_record() = record;
        Ok(())
    }
}

fn log_done(change: &Change) {
    match change {
        Change::Allow(sbx) => {
            tracing::info!(sandbox = %sbx.vmid, iface = %sbx.iface, ip = %sbx.ip, "sandbox network allowed");
        }
        Change::Remove(vmid) => tracing::info!(sandbox = %vmid, "sandbox network removed"),
    }
}
