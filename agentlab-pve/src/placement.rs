//! Storage-aware placement of new clones.
//!
//! PVE clones to another node (`target`) only when every disk of the template is on shared
//! storage (`can't clone VM to node … (VM uses local storage)`), and a full clone additionally
//! needs a shared target storage. A node can therefore serve a new sandbox when it is online
//! and either holds the template, holds a *template copy* (a template VM with the same name on
//! that node, cloned locally), or can receive a cross-node clone on shared storage that is
//! available there. Among usable nodes `node: auto` prefers the most free memory (memory of
//! clones this process is placing counts as used, since PVE reports memory only every 10 s)
//! and skips nodes that already run `max_clones_per_node` clone tasks; when every usable node
//! is at its limit it waits for the emptiest one. [`node_report`] gives `doctor` the same
//! verdict per node.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::client::{Api, Params, lenient_u64};
use crate::error::PveError;
use crate::pve::ClusterVm;

/// One node of `/cluster/resources?type=node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// `online` (anything else: unusable).
    pub online: bool,
    /// Total memory (bytes).
    pub maxmem: u64,
    /// Used memory (bytes).
    pub mem: u64,
}

impl NodeInfo {
    /// Free memory (bytes).
    pub fn free(&self) -> u64 {
        self.maxmem.saturating_sub(self.mem)
    }
}

/// One storage as seen from one node (`/cluster/resources?type=storage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageInfo {
    /// Storage id.
    pub id: String,
    /// Node it is seen from.
    pub node: String,
    /// Shared between nodes.
    pub shared: bool,
    /// Status `available`.
    pub available: bool,
}

/// Where a clone comes from and goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClonePlan {
    /// Node that runs the clone task (the source template's node).
    pub source_node: String,
    /// Template (or template copy) cloned.
    pub source_vmid: u32,
    /// Node the new VM ends up on (`target` when different from `source_node`).
    pub node: String,
}

/// What the placement knows about the cluster for one template.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Nodes.
    pub nodes: Vec<NodeInfo>,
    /// Storages per node.
    pub storages: Vec<StorageInfo>,
    /// The template.
    pub template: ClusterVm,
    /// Template copies: node → vmid.
    pub copies: BTreeMap<String, u32>,
    /// Storages the template's disks live on.
    pub template_storages: BTreeSet<String>,
}

/// Whether (and how) `node` can serve a clone; `Err` says why not.
pub fn serve(
    view: &ClusterView,
    node: &str,
    storage: &str,
    full: bool,
) -> Result<ClonePlan, String> {
    let info = view
        .nodes
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| format!("node {node} is not in the cluster"))?;
    if !info.online {
        return Err(format!("node {node} is offline"));
    }
    let local = |vmid: u32| ClonePlan {
        source_node: node.to_owned(),
        source_vmid: vmid,
        node: node.to_owned(),
    };
    if view.template.node == node {
        return Ok(local(view.template.vmid));
    }
    if let Some(copy) = view.copies.get(node) {
        return Ok(local(*copy));
    }
    let seen = |id: &str| {
        view.storages
            .iter()
            .find(|s| s.id == id && s.node == node)
            .filter(|s| s.available)
    };
    let tmpl = view.template.vmid;
    if let Some(local_store) = view
        .template_storages
        .iter()
        .find(|id| !seen(id).is_some_and(|s| s.shared))
    {
        return Err(format!(
            "template {tmpl} uses storage {local_store}, not shared with {node}, and {node} has no template copy"
        ));
    }
    if full && !seen(storage).is_some_and(|s| s.shared) {
        return Err(format!(
            "storage {storage} is not shared storage available on {node} (full clone)"
        ));
    }
    Ok(ClonePlan {
        source_node: view.template.node.clone(),
        source_vmid: tmpl,
        node: node.to_owned(),
    })
}

/// Per node: the plan, or why placement cannot use it.
pub fn node_report(
    view: &ClusterView,
    storage: &str,
    full: bool,
) -> Vec<(NodeInfo, Result<ClonePlan, String>)> {
    view.nodes
        .iter()
        .map(|n| (n.clone(), serve(view, &n.name, storage, full)))
        .collect()
}

/// Usable nodes for `node: auto`, most free memory first (`reserved` bytes per node are
/// subtracted); never empty unless no node can serve (then the template's node is the
/// fallback and the caller gets its error from PVE).
pub fn candidates(
    view: &ClusterView,
    storage: &str,
    full: bool,
    reserved: &BTreeMap<String, u64>,
) -> Result<Vec<ClonePlan>, String> {
    let mut usable: Vec<(u64, ClonePlan)> = view
        .nodes
        .iter()
        .filter_map(|n| {
            let plan = serve(view, &n.name, storage, full).ok()?;
            let free = n
                .free()
                .saturating_sub(reserved.get(&n.name).copied().unwrap_or(0));
            Some((free, plan))
        })
        .collect();
    if usable.is_empty() {
        return Err(node_report(view, storage, full)
            .into_iter()
            .filter_map(|(_, r)| r.err())
            .collect::<Vec<_>>()
            .join("; "));
    }
    usable.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.node.cmp(&b.1.node)));
    Ok(usable.into_iter().map(|(_, p)| p).collect())
}

/// The template's copies on other nodes, one per node (the lowest vmid): templates with the
/// template's name, or — for templates installed by `agentlab template install` — VMs tagged
/// `agentlab-template` whose config names them like the template's marker. Tags are live in
/// `/cluster/resources` while names and the template flag lag behind for a fresh install (PVE
/// fills them from its 10 s statistics), so a tagged VM whose listed name is empty is
/// identified by its config.
async fn template_copies(
    api: &Api,
    vms: &[ClusterVm],
    template: &ClusterVm,
    config: &Value,
) -> Result<BTreeMap<String, u32>, PveError> {
    let marked = config
        .get("description")
        .and_then(Value::as_str)
        .and_then(crate::template::parse_marker)
        .map(|m| m.name);
    let name = marked
        .clone()
        .or_else(|| {
            config
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| template.name.clone());
    if name.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut others: Vec<&ClusterVm> = vms
        .iter()
        .filter(|v| v.vmid != template.vmid && v.node != template.node)
        .collect();
    others.sort_by_key(|v| v.vmid);
    let mut copies = BTreeMap::new();
    for v in others {
        if copies.contains_key(&v.node) {
            continue;
        }
        let tagged = v.tags.iter().any(|t| t == crate::template::TEMPLATE_TAG);
        let same = if tagged && marked.is_some() {
            let cfg = api
                .get(
                    &format!("/nodes/{}/qemu/{}/config", v.node, v.vmid),
                    &Params::new(),
                )
                .await?;
            let copy_marker = cfg
                .get("description")
                .and_then(Value::as_str)
                .and_then(crate::template::parse_marker);
            cfg.get("template").and_then(lenient_u64) == Some(1)
                && copy_marker.is_some_and(|m| m.name == name)
        } else {
            v.template && v.name == name
        };
        if same {
            copies.insert(v.node.clone(), v.vmid);
        }
    }
    Ok(copies)
}

/// The nodes of a `/cluster/resources?type=node` answer.
pub fn parse_nodes(list: &Value) -> Vec<NodeInfo> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            Some(NodeInfo {
                name: n.get("node")?.as_str()?.to_owned(),
                online: n.get("status").and_then(Value::as_str) == Some("online"),
                maxmem: n.get("maxmem").and_then(lenient_u64).unwrap_or(0),
                mem: n.get("mem").and_then(lenient_u64).unwrap_or(0),
            })
        })
        .collect()
}

fn storage_ids_of(config: &Value) -> BTreeSet<String> {
    config
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
            base.len() < k.len()
                && matches!(
                    base,
                    "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate"
                )
        })
        .filter_map(|(_, v)| {
            let file = v.as_str()?.split(',').next()?;
            let (store, _) = file.split_once(':')?;
            (store != "none" && !file.starts_with('/')).then(|| store.to_owned())
        })
        .collect()
}

/// Reads nodes, storages and the template's disks: two `/cluster/resources` calls and the
/// template's config.
pub async fn cluster_view(
    api: &Api,
    vms: &[ClusterVm],
    template_vmid: u32,
) -> Result<ClusterView, PveError> {
    let template = vms
        .iter()
        .find(|v| v.vmid == template_vmid)
        .cloned()
        .ok_or_else(|| PveError::Setup(format!("template VM {template_vmid} not found")))?;
    let nodes = api
        .get("/cluster/resources", &vec![("type", "node".to_owned())])
        .await?;
    let nodes = parse_nodes(&nodes);
    let storages = api
        .get("/cluster/resources", &vec![("type", "storage".to_owned())])
        .await?;
    let storages = storages
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(StorageInfo {
                id: s.get("storage")?.as_str()?.to_owned(),
                node: s.get("node")?.as_str()?.to_owned(),
                shared: s.get("shared").and_then(lenient_u64) == Some(1),
                available: s.get("status").and_then(Value::as_str) == Some("available"),
            })
        })
        .collect();
    let config = api
        .get(
            &format!("/nodes/{}/qemu/{template_vmid}/config", template.node),
            &Params::new(),
        )
        .await?;
    let copies = template_copies(api, vms, &template, &config).await?;
    Ok(ClusterView {
        nodes,
        storages,
        template,
        copies,
        template_storages: storage_ids_of(&config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(shared: bool, copy: bool) -> ClusterView {
        let node = |name: &str, mem: u64| NodeInfo {
            name: name.into(),
            online: true,
            maxmem: 64,
            mem,
        };
        let store = |id: &str, node: &str, shared: bool| StorageInfo {
            id: id.into(),
            node: node.into(),
            shared,
            available: true,
        };
        let disk = if shared { "shared-nfs" } else { "local-lvm" };
        ClusterView {
            nodes: vec![node("pve1", 40), node("pve2", 8)],
            storages: ["pve1", "pve2"]
                .iter()
                .flat_map(|n| [store("local-lvm", n, false), store("shared-nfs", n, true)])
                .collect(),
            template: ClusterVm {
                vmid: 9000,
                node: "pve1".into(),
                status: "stopped".into(),
                template: true,
                tags: vec![],
                name: "tmpl".into(),
                lock: None,
            },
            copies: if copy {
                BTreeMap::from([("pve2".to_owned(), 9100)])
            } else {
                BTreeMap::new()
            },
            template_storages: BTreeSet::from([disk.to_owned()]),
        }
    }

    #[test]
    fn local_storage_keeps_clones_on_the_template_node() {
        let v = view(false, false);
        let plans = candidates(&v, "local-lvm", false, &BTreeMap::new()).unwrap();
        assert_eq!(plans.len(), 1, "{plans:?}");
        assert_eq!(plans[0].node, "pve1");
        let why = serve(&v, "pve2", "local-lvm", false).unwrap_err();
        assert!(why.contains("local-lvm") && why.contains("pve2"), "{why}");
    }

    #[test]
    fn shared_storage_or_a_copy_opens_other_nodes_most_free_first() {
        let v = view(true, false);
        let plans = candidates(&v, "shared-nfs", false, &BTreeMap::new()).unwrap();
        assert_eq!(plans[0].node, "pve2", "more free memory");
        assert_eq!(plans[0].source_node, "pve1", "cloned with target");
        let reserved = BTreeMap::from([("pve2".to_owned(), 40)]);
        let plans = candidates(&v, "shared-nfs", false, &reserved).unwrap();
        assert_eq!(plans[0].node, "pve1", "reservations count as used");
        assert!(
            serve(&v, "pve2", "local-lvm", true).is_err(),
            "full clone needs shared target"
        );
        let v = view(false, true);
        let p = serve(&v, "pve2", "local-lvm", false).unwrap();
        assert_eq!((p.source_node.as_str(), p.source_vmid), ("pve2", 9100));
        let mut off = view(true, false);
        off.nodes[1].online = false;
        let plans = candidates(&off, "shared-nfs", false, &BTreeMap::new()).unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].node, "pve1");
    }

    #[test]
    fn template_storages_come_from_disk_keys() {
        let cfg = json!({"scsi0": "local-lvm:base-9000-disk-0,size=8G", "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
            "ide0": "none,media=cdrom", "net0": "virtio=x,bridge=vmbr0", "efidisk0": "shared-nfs:9000/e.raw"});
        let ids: Vec<String> = storage_ids_of(&cfg).into_iter().collect();
        assert_eq!(ids, vec!["local-lvm".to_owned(), "shared-nfs".to_owned()]);
    }
}
