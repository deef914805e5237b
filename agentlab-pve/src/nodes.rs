//! Node health for the engine ([`NodeHealth`]): every node of `/cluster/resources?type=node`
//! with its status, memory (minus what clones this process is placing there reserve, as
//! placement counts it) and the clone tasks this process runs there against
//! `max_clones_per_node`.

use std::sync::PoisonError;

use agentlab_core::hypervisor::{HypervisorError, NodeHealth, NodeStatus};
use async_trait::async_trait;

use crate::placement::parse_nodes;
use crate::pve::ProxmoxHypervisor;

#[async_trait]
impl NodeHealth for ProxmoxHypervisor {
    async fn node_status(&self) -> Result<Vec<NodeStatus>, HypervisorError> {
        let list = self
            .api
            .get("/cluster/resources", &vec![("type", "node".to_owned())])
            .await?;
        let reserved = self
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let limit = self.opts.max_clones_per_node;
        let mut out: Vec<NodeStatus> = parse_nodes(&list)
            .into_iter()
            .map(|n| {
                let held = reserved.get(&n.name).copied().unwrap_or(0);
                let free_permits = self.node_permits(&n.name).available_permits();
                NodeStatus {
                    online: n.online,
                    mem_total: n.maxmem,
                    mem_free: if n.online {
                        n.free().saturating_sub(held)
                    } else {
                        0
                    },
                    clone_tasks: u32::try_from(limit.saturating_sub(free_permits))
                        .unwrap_or(u32::MAX),
                    clone_limit: u32::try_from(limit).unwrap_or(u32::MAX),
                    name: n.name,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
