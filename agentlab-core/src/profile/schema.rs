//! The profile schema: serde types with their defaults.

use serde::{Deserialize, Serialize};

use crate::firewall::Egress;
use crate::hypervisor::Resources;
use crate::yaml::yaml_enum;

use super::validate::{AllowlistEntry, parse_allowlist_entry};

yaml_enum!(
    /// Egress policy of a sandbox (`network.mode`).
    NetworkMode {
        /// Full Internet through NAT; LAN, tailnet, host services and other sandboxes blocked.
        #[default]
        Nat => "nat",
        /// Only the destinations in `network.allowlist`.
        Allowlist => "allowlist",
        /// No egress beyond the guest listener.
        Off => "off",
    }
);

yaml_enum!(
    /// Whether a sandbox gets a persistent workspace volume (`storage.workspace`).
    WorkspaceMode {
        /// No workspace: everything is lost with the sandbox.
        #[default]
        None => "none",
        /// Create (or attach the requested) workspace volume of `workspace_size_gb`.
        Attach => "attach",
    }
);

yaml_enum!(
    /// How the agent runs (`behavior.mode`).
    AgentMode {
        /// Unattended: the agent runs the task with permission prompts disabled.
        #[default]
        Yolo => "yolo",
        /// A human connects (SSH) and drives the agent.
        Interactive => "interactive",
    }
);

yaml_enum!(
    /// An extra sandbox inside the guest around the agent process (`behavior.inner_sandbox`).
    InnerSandbox {
        /// Run the agent directly.
        #[default]
        None => "none",
        /// Run the agent under bubblewrap with `inner_sandbox_args`.
        Bubblewrap => "bubblewrap",
    }
);

yaml_enum!(
    /// A known agent CLI (`agent.preset`).
    AgentPreset {
        /// Claude Code.
        #[default]
        Claude => "claude",
        /// OpenAI Codex CLI.
        Codex => "codex",
        /// opencode.
        Opencode => "opencode",
    }
);

/// A named sandbox recipe. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name, `[a-z0-9][a-z0-9-]{0,62}`.
    pub name: String,
    /// VM id of the template to clone.
    pub template_vmid: u32,
    /// PVE node to pin sandboxes to; `None` or `"auto"` lets the backend place them.
    #[serde(default)]
    pub node: Option<String>,
    /// Network attachment and egress policy.
    #[serde(default)]
    pub network: NetworkProfile,
    /// CPU and memory.
    pub resources: ResourcesProfile,
    /// Disks and workspace volume.
    #[serde(default)]
    pub storage: StorageProfile,
    /// Lifetime and agent mode.
    #[serde(default)]
    pub behavior: BehaviorProfile,
    /// Name of the secret bundle handed to the guest, if any.
    #[serde(default)]
    pub secrets_bundle: Option<String>,
    /// Where the repository is cloned in the guest.
    #[serde(default)]
    pub repo: RepoProfile,
    /// Artifact upload policy.
    #[serde(default)]
    pub artifacts: ArtifactsProfile,
    /// Which agent runs.
    pub agent: AgentProfile,
    /// SSH public keys that may log in as the agent user (`agentlab sandbox ssh`), added to
    /// the daemon config's `ssh_public_keys`. One `TYPE BASE64 [COMMENT]` line each
    /// ([`crate::ssh_key::validate`]).
    #[serde(default)]
    pub ssh_public_keys: Vec<String>,
    /// Results back to git: push the job branch (and open a pull request) after the agent.
    #[serde(default)]
    pub result: super::result::ResultProfile,
}

impl Profile {
    /// The node to pin to, or `None` for automatic placement (absent or `"auto"`).
    pub fn pinned_node(&self) -> Option<&str> {
        self.node.as_deref().filter(|n| *n != "auto")
    }
}

/// `network:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkProfile {
    /// Bridge the NIC is attached to (default `vmbr1`).
    pub bridge: String,
    /// NIC model (default `virtio`; also `e1000`, `e1000e`, `rtl8139`, `vmxnet3`).
    pub model: String,
    /// Proxmox firewall security group. **Not supported yet**: a value is rejected, because
    /// isolation is enforced by AgentLab's own nftables table.
    pub firewall_group: Option<String>,
    /// Egress policy (default `nat`).
    pub mode: NetworkMode,
    /// CIDRs, addresses or domain names; required (non-empty) iff `mode: allowlist`.
    pub allowlist: Vec<String>,
}

impl Default for NetworkProfile {
    fn default() -> Self {
        Self {
            bridge: "vmbr1".to_owned(),
            model: "virtio".to_owned(),
            firewall_group: None,
            mode: NetworkMode::Nat,
            allowlist: Vec::new(),
        }
    }
}

impl NetworkProfile {
    /// The firewall egress policy for this profile (allowlist split into networks and domains;
    /// entries are validated at load time, unparsable ones are skipped here).
    pub fn egress(&self) -> Egress {
        match self.mode {
            NetworkMode::Nat => Egress::Nat,
            NetworkMode::Off => Egress::Off,
            NetworkMode::Allowlist => {
                let mut cidrs = Vec::new();
                let mut domains = Vec::new();
                for entry in self
                    .allowlist
                    .iter()
                    .filter_map(|e| parse_allowlist_entry(e))
                {
                    match entry {
                        AllowlistEntry::Net(net) => cidrs.push(net),
                        AllowlistEntry::Domain(d) => domains.push(d),
                    }
                }
                Egress::Allowlist { cidrs, domains }
            }
        }
    }
}

/// `resources:` section (required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesProfile {
    /// vCPUs (>= 1).
    pub cores: u32,
    /// Memory in MiB (>= 128).
    pub memory_mb: u32,
    /// CPU time limit in cores (fractional, `0 < cpulimit <= cores`); absent = unlimited.
    #[serde(default)]
    pub cpulimit: Option<f64>,
    /// Balloon target (minimum memory) in MiB, `<= memory_mb`; `0` disables the balloon
    /// device; absent = backend default.
    #[serde(default)]
    pub balloon: Option<u32>,
}

impl From<&ResourcesProfile> for Resources {
    fn from(r: &ResourcesProfile) -> Self {
        Resources {
            cores: r.cores,
            memory_mb: r.memory_mb,
            cpulimit: r.cpulimit,
            balloon_mb: r.balloon,
        }
    }
}

/// `storage:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageProfile {
    /// Grow the root disk to this many GiB; absent = template size.
    pub root_size_gb: Option<u32>,
    /// Workspace volume mode (default `none`).
    pub workspace: WorkspaceMode,
    /// Workspace size in GiB; required iff `workspace: attach`.
    pub workspace_size_gb: Option<u32>,
    /// Full instead of linked clone (default `false`).
    pub full_clone: bool,
}

/// `behavior:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviorProfile {
    /// Agent mode (default `yolo`).
    pub mode: AgentMode,
    /// Whether leases are renewable keepalive leases by default (default `false`).
    pub keepalive_default: bool,
    /// Lease TTL in minutes (default 60, >= 1).
    pub ttl_minutes_default: u32,
    /// Job timeout in minutes, `< ttl`; absent = TTL minus 5 minutes of grace (at least 1).
    pub job_timeout_minutes: Option<u32>,
    /// Stop the sandbox after this many idle minutes; absent = never. Idle means no open
    /// exec/shell/copy/forward stream, no job log output and guest CPU below
    /// `idle_cpu_percent`.
    pub idle_stop_minutes: Option<u32>,
    /// Guest CPU use, in percent of one CPU between two checks, above which the sandbox
    /// counts as active for idle stop (default 5, 1..=100). Read where the backend reports
    /// the VM's CPU time (qemu, local).
    pub idle_cpu_percent: u32,
    /// Inner sandbox around the agent in the guest (default `none`).
    pub inner_sandbox: InnerSandbox,
    /// Extra arguments for the inner sandbox; only with `inner_sandbox: bubblewrap`.
    pub inner_sandbox_args: Vec<String>,
}

impl Default for BehaviorProfile {
    fn default() -> Self {
        Self {
            mode: AgentMode::Yolo,
            keepalive_default: false,
            ttl_minutes_default: 60,
            job_timeout_minutes: None,
            idle_stop_minutes: None,
            idle_cpu_percent: 5,
            inner_sandbox: InnerSandbox::None,
            inner_sandbox_args: Vec::new(),
        }
    }
}

impl BehaviorProfile {
    /// Minutes of lease left after the default job timeout, for collecting results.
    pub const TIMEOUT_GRACE_MINUTES: u32 = 5;

    /// The job timeout in minutes: the configured one, or the TTL minus
    /// [`TIMEOUT_GRACE_MINUTES`](Self::TIMEOUT_GRACE_MINUTES), at least 1.
    pub fn effective_job_timeout_minutes(&self) -> u32 {
        self.job_timeout_minutes.unwrap_or_else(|| {
            self.ttl_minutes_default
                .saturating_sub(Self::TIMEOUT_GRACE_MINUTES)
                .max(1)
        })
    }
}

/// `repo:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoProfile {
    /// Absolute path in the guest to clone into (default `/home/agent/repo`).
    pub clone_path: String,
}

impl Default for RepoProfile {
    fn default() -> Self {
        Self {
            clone_path: "/home/agent/repo".to_owned(),
        }
    }
}

/// `artifacts:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactsProfile {
    /// Upload the job's artifacts to the daemon (default `true`).
    pub upload: bool,
    /// Keep uploaded artifacts this many days (default 7, >= 1).
    pub retention_days: u32,
    /// Maximum total bytes of one job's artifacts (default 256 MiB, >= 1).
    pub max_bytes: u64,
}

impl Default for ArtifactsProfile {
    fn default() -> Self {
        Self {
            upload: true,
            retention_days: 7,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `agent:` section (required): exactly one of `command` and `preset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    /// A custom shell command, run by the guest runner as `sh -c COMMAND agent TASK` (the
    /// task text is `$1`).
    #[serde(default)]
    pub command: Option<String>,
    /// A known agent CLI.
    #[serde(default)]
    pub preset: Option<AgentPreset>,
}
