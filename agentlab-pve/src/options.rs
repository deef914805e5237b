//! [`PveOptions`]: plain configuration data for [`crate::ProxmoxHypervisor`] and
//! [`crate::doctor()`]; the daemon builds it from its own config file.

use std::path::PathBuf;

use agentlab_core::secrets::SecretValue;
use serde::Deserialize;

/// How the server certificate is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// PEM CA file (PVE's `/etc/pve/pve-root-ca.pem`); only this CA is trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Pinned SHA-256 fingerprint of the server's leaf certificate (`AA:BB:…`, 32 bytes).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Accept any certificate (logs a loud warning; for labs only).
    #[serde(default)]
    pub insecure: bool,
}

/// How the bootstrap file reaches the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapDelivery {
    /// QEMU guest agent `file-write` into the guest's tmpfs (no secret on host disk).
    #[default]
    GuestAgent,
    /// A 0600 cloud-init user-data snippet referenced by `cicustom` (templates without agent).
    Snippet,
}

/// Polling and retry timings (milliseconds / counts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollOptions {
    /// First task-status poll interval of a kind of task not seen yet; grows by half up to
    /// `task_max_interval_ms`.
    pub task_interval_ms: u64,
    /// Largest task-status poll interval.
    pub task_max_interval_ms: u64,
    /// Poll interval around a task's expected end (learned per task type, e.g. `qmclone`):
    /// the first poll comes at 80% of the expected duration, then every this many ms, so
    /// completion is seen within about this long of the task's end.
    pub task_fine_interval_ms: u64,
    /// Give up waiting for a task after this long.
    pub task_timeout_ms: u64,
    /// First guest-agent ping interval; doubles up to 5 s.
    pub agent_interval_ms: u64,
    /// Give up waiting for the guest agent after this long.
    pub agent_timeout_ms: u64,
    /// Retries of an operation failing with a lock timeout (`got timeout`).
    pub lock_retries: u32,
    /// Base backoff between lock retries (jittered, exponential).
    pub lock_backoff_ms: u64,
    /// HTTP request timeout.
    pub request_timeout_ms: u64,
    /// Requests in flight at once (pvedaemon has 3 workers per node; blocking calls hold one).
    pub max_inflight: usize,
    /// Requests in flight at once to one node (`/nodes/<node>/…`), so AgentLab never takes
    /// every API worker of a node (default 3).
    pub max_inflight_per_node: usize,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self {
            task_interval_ms: 50,
            task_max_interval_ms: 1000,
            task_fine_interval_ms: 25,
            task_timeout_ms: 600_000,
            agent_interval_ms: 1000,
            agent_timeout_ms: 300_000,
            lock_retries: 8,
            lock_backoff_ms: 500,
            request_timeout_ms: 60_000,
            max_inflight: 6,
            max_inflight_per_node: 3,
        }
    }
}

fn default_node() -> String {
    "auto".into()
}
fn default_max_clones() -> usize {
    3
}
fn default_holder() -> u32 {
    999_999_000
}
fn default_tag() -> String {
    "agentlab".into()
}
fn default_agent_subnet() -> ipnet::IpNet {
    ipnet::IpNet::V4(
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 77, 0, 0), 16).unwrap_or_default(),
    )
}

/// Everything [`crate::ProxmoxHypervisor`] needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PveOptions {
    /// API base URL (`https://pve1.example:8006`); `/api2/json` is appended.
    pub url: String,
    /// `auto` (online node with most free memory) or a node name.
    #[serde(default = "default_node")]
    pub node: String,
    /// Token id `USER@REALM!TOKENID`.
    pub token_id: String,
    /// Token secret (never logged).
    pub token_secret: SecretValue,
    /// TLS trust.
    #[serde(default)]
    pub tls: TlsOptions,
    /// Storage for VM disks and workspace volumes.
    pub storage: String,
    /// Storage with `snippets` content (snippet bootstrap mode).
    #[serde(default)]
    pub snippets_storage: Option<String>,
    /// Local directory of that storage's snippets (`/var/lib/vz/snippets`).
    #[serde(default)]
    pub snippets_dir: Option<PathBuf>,
    /// Bootstrap delivery.
    #[serde(default)]
    pub bootstrap: BootstrapDelivery,
    /// Agent network; the guest address is chosen inside it.
    #[serde(default = "default_agent_subnet")]
    pub agent_subnet: ipnet::IpNet,
    /// Agent bridge (checked by `doctor`).
    #[serde(default)]
    pub bridge: Option<String>,
    /// Pool new VMs are cloned into.
    #[serde(default)]
    pub pool: Option<String>,
    /// Concurrent clones per template.
    #[serde(default = "default_max_clones")]
    pub max_concurrent_clones: usize,
    /// Concurrent clone tasks per node (PVE runs 3 API workers per node; placement prefers
    /// another usable node, else waits, so the web UI keeps a worker).
    #[serde(default = "default_max_clones")]
    pub max_clones_per_node: usize,
    /// Reserved VM id owning workspace volumes (never a VM; reported by `used_ids`).
    #[serde(default = "default_holder")]
    pub volume_holder_vmid: u32,
    /// Tag marking AgentLab's VMs.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Cloud-init user (`ciuser`).
    #[serde(default)]
    pub ciuser: Option<String>,
    /// SSH public keys for the guest (`sshkeys`).
    #[serde(default)]
    pub ssh_public_keys: Vec<String>,
    /// Timings.
    #[serde(default)]
    pub poll: PollOptions,
    /// Directory where the UPID of every running clone task is recorded, so a restarted
    /// daemon can stop a clone it did not wait for (the daemon uses `<data_dir>/pve-tasks`;
    /// `None`: not recorded).
    #[serde(default)]
    pub task_journal_dir: Option<PathBuf>,
}

impl PveOptions {
    /// Options with defaults for everything but the essentials.
    pub fn new(
        url: impl Into<String>,
        token_id: impl Into<String>,
        token_secret: SecretValue,
        storage: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            node: default_node(),
            token_id: token_id.into(),
            token_secret,
            tls: TlsOptions::default(),
            storage: storage.into(),
            snippets_storage: None,
            snippets_dir: None,
            bootstrap: BootstrapDelivery::default(),
            agent_subnet: default_agent_subnet(),
            bridge: None,
            pool: None,
            max_concurrent_clones: default_max_clones(),
            max_clones_per_node: default_max_clones(),
            volume_holder_vmid: default_holder(),
            tag: default_tag(),
            ciuser: None,
            ssh_public_keys: Vec::new(),
            poll: PollOptions::default(),
            task_journal_dir: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_strictly_with_defaults() {
        let json = r#"{"url": "https://pve1:8006", "token_id": "a@pve!t", "token_secret": "very-secret",
            "storage": "local-lvm", "tls": {"ca_file": "/etc/pve/pve-root-ca.pem"}, "bootstrap": "snippet",
            "poll": {"lock_retries": 3}}"#;
        let o: PveOptions = serde_json::from_str(json).unwrap();
        assert_eq!(o.node, "auto");
        assert_eq!(o.bootstrap, BootstrapDelivery::Snippet);
        assert_eq!(o.poll.lock_retries, 3);
        assert_eq!(
            o.poll.task_interval_ms,
            PollOptions::default().task_interval_ms
        );
        assert_eq!(o.volume_holder_vmid, 999_999_000);
        assert_eq!(o.agent_subnet.to_string(), "10.77.0.0/16");
        assert!(
            !format!("{o:?}").contains("very-secret"),
            "Debug redacts the token secret"
        );
        let typo = json.replace("\"storage\"", "\"storge\"");
        assert!(serde_json::from_str::<PveOptions>(&typo).is_err());
        let bad_tls = json.replace("ca_file", "cafile");
        assert!(serde_json::from_str::<PveOptions>(&bad_tls).is_err());
    }

    #[test]
    fn backend_debug_never_shows_the_secret() {
        let o = PveOptions::new(
            "http://127.0.0.1:1",
            "a@pve!t",
            SecretValue::new("hunter2-secret"),
            "local-lvm",
        );
        let hv = crate::ProxmoxHypervisor::new(o).unwrap();
        let dbg = format!("{hv:?}");
        assert!(!dbg.contains("hunter2-secret"), "{dbg}");
    }
}
