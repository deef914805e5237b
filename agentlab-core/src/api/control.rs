//! Control API bodies (agentlabd's Unix socket, base path `/v1`) and the error envelope.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Vmid, WorkspaceId};

/// The error envelope every failed request returns:
/// `{"error":{"code":"sandbox_not_found","message":"…","details":{…}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Stable machine-readable code (`sandbox_not_found`, `invalid_state`, …).
    pub code: String,
    /// Human-readable message with the whole cause chain.
    pub message: String,
    /// Structured details (may be `null`).
    #[serde(default)]
    pub details: serde_json::Value,
}

/// `GET /v1/sandboxes/{vmid}`: the sandbox and, where the backend reports it (QEMU), what
/// its running VM process uses on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxDetail {
    /// The sandbox record.
    #[serde(flatten)]
    pub sandbox: crate::model::Sandbox,
    /// Memory and CPU of the VM process; absent when not running or not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::hypervisor::VmUsage>,
    /// When this daemon process last saw the sandbox active (an exec, shell, copy or
    /// forward stream, job log output, guest CPU above the idle threshold); absent when it
    /// has not since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<crate::time::Timestamp>,
}

/// `POST /v1/sandboxes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxRequest {
    /// Profile name.
    pub profile: String,
    /// Optional name (defaults to `agentlab-<vmid>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Lease length in minutes (profile default when absent).
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
    /// Keep alive (profile default when absent).
    #[serde(default)]
    pub keepalive: Option<bool>,
    /// Workspace (id or name) to attach.
    #[serde(default)]
    pub workspace: Option<String>,
}

/// `POST /v1/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunJobRequest {
    /// Repository URL.
    pub repo: String,
    /// Branch, tag or commit.
    #[serde(default)]
    pub git_ref: Option<String>,
    /// The task for the agent.
    pub task: String,
    /// Profile name.
    pub profile: String,
    /// Agent command or preset (`claude`, `codex`, `opencode`) overriding the profile's.
    #[serde(default)]
    pub agent: Option<String>,
    /// Lease length in minutes.
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
    /// Keep the sandbox after the job.
    #[serde(default)]
    pub keepalive: Option<bool>,
    /// Workspace (id or name) to attach.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Results back to git, overriding the profile's `result:` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::profile::ResultOverride>,
}

/// `POST /v1/sandboxes/{vmid}/lease/renew`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewLeaseRequest {
    /// New lease length from now, in minutes (the lease's own length when absent).
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
}

/// `POST /v1/workspaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    /// Unique name.
    pub name: String,
    /// Size in GiB.
    pub size_gb: u32,
}

/// `POST /v1/workspaces/{id}/attach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachWorkspaceRequest {
    /// Sandbox to attach to.
    pub vmid: Vmid,
}

/// `POST /v1/workspaces/{id}/rebind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebindWorkspaceRequest {
    /// Profile of the new sandbox.
    pub profile: String,
    /// Keep the old sandbox instead of destroying it.
    #[serde(default)]
    pub keep_old: bool,
    /// Lease length of the new sandbox in minutes.
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
}

/// Result of a rebind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebindResponse {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The sandbox it was attached to before, if any.
    pub old_vmid: Option<Vmid>,
    /// The new sandbox.
    pub new_vmid: Vmid,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Daemon version line.
    pub version: String,
    /// Backend name.
    pub backend: String,
    /// Whether the backend answered a health probe.
    pub backend_healthy: bool,
    /// Backend health detail (error text when unhealthy).
    pub backend_detail: Option<String>,
    /// Sandbox counts per state (non-zero states only).
    pub sandboxes: BTreeMap<String, u64>,
    /// Job counts per state (non-zero states only).
    pub jobs: BTreeMap<String, u64>,
    /// Health and capacity per node, from backends spanning several nodes (Proxmox); absent
    /// for single-host backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<crate::hypervisor::NodeStatus>>,
    /// Why node health could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_error: Option<String>,
    /// Usage of the filesystems the daemon writes (`data_dir`, artifacts, workspace volumes),
    /// from its last disk check; empty when `quotas.disk_warn_percent` is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskStatus>,
}

/// One watched filesystem in [`StatusResponse::disks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    /// The watched directory (the first of those on the same filesystem).
    pub path: String,
    /// Percent of the filesystem in use, rounded down (as `df` counts it).
    pub used_percent: u8,
    /// Whether usage is at or above `quotas.disk_warn_percent`.
    pub above: bool,
}

/// `GET /v1/profiles/{name}` and list items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSummary {
    /// Name.
    pub name: String,
    /// Template VM.
    pub template_vmid: u32,
    /// vCPUs.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Keepalive by default.
    pub keepalive_default: bool,
    /// Default lease in minutes.
    pub ttl_minutes_default: u32,
}
