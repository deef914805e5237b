//! `agentlab template install`: an AgentLab image (`disk.qcow2` + `manifest.json`) becomes a
//! Proxmox template through the API only: upload to a storage with content `import`, create
//! the VM with `scsi0: <storage>:0,import-from=<volid>`, a cloud-init drive, `agent: 1`, a
//! serial console, virtio net on the agent bridge, AgentLab's tags and a description marker
//! holding the manifest sha256; then convert it to a template.
//!
//! Idempotent: a template with the same manifest is left alone; one with another manifest is
//! replaced only with `replace`; a VM of that name or id without AgentLab's marker is never
//! touched. With local storage each node gets its own template (distinct vmids); with shared
//! storage one template serves every node.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::client::{Api, Params, b, lenient_u64, seg};
use crate::error::PveError;
use crate::options::PveOptions;
use crate::upload::UploadProgress;

/// First line of a template's description: AgentLab's marker.
pub const TEMPLATE_MARKER: &str = "AgentLab template";
/// Tag every AgentLab template carries (besides the configured tag).
pub const TEMPLATE_TAG: &str = "agentlab-template";

/// What to install.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    /// VM name of the template (`agentlab-default`).
    pub name: String,
    /// Preferred vmid (the first node's; `/cluster/nextid` when `None` or taken on other nodes).
    pub vmid: Option<u32>,
    /// The image's `disk.qcow2`.
    pub disk: PathBuf,
    /// `sha256:<hex>` of the image's `manifest.json`.
    pub manifest_sha256: String,
    /// `sha256:<hex>` of `disk.qcow2` (PVE verifies the upload).
    pub disk_sha256: String,
    /// Guest protocol version of the image's runner.
    pub guest_protocol: u32,
    /// Storage with content `import` for the upload.
    pub import_storage: String,
    /// Memory (MiB) and cores of the template (clones override them).
    pub memory_mb: u32,
    /// Cores.
    pub cores: u32,
    /// Replace a template built from another manifest.
    pub replace: bool,
}

/// The marker AgentLab writes into a template's description.
pub fn marker(spec: &TemplateSpec) -> String {
    format!(
        "{TEMPLATE_MARKER} {}\nmanifest: {}\nguest-protocol: {}\nBuilt by `agentlab image build`, installed by `agentlab template install`; do not edit.",
        spec.name, spec.manifest_sha256, spec.guest_protocol
    )
}

/// What a template's description says, if it carries AgentLab's marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    /// Template name.
    pub name: String,
    /// `sha256:<hex>` of the manifest.
    pub manifest: String,
    /// Guest protocol version.
    pub guest_protocol: u32,
}

/// Parses a description written by [`marker`].
pub fn parse_marker(description: &str) -> Option<Marker> {
    let mut lines = description.lines();
    let name = lines
        .next()?
        .strip_prefix(TEMPLATE_MARKER)?
        .trim()
        .to_owned();
    let mut manifest = None;
    let mut proto = None;
    for l in lines {
        if let Some(m) = l.strip_prefix("manifest: ") {
            manifest = Some(m.trim().to_owned());
        } else if let Some(p) = l.strip_prefix("guest-protocol: ") {
            proto = p.trim().parse().ok();
        }
    }
    Some(Marker {
        name,
        manifest: manifest?,
        guest_protocol: proto?,
    })
}

/// What happened on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The same manifest was already installed.
    Unchanged,
    /// A new template was created.
    Installed,
    /// A template from another manifest was destroyed and recreated.
    Replaced,
}

/// The template on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// Node.
    pub node: String,
    /// Template vmid.
    pub vmid: u32,
    /// What was done.
    pub action: Action,
    /// Nodes this template serves (all nodes with shared storage, else its own).
    pub serves: Vec<String>,
}

/// Progress of an install.
#[derive(Debug, Clone)]
pub enum InstallStep {
    /// A step on a node.
    Step {
        /// Node.
        node: String,
        /// What.
        what: String,
    },
    /// Upload progress.
    Upload {
        /// Node.
        node: String,
        /// Bytes sent.
        sent: u64,
        /// Total bytes.
        total: u64,
    },
}

/// Callback for [`InstallStep`]s.
pub type InstallProgress = std::sync::Arc<dyn Fn(&InstallStep) + Send + Sync>;

struct Ctx<'a> {
    api: &'a Api,
    opts: &'a PveOptions,
    spec: &'a TemplateSpec,
    progress: &'a InstallProgress,
}

/// Installs the template on `nodes` (every online node when empty). With shared storages
/// (import and disk storage both shared) one template on the first node serves them all.
pub async fn install(
    opts: &PveOptions,
    spec: &TemplateSpec,
    nodes: &[String],
    progress: InstallProgress,
) -> Result<Vec<Installed>, PveError> {
    let api = Api::new(opts)?;
    let ctx = Ctx {
        api: &api,
        opts,
        spec,
        progress: &progress,
    };
    let mut nodes = nodes.to_vec();
    if nodes.is_empty() {
        let list = api.get("/nodes", &Params::new()).await?;
        nodes = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n.get("status").and_then(Value::as_str) != Some("offline"))
            .filter_map(|n| n.get("node").and_then(Value::as_str).map(str::to_owned))
            .collect();
        nodes.sort();
    }
    let Some(first) = nodes.first().cloned() else {
        return Err(PveError::Refused(
            "no online node to install the template on".into(),
        ));
    };
    let shared = ctx.is_shared(&first, &opts.storage).await?
        && ctx.is_shared(&first, &spec.import_storage).await?;
    let targets = if shared { vec![first] } else { nodes.clone() };
    let mut out = Vec::new();
    for node in targets {
        let mut done = ctx.install_on(&node).await?;
        done.serves = if shared {
            nodes.clone()
        } else {
            vec![node.clone()]
        };
        out.push(done);
    }
    Ok(out)
}

impl Ctx<'_> {
    fn step(&self, node: &str, what: impl Into<String>) {
        (self.progress)(&InstallStep::Step {
            node: node.to_owned(),
            what: what.into(),
        });
    }

    async fn is_shared(&self, node: &str, storage: &str) -> Result<bool, PveError> {
        let list = self
            .api
            .get(&format!("/nodes/{}/storage", seg(node)), &Params::new())
            .await?;
        let entry = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s.get("storage").and_then(Value::as_str) == Some(storage))
            .ok_or_else(|| {
                PveError::Refused(format!("storage '{storage}' not found on node {node}"))
            })?;
        Ok(entry.get("shared").and_then(lenient_u64) == Some(1))
    }

    /// Existing VMs named `spec.name` on `node` (and the preferred vmid anywhere), with their
    /// config.
    async fn existing(&self, node: &str) -> Result<Vec<(u32, String, Value)>, PveError> {
        let list = self
            .api
            .get("/cluster/resources", &vec![("type", "vm".to_owned())])
            .await?;
        let mut found = Vec::new();
        for vm in list.as_array().into_iter().flatten() {
            let vmid = vm.get("vmid").and_then(lenient_u64).unwrap_or(0) as u32;
            let vm_node = vm
                .get("node")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let listed_name = vm.get("name").and_then(Value::as_str);
            let template = vm.get("template").and_then(lenient_u64) == Some(1);
            let candidate = template
                || listed_name.is_none_or(|n| n == self.spec.name)
                || Some(vmid) == self.spec.vmid;
            if !candidate {
                continue;
            }
            // Names in /cluster/resources lag behind (RRD); the config is authoritative.
            let config = self
                .api
                .get(
                    &format!("/nodes/{}/qemu/{vmid}/config", seg(&vm_node)),
                    &Params::new(),
                )
                .await?;
            let name = config
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let same_name = name == self.spec.name && vm_node == node;
            if same_name || Some(vmid) == self.spec.vmid {
                found.push((vmid, vm_node, config));
            }
        }
        Ok(found)
    }

    async fn install_on(&self, node: &str) -> Result<Installed, PveError> {
        self.step(node, format!("looking for template {}", self.spec.name));
        let mut replace_vmid = None;
        for (vmid, vm_node, config) in self.existing(node).await? {
            let desc = config
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(m) = parse_marker(desc) else {
                return Err(PveError::Refused(format!(
                    "VM {vmid} on {vm_node} (name {:?}) is not an AgentLab template (no marker in its description); refusing to touch it: pick another --name or --vmid",
                    config
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                )));
            };
            if vm_node != node {
                continue; // the preferred vmid is another node's copy
            }
            if m.manifest == self.spec.manifest_sha256 {
                self.step(
                    node,
                    format!("VM {vmid} already holds manifest {}", m.manifest),
                );
                return Ok(Installed {
                    node: node.to_owned(),
                    vmid,
                    action: Action::Unchanged,
                    serves: Vec::new(),
                });
            }
            if !self.spec.replace {
                return Err(PveError::Refused(format!(
                    "template {} (VM {vmid} on {node}) holds manifest {}, not {}; pass --replace to replace it",
                    self.spec.name, m.manifest, self.spec.manifest_sha256
                )));
            }
            replace_vmid = Some(vmid);
        }
        if let Some(vmid) = replace_vmid {
            self.step(node, format!("destroying VM {vmid} (old manifest)"));
            let path = format!("/nodes/{}/qemu/{vmid}", seg(node));
            let upid = self.api.delete(&path, &vec![("purge", b(true))]).await?;
            self.api
                .wait_task(&format!("DELETE {path}"), &upid, &self.opts.poll)
                .await?;
        }
        let volid = self.upload(node).await?;
        let vmid = match replace_vmid {
            Some(v) => v,
            None => self.pick_vmid().await?,
        };
        self.step(node, format!("creating VM {vmid} from {volid}"));
        let path = format!("/nodes/{}/qemu", seg(node));
        let upid = self
            .api
            .post(&path, &self.create_params(vmid, &volid))
            .await?;
        self.api
            .wait_task(&format!("POST {path}"), &upid, &self.opts.poll)
            .await?;
        self.step(node, format!("converting VM {vmid} to a template"));
        let path = format!("/nodes/{}/qemu/{vmid}/template", seg(node));
        let upid = self.api.post(&path, &Params::new()).await?;
        self.api
            .wait_task(&format!("POST {path}"), &upid, &self.opts.poll)
            .await?;
        Ok(Installed {
            node: node.to_owned(),
            vmid,
            action: if replace_vmid.is_some() {
                Action::Replaced
            } else {
                Action::Installed
            },
            serves: Vec::new(),
        })
    }

    /// Uploads `disk.qcow2` unless the content-addressed import volume exists; its volid.
    async fn upload(&self, node: &str) -> Result<String, PveError> {
        let hex = self.spec.disk_sha256.trim_start_matches("sha256:");
        let filename = format!(
            "agentlab-{}-{}.qcow2",
            self.spec.name,
            &hex[..hex.len().min(16)]
        );
        let storage = &self.spec.import_storage;
        let volid = format!("{storage}:import/{filename}");
        let content = self
            .api
            .get(
                &format!("/nodes/{}/storage/{}/content", seg(node), seg(storage)),
                &vec![("content", "import".to_owned())],
            )
            .await?;
        let present = content
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v.get("volid").and_then(Value::as_str) == Some(&volid));
        if present {
            self.step(node, format!("{volid} already uploaded"));
            return Ok(volid);
        }
        self.step(
            node,
            format!("uploading {} as {volid}", self.spec.disk.display()),
        );
        let progress = std::sync::Arc::clone(self.progress);
        let n = node.to_owned();
        let report: UploadProgress = std::sync::Arc::new(move |sent, total| {
            progress(&InstallStep::Upload {
                node: n.clone(),
                sent,
                total,
            });
        });
        let upid = self
            .api
            .upload(crate::upload::Upload {
                node,
                storage,
                content: "import",
                filename: &filename,
                path: &self.spec.disk,
                sha256: Some(hex),
                progress: report,
            })
            .await?;
        let call = format!("POST /nodes/{node}/storage/{storage}/upload");
        self.api.wait_task(&call, &upid, &self.opts.poll).await?;
        Ok(volid)
    }

    async fn pick_vmid(&self) -> Result<u32, PveError> {
        if let Some(v) = self.spec.vmid {
            let free = self
                .api
                .get("/cluster/nextid", &vec![("vmid", v.to_string())])
                .await
                .is_ok();
            if free {
                return Ok(v);
            }
        }
        let next = self.api.get("/cluster/nextid", &Params::new()).await?;
        lenient_u64(&next)
            .map(|n| n as u32)
            .ok_or_else(|| PveError::Decode {
                call: "GET /cluster/nextid".into(),
                detail: format!("not a vmid: {next}"),
            })
    }

    fn create_params(&self, vmid: u32, volid: &str) -> Params {
        let storage = &self.opts.storage;
        let bridge = self
            .opts
            .bridge
            .clone()
            .unwrap_or_else(|| "vmbr0".to_owned());
        let tags = format!("{};{TEMPLATE_TAG}", self.opts.tag);
        vec![
            ("vmid", vmid.to_string()),
            ("name", self.spec.name.clone()),
            ("description", marker(self.spec)),
            ("tags", tags),
            ("ostype", "l26".to_owned()),
            ("memory", self.spec.memory_mb.to_string()),
            ("cores", self.spec.cores.to_string()),
            ("scsihw", "virtio-scsi-single".to_owned()),
            ("scsi0", format!("{storage}:0,import-from={volid}")),
            ("ide2", format!("{storage}:cloudinit")),
            ("boot", "order=scsi0".to_owned()),
            ("serial0", "socket".to_owned()),
            ("vga", "serial0".to_owned()),
            ("agent", "enabled=1".to_owned()),
            ("net0", format!("virtio,bridge={bridge}")),
        ]
    }
}
