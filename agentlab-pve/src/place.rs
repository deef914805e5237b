//! Choosing the node for a new clone ([`crate::placement`]) and holding that node's clone-task
//! permit and memory reservation while the clone runs.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use agentlab_core::hypervisor::{HypervisorError, VmSpec};
use tokio::sync::OwnedSemaphorePermit;

use crate::client::Counter;
use crate::error::PveError;
use crate::placement::{ClonePlan, candidates, cluster_view, serve};
use crate::pve::{ClusterVm, ProxmoxHypervisor};

/// Memory counted as used on a node while a clone placed there is being made.
pub(crate) struct Reservation<'a> {
    hv: &'a ProxmoxHypervisor,
    node: String,
    bytes: u64,
}

impl<'a> Reservation<'a> {
    pub(crate) fn new(hv: &'a ProxmoxHypervisor, node: &str, memory_mb: u32) -> Self {
        let bytes = u64::from(memory_mb) << 20;
        *hv.reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(node.to_owned())
            .or_default() += bytes;
        Self {
            hv,
            node: node.to_owned(),
            bytes,
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut map = self
            .hv
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = map.get_mut(&self.node) {
            *v = v.saturating_sub(self.bytes);
        }
    }
}

impl ProxmoxHypervisor {
    /// The clone plan for `spec` and the permit of the node running the clone task.
    pub(crate) async fn place(
        &self,
        spec: &VmSpec,
        vms: &[ClusterVm],
    ) -> Result<(ClonePlan, OwnedSemaphorePermit), HypervisorError> {
        let template = vms
            .iter()
            .find(|v| v.vmid == spec.template_vmid)
            .ok_or_else(|| {
                HypervisorError::NotFound(format!("template VM {}", spec.template_vmid))
            })?;
        let view = cluster_view(&self.api, vms, spec.template_vmid).await?;
        let storage = self.opts.storage.as_str();
        let pinned = spec
            .node
            .as_deref()
            .or((self.opts.node != "auto").then_some(self.opts.node.as_str()));
        let plans = match pinned {
            Some(node) => vec![serve(&view, node, storage, spec.full_clone).map_err(|why| {
                PveError::Setup(format!("cannot place sandbox on pinned node {node}: {why}"))
            })?],
            None => {
                let reserved: BTreeMap<String, u64> = self
                    .reserved
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                match candidates(&view, storage, spec.full_clone, &reserved) {
                    Ok(plans) => plans,
                    Err(why) => {
                        tracing::warn!(template = template.vmid, reason = %why, "no node can serve the template; using its own node");
                        vec![ClonePlan {
                            source_node: template.node.clone(),
                            source_vmid: template.vmid,
                            node: template.node.clone(),
                        }]
                    }
                }
            }
        };
        for plan in &plans {
            if let Ok(permit) = self.node_permits(&plan.source_node).try_acquire_owned() {
                return Ok((plan.clone(), permit));
            }
        }
        self.api.counters.bump(Counter::ClonePermitWait);
        let best = plans
            .into_iter()
            .next()
            .ok_or_else(|| HypervisorError::backend("no placement"))?;
        let permit = Arc::clone(&self.node_permits(&best.source_node))
            .acquire_owned()
            .await
            .map_err(|_| HypervisorError::backend("node clone permits closed"))?;
        Ok((best, permit))
    }
}
