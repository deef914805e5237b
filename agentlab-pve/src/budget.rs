//! Per-node request budgets: at most `max_inflight_per_node` API requests to one node's
//! `/nodes/<node>/…` paths at once. pvedaemon runs 3 workers per node and a blocking call
//! holds one for its whole duration, so AgentLab must not take them all (the web UI and other
//! clients use the same workers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// The node a request path addresses (`/nodes/<node>/…`), if any.
pub fn node_of(path: &str) -> Option<&str> {
    path.strip_prefix("/nodes/")?
        .split('/')
        .next()
        .filter(|n| !n.is_empty())
}

/// One semaphore per node, created on first use.
#[derive(Debug)]
pub struct NodeBudgets {
    per_node: usize,
    nodes: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl NodeBudgets {
    /// Budgets of `per_node` requests each.
    pub fn new(per_node: usize) -> Self {
        Self {
            per_node,
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a request slot on `node`.
    pub async fn acquire(&self, node: &str) -> Result<OwnedSemaphorePermit, AcquireError> {
        let sem = {
            let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                nodes
                    .entry(node.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_node))),
            )
        };
        sem.acquire_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_of_a_path() {
        assert_eq!(node_of("/nodes/pve1/qemu/100/clone"), Some("pve1"));
        assert_eq!(node_of("/nodes/pve2"), Some("pve2"));
        assert_eq!(node_of("/cluster/resources"), None);
        assert_eq!(node_of("/nodes/"), None);
    }

    #[tokio::test]
    async fn a_node_gets_at_most_its_budget_and_others_are_independent() {
        let b = NodeBudgets::new(2);
        let p1 = b.acquire("a").await.expect("slot");
        let _p2 = b.acquire("a").await.expect("slot");
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.acquire("a")).await;
        assert!(blocked.is_err(), "a third request to node a must wait");
        let _other = b.acquire("b").await.expect("node b has its own budget");
        drop(p1);
        let _p3 = b.acquire("a").await.expect("a slot came free");
    }
}
