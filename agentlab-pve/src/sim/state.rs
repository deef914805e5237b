//! Simulator configuration and the in-memory cluster state (nodes, storages, VMs, volumes).
//!
//! Everything lives behind one `std::sync::Mutex` that is never held across an `.await`.
//! VM configs are kept as PVE stores them (`key → value` strings); templates carry
//! `template: 1`, clones in progress `lock: clone`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One simulated node.
#[derive(Debug, Clone)]
pub struct SimNode {
    /// Node name.
    pub name: String,
    /// Total memory (bytes).
    pub maxmem: u64,
    /// Used memory (bytes).
    pub mem: u64,
    /// Online.
    pub online: bool,
}

/// One simulated storage (visible on every node; `shared` decides cross-node clones).
#[derive(Debug, Clone)]
pub struct SimStorage {
    /// Storage id.
    pub id: String,
    /// Plugin type (`lvmthin`, `dir`, `nfs`, …); file types need a format extension in names.
    pub kind: String,
    /// Content types (`images`, `snippets`, …).
    pub content: Vec<String>,
    /// Shared between nodes.
    pub shared: bool,
    /// Capacity in bytes.
    pub total: u64,
}

impl SimStorage {
    /// Whether volume names on this storage are files (`<vmid>/<name>.<fmt>`).
    pub fn is_file_based(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "dir" | "nfs" | "cifs" | "glusterfs" | "btrfs"
        )
    }
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Path of `apidoc.json`.
    pub schema_path: PathBuf,
    /// Accepted token id (`user@realm!name`).
    pub token_id: String,
    /// Accepted token secret.
    pub token_secret: String,
    /// `/version` → `version`.
    pub version: String,
    /// Nodes.
    pub nodes: Vec<SimNode>,
    /// Storages.
    pub storages: Vec<SimStorage>,
    /// Bridges present on every node.
    pub bridges: Vec<String>,
    /// `/access/permissions` answer for the token.
    pub permissions: BTreeMap<String, BTreeMap<String, u8>>,
    /// How long a task runs.
    pub task_duration: Duration,
    /// How long a clone holds the storage lock.
    pub clone_duration: Duration,
    /// How long a clone waits for the storage lock before failing `got timeout`.
    pub lock_timeout: Duration,
    /// Guest agent answers this long after start.
    pub agent_delay: Duration,
    /// The first N status polls of each task answer 400 `no such task`.
    pub hidden_task_polls: u32,
    /// Delay before answering 401 (PVE: 3 s).
    pub auth_failure_delay: Duration,
    /// Answer errors like PVE before libpve-http-server-perl 5.2.0 (early 2025): the message
    /// only in the HTTP reason phrase, body `{"data":null}`.
    pub legacy_errors: bool,
    /// VMs the token lacks `VM.Audit` on: omitted from `/cluster/resources` (but still taken
    /// for `/cluster/nextid`, as in PVE).
    pub invisible_vms: Vec<u32>,
    /// Every request takes at least this long to answer (a loaded pvedaemon worker), so
    /// tests can see how many requests a client keeps in flight per node.
    pub request_delay: Duration,
}

impl SimConfig {
    /// Two nodes (`pve1`, `pve2`), storages `local` (dir, snippets), `local-lvm` (lvmthin) and
    /// `shared-nfs` (shared), bridges `vmbr0`/`vmbr1`, token `agentlab@pve!ci`, full privileges.
    pub fn new(schema_path: impl Into<PathBuf>) -> Self {
        let gib = 1u64 << 30;
        let storage = |id: &str, kind: &str, content: &[&str], shared: bool| SimStorage {
            id: id.into(),
            kind: kind.into(),
            content: content.iter().map(|s| (*s).to_owned()).collect(),
            shared,
            total: 500 * gib,
        };
        Self {
            schema_path: schema_path.into(),
            token_id: "agentlab@pve!ci".into(),
            token_secret: "5f0c6c2e-1d7a-4b8e-9a51-3c2f6e7d8a90".into(),
            version: "9.1.1".into(),
            nodes: vec![
                SimNode {
                    name: "pve1".into(),
                    maxmem: 64 * gib,
                    mem: 40 * gib,
                    online: true,
                },
                SimNode {
                    name: "pve2".into(),
                    maxmem: 64 * gib,
                    mem: 8 * gib,
                    online: true,
                },
            ],
            storages: vec![
                storage(
                    "local",
                    "dir",
                    &["iso", "vztmpl", "backup", "snippets", "images"],
                    false,
                ),
                storage("local-lvm", "lvmthin", &["images", "rootdir"], false),
                storage("shared-nfs", "nfs", &["images"], true),
            ],
            bridges: vec!["vmbr0".into(), "vmbr1".into()],
            permissions: crate::privileges::full_grant(),
            task_duration: Duration::from_millis(10),
            clone_duration: Duration::from_millis(20),
            lock_timeout: Duration::from_millis(1000),
            agent_delay: Duration::from_millis(50),
            hidden_task_polls: 1,
            auth_failure_delay: Duration::ZERO,
            legacy_errors: false,
            invisible_vms: Vec::new(),
            request_delay: Duration::ZERO,
        }
    }
}

/// A VM to seed the simulator with.
#[derive(Debug, Clone)]
pub struct SeedVm {
    /// VM id.
    pub vmid: u32,
    /// Node.
    pub node: String,
    /// Name.
    pub name: String,
    /// A template.
    pub template: bool,
    /// `tags`.
    pub tags: Option<String>,
    /// `description` (e.g. AgentLab's template marker).
    pub description: Option<String>,
    /// Guest agent enabled.
    pub agent: bool,
    /// Has a cloud-init drive.
    pub cloudinit: bool,
    /// Storage of its disks.
    pub storage: String,
    /// Running.
    pub running: bool,
}

impl SeedVm {
    /// A template with agent and cloud-init drive on `local-lvm`.
    pub fn template(vmid: u32, node: &str) -> Self {
        Self {
            vmid,
            node: node.into(),
            name: format!("tmpl-{vmid}"),
            template: true,
            tags: None,
            description: None,
            agent: true,
            cloudinit: true,
            storage: "local-lvm".into(),
            running: false,
        }
    }

    /// Somebody else's plain VM.
    pub fn foreign(vmid: u32, node: &str) -> Self {
        Self {
            name: format!("other-{vmid}"),
            template: false,
            running: true,
            ..Self::template(vmid, node)
        }
    }
}

/// Power state of a simulated VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Stopped.
    Stopped,
    /// Running.
    Running,
    /// Paused.
    Paused,
}

/// A simulated VM.
#[derive(Debug, Clone)]
pub struct Vm {
    /// Node it lives on.
    pub node: String,
    /// Config as PVE stores it.
    pub config: BTreeMap<String, String>,
    /// Power state.
    pub power: Power,
    /// When the guest agent starts answering.
    pub agent_ready_at: Option<Instant>,
    /// Files written through the guest agent.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Clones in progress holding this VM's config lock (shared).
    pub clone_readers: u32,
}

impl Vm {
    /// Whether the VM is a template.
    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| v == "1")
    }
}

/// A volume on a storage.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Owning VM id.
    pub owner: u32,
    /// Size in bytes.
    pub size: u64,
    /// Node for local storages.
    pub node: String,
}

/// Mutable cluster state.
#[derive(Debug, Default)]
pub struct State {
    /// VMs by id.
    pub vms: BTreeMap<u32, Vm>,
    /// Volumes by volid.
    pub volumes: BTreeMap<String, Volume>,
    /// Nodes taken offline at run time ([`crate::sim::Simulator::set_node_online`]).
    pub offline: std::collections::BTreeSet<String>,
}

impl State {
    /// Adds a seeded VM and its disks.
    pub fn seed(&mut self, seed: &SeedVm) {
        let mut config = BTreeMap::new();
        let prefix = if seed.template { "base" } else { "vm" };
        let disk = format!("{}:{prefix}-{}-disk-0", seed.storage, seed.vmid);
        self.volumes.insert(
            disk.clone(),
            Volume {
                owner: seed.vmid,
                size: 8 << 30,
                node: seed.node.clone(),
            },
        );
        config.insert("scsi0".into(), format!("{disk},size=8G"));
        config.insert("scsihw".into(), "virtio-scsi-pci".into());
        config.insert("boot".into(), "order=scsi0".into());
        config.insert("name".into(), seed.name.clone());
        config.insert("memory".into(), "2048".into());
        config.insert("cores".into(), "2".into());
        config.insert(
            "net0".into(),
            format!("virtio={},bridge=vmbr0", random_mac()),
        );
        if seed.cloudinit {
            let ci = format!("{}:vm-{}-cloudinit", seed.storage, seed.vmid);
            self.volumes.insert(
                ci.clone(),
                Volume {
                    owner: seed.vmid,
                    size: 4 << 20,
                    node: seed.node.clone(),
                },
            );
            config.insert("ide2".into(), format!("{ci},media=cdrom"));
        }
        if seed.agent {
            config.insert("agent".into(), "1".into());
        }
        if seed.template {
            config.insert("template".into(), "1".into());
        }
        if let Some(tags) = &seed.tags {
            config.insert("tags".into(), tags.clone());
        }
        if let Some(description) = &seed.description {
            config.insert("description".into(), description.clone());
        }
        let power = if seed.running {
            Power::Running
        } else {
            Power::Stopped
        };
        let agent_ready_at = seed.running.then(Instant::now);
        self.vms.insert(
            seed.vmid,
            Vm {
                node: seed.node.clone(),
                config,
                power,
                agent_ready_at,
                files: BTreeMap::new(),
                clone_readers: 0,
            },
        );
    }
}

/// A random locally administered unicast MAC (PVE uses its OUI `BC:24:11`).
pub fn random_mac() -> String {
    let b: [u8; 3] = rand::random();
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
}

/// Volumes referenced by a config (disk keys and `unusedN`), as volids.
pub fn referenced_volumes(config: &BTreeMap<String, String>) -> Vec<(String, String)> {
    config
        .iter()
        .filter(|(k, _)| {
            let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
            base.len() < k.len()
                && matches!(
                    base,
                    "scsi" | "virtio" | "sata" | "ide" | "unused" | "efidisk" | "tpmstate"
                )
        })
        .filter_map(|(k, v)| {
            let file = v
                .split(',')
                .next()?
                .trim_start_matches("file=")
                .trim_start_matches("volume=");
            file.contains(':').then(|| (k.clone(), file.to_owned()))
        })
        .collect()
}

/// Owner vmid of a volid named `…vm-<id>-…` / `…base-<id>-…`.
pub fn volume_owner(volid: &str) -> Option<u32> {
    let name = volid.split_once(':')?.1;
    let name = name.rsplit('/').next()?;
    let rest = name
        .strip_prefix("vm-")
        .or_else(|| name.strip_prefix("base-"))?;
    rest.split('-').next()?.parse().ok()
}
