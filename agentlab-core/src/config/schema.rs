//! The [`Config`] type and its sections, with their defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;

use crate::ids::Vmid;
use crate::yaml::yaml_enum;

use super::backends::{FakeConfig, LocalConfig, PveConfig, QemuConfig};
use super::limits::LimitsConfig;
use super::metrics::MetricsConfig;

yaml_enum!(
    /// Which [`Hypervisor`](crate::Hypervisor) backend the daemon builds.
    BackendKind {
        /// Proxmox VE over its REST API (needs the `pve` section).
        #[default]
        Pve => "pve",
        /// Local namespaces + bubblewrap sandboxes on this host.
        Local => "local",
        /// Real VMs run by QEMU on this host (the `qemu` section).
        Qemu => "qemu",
        /// The in-memory fake (offline demos and tests).
        Fake => "fake",
    }
);

yaml_enum!(
    /// Log output format.
    LogFormat {
        /// JSON lines when stderr is not a terminal (journald, a pipe, a file), human-readable
        /// text with colours on a terminal.
        #[default]
        Auto => "auto",
        /// Human-readable lines (colours only on a terminal).
        Text => "text",
        /// One JSON object per line.
        Json => "json",
    }
);

/// The daemon configuration. Unknown keys are errors; absent keys take the defaults below.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Control API Unix socket (default `/run/agentlab/agentlabd.sock`).
    pub socket: PathBuf,
    /// Group owning the socket (mode 0660); `None` = root's group.
    pub socket_group: Option<String>,
    /// State directory (default `/var/lib/agentlab`).
    pub data_dir: PathBuf,
    /// SQLite database; default `<data_dir>/agentlab.db` (see [`Config::db_path`]).
    pub db_path: Option<PathBuf>,
    /// Artifact store; default `<data_dir>/artifacts` (see [`Config::artifact_dir`]).
    pub artifact_dir: Option<PathBuf>,
    /// Directory of profile YAML files (default `/etc/agentlab/profiles`).
    pub profiles_dir: PathBuf,
    /// Hypervisor backend (default `pve`).
    pub backend: BackendKind,
    /// The guest bootstrap listener.
    pub guest: GuestListenerConfig,
    /// VM ids AgentLab may allocate.
    pub vmid_range: VmidRange,
    /// The agent network.
    pub network: NetworkConfig,
    /// Proxmox VE connection; required when `backend: pve`.
    pub pve: Option<PveConfig>,
    /// Local backend settings.
    pub local: LocalConfig,
    /// QEMU backend settings.
    pub qemu: QemuConfig,
    /// Fake backend settings.
    pub fake: FakeConfig,
    /// Secret bundle store.
    pub secrets: SecretsConfig,
    /// Retention and garbage collection.
    pub retention: RetentionConfig,
    /// Quotas: sandboxes and artifact bytes at once, disk usage warnings.
    pub quotas: super::quotas::QuotasConfig,
    /// Logging.
    pub log: LogConfig,
    /// Bounds on control API requests.
    pub limits: LimitsConfig,
    /// SSH public keys every sandbox's `agent` user accepts (`agentlab sandbox ssh`); a
    /// profile's `ssh_public_keys` are added to them. One `TYPE BASE64 [COMMENT]` line each.
    pub ssh_public_keys: Vec<String>,
    /// The remote control API (HTTPS with API tokens); off by default.
    pub remote: super::remote::RemoteConfig,
    /// The Prometheus metrics listener.
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/agentlab/agentlabd.sock"),
            socket_group: None,
            data_dir: PathBuf::from("/var/lib/agentlab"),
            db_path: None,
            artifact_dir: None,
            profiles_dir: PathBuf::from("/etc/agentlab/profiles"),
            backend: BackendKind::Pve,
            guest: GuestListenerConfig::default(),
            vmid_range: VmidRange::default(),
            network: NetworkConfig::default(),
            pve: None,
            local: LocalConfig::default(),
            qemu: QemuConfig::default(),
            fake: FakeConfig::default(),
            secrets: SecretsConfig::default(),
            retention: RetentionConfig::default(),
            quotas: super::quotas::QuotasConfig::default(),
            log: LogConfig::default(),
            limits: LimitsConfig::default(),
            ssh_public_keys: Vec::new(),
            remote: super::remote::RemoteConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Config {
    /// The SQLite database path: `db_path`, or `<data_dir>/agentlab.db`.
    pub fn db_path(&self) -> PathBuf {
        self.db_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("agentlab.db"))
    }

    /// The artifact directory: `artifact_dir`, or `<data_dir>/artifacts`.
    pub fn artifact_dir(&self) -> PathBuf {
        self.artifact_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("artifacts"))
    }

    /// The IPv4 address of the sandbox `vmid`, the same mapping the engine uses
    /// (`engine::alloc::ip_for`): subnet network address + 2 + (`vmid - vmid_range.start`).
    /// `None` when `vmid` is outside the range or the address would leave the subnet.
    /// [`Config::validate`] guarantees every id of the range gets an address that is not the
    /// gateway.
    pub fn sandbox_ipv4(&self, vmid: Vmid) -> Option<Ipv4Addr> {
        let (start, end) = (self.vmid_range.start, self.vmid_range.end);
        if !(start..=end).contains(&vmid.get()) {
            return None;
        }
        let base = u32::from(self.network.subnet.network());
        let ip = Ipv4Addr::from(base.checked_add(vmid.get() - start)?.checked_add(2)?);
        (self.network.subnet.contains(&ip) && ip != self.network.subnet.broadcast()).then_some(ip)
    }
}

/// `guest:` the HTTP listener guests fetch their bootstrap, job and secrets from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuestListenerConfig {
    /// Address to listen on (default `10.77.0.1:8844`, the gateway on the agent bridge).
    pub listen: SocketAddr,
    /// URL guests use to reach the listener; default `http://<listen>`.
    pub controller_url: Option<String>,
    /// Bootstrap token lifetime in seconds (default 600).
    pub token_ttl_secs: u64,
    /// Bootstrap requests allowed per minute per presented token (default 30); a source
    /// address may make 16 times as many.
    pub fetch_rate_per_minute: u32,
    /// Maximum request body in bytes, except artifact uploads (default 1 MiB).
    pub max_body_bytes: u64,
    /// Maximum size of one artifact upload in bytes (default 512 MiB).
    pub artifact_max_bytes: u64,
    /// A connection with no request in flight for this long is closed, and request headers
    /// must arrive within it (default 30 s). Connections from a sandbox are also closed when
    /// the sandbox is destroyed.
    pub idle_timeout_secs: u64,
}

impl Default for GuestListenerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([10, 77, 0, 1], 8844)),
            controller_url: None,
            token_ttl_secs: 600,
            fetch_rate_per_minute: 30,
            max_body_bytes: 1024 * 1024,
            artifact_max_bytes: 512 * 1024 * 1024,
            idle_timeout_secs: 30,
        }
    }
}

impl GuestListenerConfig {
    /// The controller URL handed to guests: `controller_url`, or `http://<listen>`.
    pub fn controller_url(&self) -> String {
        self.controller_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

/// `vmid_range:` VM ids AgentLab allocates sandboxes from (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VmidRange {
    /// First id (default 9100).
    pub start: u32,
    /// Last id (default 9999).
    pub end: u32,
    /// Seconds a destroyed sandbox's id (and its IP and MAC) rests before reuse (default 60).
    pub quarantine_secs: u64,
}

impl Default for VmidRange {
    fn default() -> Self {
        Self {
            start: 9100,
            end: 9999,
            quarantine_secs: 60,
        }
    }
}

impl VmidRange {
    /// Number of ids in the range.
    pub fn len(&self) -> u64 {
        u64::from(self.end).saturating_sub(u64::from(self.start)) + 1
    }

    /// Never true for a validated range (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

/// `network:` the agent network on the host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Agent bridge (default `vmbr1`).
    pub bridge: String,
    /// Agent subnet (default `10.77.0.0/16`); sandbox addresses derive from their vmid.
    pub subnet: Ipv4Net,
    /// The host's address on the bridge (default `10.77.0.1`).
    pub gateway: Ipv4Addr,
    /// Reserved: an IPv6 subnet for sandboxes. Rejected by validation (sandboxes get no IPv6
    /// address yet); only `null` is accepted.
    pub subnet6: Option<Ipv6Net>,
    /// Uplink interface for NAT; `None` = the default route's interface.
    pub uplink: Option<String>,
    /// Tailnet interface (e.g. `tailscale0`), blocked from sandboxes.
    pub tailnet_iface: Option<String>,
    /// Allow inbound SSH from the tailnet to sandboxes (default `false`).
    pub tailnet_ssh: bool,
    /// Let AgentLab install and manage its nftables table (default `true`).
    pub manage_firewall: bool,
    /// Extra TCP ports on the gateway address sandboxes may reach besides the guest listener
    /// (e.g. a local git mirror or package cache; default none).
    pub host_ports: Vec<u16>,
    /// Accept DNS (tcp/udp 53) from sandboxes to the gateway address, for a resolver the
    /// operator runs there (e.g. dnsmasq bound to the bridge); default `false`.
    pub serve_dns: bool,
    /// Destinations blocked for sandboxes on top of the built-in ranges, e.g. cloud host
    /// services on public addresses such as `168.63.129.16/32` (default none).
    pub extra_blocked: Vec<IpNet>,
    /// Name of AgentLab's two nftables tables (`inet <table>`, `bridge <table>`; default
    /// `agentlab`).
    pub table: String,
    /// How often the daemon checks that its tables are still what it installed and re-applies
    /// them if not (default 2 s; 0 turns the check off).
    pub watch_interval_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bridge: "vmbr1".to_owned(),
            subnet: Ipv4Net::new_assert(Ipv4Addr::new(10, 77, 0, 0), 16),
            gateway: Ipv4Addr::new(10, 77, 0, 1),
            subnet6: None,
            uplink: None,
            tailnet_iface: None,
            tailnet_ssh: false,
            manage_firewall: true,
            host_ports: Vec::new(),
            serve_dns: false,
            extra_blocked: Vec::new(),
            table: "agentlab".to_owned(),
            watch_interval_secs: 2,
        }
    }
}

/// `secrets:` where age-encrypted secret bundles live.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Bundle directory (default `/etc/agentlab/secrets`).
    pub dir: PathBuf,
    /// age identity (private key) file (default `/etc/agentlab/age.key`).
    pub identity: PathBuf,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/etc/agentlab/secrets"),
            identity: PathBuf::from("/etc/agentlab/age.key"),
        }
    }
}

/// `retention:` limits and garbage collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Job log lines kept per job (default 20000).
    pub job_log_max_lines: u32,
    /// Seconds between garbage-collection passes (default 3600): artifact retention and
    /// the pruning of old events and jobs.
    pub gc_interval_secs: u64,
    /// Events older than this many days are pruned (default 30; `null` keeps them). Events
    /// of a sandbox that is not DESTROYED and of a job that has not ended are kept.
    pub events_days: Option<u32>,
    /// Jobs that ended more than this many days ago are pruned with their events (default
    /// 90; `null` keeps them). A job is kept while it has artifacts or its sandbox is not
    /// DESTROYED.
    pub jobs_days: Option<u32>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            job_log_max_lines: 20_000,
            gc_interval_secs: 3600,
            events_days: Some(30),
            jobs_days: Some(90),
        }
    }
}

/// `log:` logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format (default `auto`).
    pub format: LogFormat,
    /// `tracing` filter directive (default `info`); `AGENTLAB_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        }
    }
}
