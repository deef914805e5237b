//! The [`Hypervisor`] trait: the handful of VM verbs the engine consumes.
//!
//! Backends: `agentlab-pve` (Proxmox VE over REST), `agentlab-local` (namespaces), and
//! `crate::fake::FakeHypervisor` (feature `fake`). The engine allocates VM ids, MACs and addresses itself and
//! passes them in; a backend never picks ids on its own.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use crate::guest_exec::{GuestExec, GuestExecError, GuestExecOutput, GuestExecRequest};
use crate::ids::{Vmid, WorkspaceId};
use crate::secrets::SecretValue;

/// Resources for a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// vCPUs.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// CPU limit in cores (fractional), if any.
    pub cpulimit: Option<f64>,
    /// Minimum memory for ballooning in MiB; `None` disables the balloon target.
    pub balloon_mb: Option<u32>,
}

/// The VM's attachment to the agent network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAttachment {
    /// Bridge name (`vmbr1`, `agentlab0`, …).
    pub bridge: String,
    /// NIC model (`virtio`, …).
    pub model: String,
    /// Assigned MAC address (`02:…`).
    pub mac: String,
    /// Assigned address.
    pub ip: IpAddr,
    /// Prefix length of the agent subnet.
    pub prefix_len: u8,
    /// Gateway (the host's address on the bridge).
    pub gateway: IpAddr,
    /// Enable the hypervisor's own per-NIC firewall flag where it has one.
    pub firewall: bool,
}

/// Everything needed to create and configure one sandbox VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmSpec {
    /// Id chosen by the engine's allocator.
    pub vmid: Vmid,
    /// VM name.
    pub name: String,
    /// Template VM to clone.
    pub template_vmid: u32,
    /// Node to place it on; `None` lets the backend choose.
    pub node: Option<String>,
    /// Full instead of linked clone.
    pub full_clone: bool,
    /// CPU and memory.
    pub resources: Resources,
    /// Root disk size in GiB (grown to this size if larger than the template's).
    pub root_size_gb: Option<u32>,
    /// Network attachment.
    pub net: NetAttachment,
    /// Profile name, recorded in the VM's description.
    pub profile: String,
    /// SSH public keys for the agent user (daemon config's, then the profile's), already
    /// validated ([`crate::ssh_key`]); backends with cloud-init give them to the guest there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_public_keys: Vec<String>,
}

/// What [`Hypervisor::create`] returns: where the new VM lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmHandle {
    /// The VM id.
    pub vmid: Vmid,
    /// Node it was created on.
    pub node: String,
    /// Host-side interface name its traffic enters through (tap/veth), if known.
    pub iface: Option<String>,
}

/// Data the guest needs to fetch its job; delivered by each backend its own way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapData {
    /// The guest listener's base URL (e.g. `http://10.77.0.1:8844`).
    pub controller_url: String,
    /// Single-use bootstrap token.
    pub token: SecretValue,
    /// The VM id the token is bound to.
    pub vmid: Vmid,
    /// Key of the sandbox's channel (see [`crate::api::channel`]); `None` when the daemon
    /// offers no channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_key: Option<SecretValue>,
    /// SSH public keys the runner adds to the agent user's `~/.ssh/authorized_keys` (the
    /// same as [`VmSpec::ssh_public_keys`]; on the local backend this is how they arrive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_public_keys: Vec<String>,
}

/// Power state of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// Paused / suspended.
    Paused,
}

/// A VM the backend manages (carries AgentLab's marker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedVm {
    /// Id.
    pub vmid: Vmid,
    /// Node.
    pub node: String,
    /// Power state.
    pub power: PowerState,
}

/// A backend volume for a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VolumeId(pub String);

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Health and capacity of one hypervisor node (see [`NodeHealth`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Whether the node answers (an offline node's sandboxes are LOST).
    pub online: bool,
    /// Total memory in bytes (0 when unknown, e.g. offline).
    pub mem_total: u64,
    /// Free memory in bytes, as placement counts it (clones being made there count as used).
    pub mem_free: u64,
    /// Clone tasks this process is running on the node.
    pub clone_tasks: u32,
    /// Most clone tasks this process runs on the node at once.
    pub clone_limit: u32,
}

/// Optional ability of backends that span several nodes: report every node's health and
/// capacity. The engine watches it to mark sandboxes on an offline node LOST; `agentlab
/// status` shows it. Reached through [`Hypervisor::node_health`].
#[async_trait]
pub trait NodeHealth: Send + Sync {
    /// Every node of the cluster with its health and capacity.
    async fn node_status(&self) -> Result<Vec<NodeStatus>, HypervisorError>;
}

/// What a running sandbox's VM process uses on the host (see [`ProcessUsage`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VmUsage {
    /// The host process (e.g. QEMU).
    pub pid: u32,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// CPU time used so far (user + system), in seconds.
    pub cpu_seconds: f64,
}

/// Optional ability of backends whose VMs are host processes (QEMU): report a running
/// sandbox's memory and CPU use; `agentlab sandbox show` shows it. Reached through
/// [`Hypervisor::process_usage`].
#[async_trait]
pub trait ProcessUsage: Send + Sync {
    /// The VM process's use, or `None` when the sandbox is not running.
    async fn usage(&self, vmid: Vmid) -> Result<Option<VmUsage>, HypervisorError>;
}

/// Errors of a [`Hypervisor`].
#[derive(Debug, thiserror::Error)]
pub enum HypervisorError {
    /// The VM or volume does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The id is taken (e.g. a clone target that already exists).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The object is busy or in the wrong state (locked, running, attached).
    #[error("Conflict: {0}")]
    Conflict(String),
    /// The backend cannot be reached.
    #[error("Hypervisor unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The operation did not finish in time.
    #[error("Timed out: {0}")]
    Timeout(String),
    /// The backend refused the request (bad parameters, missing privilege, not ours).
    #[error("Rejected: {reason}")]
    Rejected {
        /// Why.
        reason: String,
    },
    /// Any other backend failure.
    #[error("Backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl HypervisorError {
    /// A [`HypervisorError::Backend`] from a message.
    pub fn backend(msg: impl Into<String>) -> Self {
        Self::Backend(msg.into().into())
    }
}

/// The VM verbs the engine consumes.
#[async_trait]
pub trait Hypervisor: Send + Sync + fmt::Debug {
    /// Short backend name (`pve`, `local`, `fake`).
    fn name(&self) -> &'static str;
    /// Creates the VM `spec.vmid` from the template; returns only once it exists.
    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError>;
    /// Applies resources, network and disk size from `spec` to a created, stopped VM.
    async fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError>;
    /// Powers the VM on, delivering `bootstrap` to the guest when given.
    async fn start(
        &self,
        vmid: Vmid,
        bootstrap: Option<&BootstrapData>,
    ) -> Result<(), HypervisorError>;
    /// Shuts down gracefully within `grace`, then forces it off (`grace` zero: force at once).
    async fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError>;
    /// Destroys the VM and its own disks; refuses VMs not created by AgentLab.
    async fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError>;
    /// Current power state; `NotFound` when the VM does not exist.
    async fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError>;
    /// The guest's address on the agent network once the guest reports it.
    async fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError>;
    /// VMs carrying AgentLab's marker.
    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError>;
    /// Ids in use by anyone (ours or not), for the allocator.
    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError>;
    /// Allocates a workspace volume of `size_gb` GiB.
    async fn create_volume(
        &self,
        ws: &WorkspaceId,
        size_gb: u32,
    ) -> Result<VolumeId, HypervisorError>;
    /// Frees a detached workspace volume.
    async fn delete_volume(&self, volume: &VolumeId) -> Result<(), HypervisorError>;
    /// Attaches a volume as the VM's workspace disk.
    async fn attach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError>;
    /// Detaches the workspace volume from the VM without freeing it.
    async fn detach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError>;
    /// Optional: per-node health and capacity (multi-node backends); `None` by default.
    fn node_health(&self) -> Option<&dyn NodeHealth> {
        None
    }
    /// Optional: memory and CPU of a sandbox's VM process (QEMU); `None` by default.
    fn process_usage(&self) -> Option<&dyn ProcessUsage> {
        None
    }
    /// Optional: run a command through the hypervisor's guest agent (Proxmox VE, QEMU), the
    /// fallback when the sandbox's own guest agent is not connected; `None` by default.
    fn guest_exec(&self) -> Option<&dyn GuestExec> {
        None
    }
}
