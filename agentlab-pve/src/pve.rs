//! [`ProxmoxHypervisor`]: state and shared helpers (node lookup, cluster listing, lock-timeout
//! retries with jittered backoff, per-template clone permits).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agentlab_core::hypervisor::HypervisorError;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::client::{Api, Counter, CounterSnapshot, Params, lenient_u64};
use crate::error::PveError;
use crate::options::PveOptions;

/// One VM entry of `/cluster/resources?type=vm`.
#[derive(Debug, Clone)]
pub struct ClusterVm {
    /// VM id.
    pub vmid: u32,
    /// Node.
    pub node: String,
    /// `running`, `stopped` or `unknown`.
    pub status: String,
    /// Template flag.
    pub template: bool,
    /// Tags (`;`-separated in PVE).
    pub tags: Vec<String>,
    /// Name (empty while PVE has no RRD data for it).
    pub name: String,
    /// Config lock (`clone`, `backup`, …).
    pub lock: Option<String>,
}

/// The qemu entries of a `/cluster/resources?type=vm` answer.
pub(crate) fn parse_cluster_vms(list: &Value) -> Vec<ClusterVm> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("qemu"))
        .filter_map(|v| {
            Some(ClusterVm {
                vmid: u32::try_from(lenient_u64(v.get("vmid")?)?).ok()?,
                node: v.get("node")?.as_str()?.to_owned(),
                status: v
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned(),
                template: v.get("template").and_then(lenient_u64) == Some(1),
                tags: v
                    .get("tags")
                    .and_then(Value::as_str)
                    .map(|t| {
                        t.split([';', ',', ' '])
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                name: v
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                lock: v.get("lock").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect()
}

/// The Proxmox VE backend.
#[derive(Debug)]
pub struct ProxmoxHypervisor {
    pub(crate) api: Api,
    pub(crate) opts: PveOptions,
    clone_permits: Mutex<HashMap<u32, Arc<Semaphore>>>,
    node_permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub(crate) reserved: Mutex<std::collections::BTreeMap<String, u64>>,
    nodes: Mutex<HashMap<u32, String>>,
    pub(crate) journal: crate::journal::TaskJournal,
}

impl ProxmoxHypervisor {
    /// Builds the backend (no network traffic yet).
    pub fn new(opts: PveOptions) -> Result<Self, PveError> {
        if opts.max_concurrent_clones == 0 || opts.max_clones_per_node == 0 {
            return Err(PveError::Setup(
                "max_concurrent_clones and max_clones_per_node must be at least 1".into(),
            ));
        }
        let api = Api::new(&opts)?;
        Ok(Self {
            api,
            journal: crate::journal::TaskJournal::new(opts.task_journal_dir.clone()),
            opts,
            clone_permits: Mutex::default(),
            node_permits: Mutex::default(),
            reserved: Mutex::default(),
            nodes: Mutex::default(),
        })
    }

    /// The options in use.
    pub fn options(&self) -> &PveOptions {
        &self.opts
    }

    /// Retry/wait counters (lock retries, clone permit waits, …).
    pub fn counters(&self) -> CounterSnapshot {
        self.api.counters.snapshot()
    }

    pub(crate) fn clone_permits(&self, template: u32) -> Arc<Semaphore> {
        let mut map = self
            .clone_permits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(template)
                .or_insert_with(|| Arc::new(Semaphore::new(self.opts.max_concurrent_clones))),
        )
    }

    /// The clone-task permits of one node (`max_clones_per_node`).
    pub(crate) fn node_permits(&self, node: &str) -> Arc<Semaphore> {
        let mut map = self
            .node_permits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(node.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.opts.max_clones_per_node))),
        )
    }

    pub(crate) fn remember_node(&self, vmid: u32, node: &str) {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(vmid, node.to_owned());
    }

    pub(crate) fn forget_node(&self, vmid: u32) {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&vmid);
    }

    /// All VMs the token can see.
    pub async fn cluster_vms(&self) -> Result<Vec<ClusterVm>, PveError> {
        let list = self
            .api
            .get("/cluster/resources", &vec![("type", "vm".to_owned())])
            .await?;
        Ok(parse_cluster_vms(&list))
    }

    /// The node `vmid` lives on (cached; `NotFound` when absent).
    pub(crate) async fn vm_node(&self, vmid: u32) -> Result<String, HypervisorError> {
        if let Some(n) = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&vmid)
        {
            return Ok(n.clone());
        }
        let vms = self.cluster_vms().await?;
        let vm = vms
            .into_iter()
            .find(|v| v.vmid == vmid)
            .ok_or_else(|| HypervisorError::NotFound(format!("VM {vmid}")))?;
        self.remember_node(vmid, &vm.node);
        Ok(vm.node)
    }

    /// After a "does not exist" on `old`: the VM's current node if it moved, `None` if gone.
    pub(crate) async fn relocated(
        &self,
        vmid: u32,
        old: &str,
    ) -> Result<Option<String>, HypervisorError> {
        self.forget_node(vmid);
        match self.vm_node(vmid).await {
            Ok(node) if node != old => Ok(Some(node)),
            Ok(_) | Err(HypervisorError::NotFound(_)) => {
                self.forget_node(vmid);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The node for new VMs and volumes: pinned, or the online node with most free memory.
    pub(crate) async fn pick_node(&self, pinned: Option<&str>) -> Result<String, PveError> {
        if let Some(n) = pinned.or((self.opts.node != "auto").then_some(self.opts.node.as_str())) {
            return Ok(n.to_owned());
        }
        let list = self
            .api
            .get("/cluster/resources", &vec![("type", "node".to_owned())])
            .await?;
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|n| n.get("status").and_then(Value::as_str) == Some("online"))
            .filter_map(|n| {
                let free = lenient_u64(n.get("maxmem")?)?
                    .saturating_sub(n.get("mem").and_then(lenient_u64).unwrap_or(0));
                Some((free, n.get("node")?.as_str()?.to_owned()))
            })
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)))
            .map(|(_, n)| n)
            .ok_or_else(|| PveError::Setup("no online node in /cluster/resources".into()))
    }

    /// Runs `op`, retrying lock timeouts with jittered exponential backoff.
    pub(crate) async fn with_lock_retry<T, F, Fut>(&self, mut op: F) -> Result<T, PveError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PveError>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Err(e) if e.is_lock_timeout() && attempt < self.opts.poll.lock_retries => {
                    attempt += 1;
                    self.api.counters.bump(Counter::LockRetry);
                    let base = self
                        .opts
                        .poll
                        .lock_backoff_ms
                        .saturating_mul(1 << attempt.min(6));
                    let jitter = rand::random::<u64>() % base.max(1);
                    tracing::debug!(attempt, error = %e, "PVE lock timeout, retrying");
                    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
                }
                other => return other,
            }
        }
    }

    /// `GET …/config` of a VM.
    pub(crate) async fn vm_config(&self, node: &str, vmid: u32) -> Result<Value, PveError> {
        self.api
            .get(&format!("/nodes/{node}/qemu/{vmid}/config"), &Params::new())
            .await
    }

    /// Whether a config carries AgentLab's tag or description marker.
    pub(crate) fn is_ours(&self, config: &Value) -> bool {
        let tagged = config.get("tags").and_then(Value::as_str).is_some_and(|t| {
            t.split([';', ',', ' '])
                .any(|x| x.eq_ignore_ascii_case(&self.opts.tag))
        });
        let marked = config
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| d.starts_with(crate::create::MARKER));
        tagged || marked
    }
}
