//! [`LocalOptions`]: the local backend's settings, built from the daemon config or by hand
//! (tests inject their own data dir, bridge namespace, netns prefix and cgroup root).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentlab_core::config::Config;

/// Settings of a [`crate::LocalHypervisor`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// State directory; sandboxes live in `<state_dir>/<vmid>/`, volumes in
    /// `<state_dir>/volumes/<workspace>/` (normally `<data_dir>/local`).
    pub state_dir: PathBuf,
    /// The `agent-runner` binary (or any program) run as the sandbox's first process.
    pub runner_path: PathBuf,
    /// Arguments given to the runner.
    pub runner_args: Vec<String>,
    /// Read-only root filesystem; `None` = the host's `/usr` read-only with a generated `/etc`.
    pub rootfs: Option<PathBuf>,
    /// The bridge the host side of each veth joins.
    pub bridge: String,
    /// Network namespace holding the bridge; `None` = the daemon's own (tests use a router
    /// namespace so nothing touches the host's network).
    pub bridge_netns: Option<String>,
    /// Prefix of each sandbox's network namespace name (`al-` gives `al-<vmid>`).
    pub netns_prefix: String,
    /// cgroup mount point: a cgroup v2 hierarchy (`<cgroup_root>/cgroup.controllers`) or a
    /// directory of cgroup v1 hierarchies (`<cgroup_root>/{memory,cpu,pids,freezer}`).
    pub cgroup_root: PathBuf,
    /// Name of the parent cgroup of every sandbox (`<hierarchy>/<cgroup_name>/<vmid>`).
    pub cgroup_name: String,
    /// Start sandboxes without resource limits when the cgroups cannot enforce them
    /// (otherwise such a sandbox is refused).
    pub allow_unlimited: bool,
    /// First host id of the sandboxes' subordinate uid/gid ranges (65536 ids per sandbox).
    pub uid_base: u32,
    /// How many ranges follow `uid_base` (the most sandboxes that can exist at once).
    pub uid_slots: u32,
    /// `pids.max` per sandbox.
    pub pids_max: u32,
    /// Nameservers written to the sandbox's `/etc/resolv.conf`.
    pub nameservers: Vec<IpAddr>,
    /// The bubblewrap binary.
    pub bwrap_path: PathBuf,
    /// How long `start` waits for the runner to be running inside the sandbox.
    pub start_timeout: Duration,
}

/// The runner's arguments inside the sandbox.
pub const DEFAULT_RUNNER_ARGS: [&str; 6] = [
    "--secrets-dir",
    "/run/agentlab/secrets",
    "--work-dir",
    "/home/agent/.agentlab",
    "--agent-home",
    "/home/agent",
];

impl LocalOptions {
    /// Defaults around `state_dir` and `runner_path`: bridge `agentlab0` in the daemon's
    /// namespace, netns prefix `al-`, cgroups `agentlab/<vmid>` under `/sys/fs/cgroup` (limits
    /// required), `pids.max` 4096, uid ranges from 1879048192 (4096 slots), nameservers 1.1.1.1
    /// and 9.9.9.9, `/usr/bin/bwrap`, 10 s start timeout.
    pub fn new(state_dir: impl Into<PathBuf>, runner_path: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            runner_path: runner_path.into(),
            runner_args: DEFAULT_RUNNER_ARGS.map(str::to_owned).to_vec(),
            rootfs: None,
            bridge: "agentlab0".to_owned(),
            bridge_netns: None,
            netns_prefix: "al-".to_owned(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_name: "agentlab".to_owned(),
            allow_unlimited: false,
            uid_base: 1_879_048_192,
            uid_slots: 4096,
            pids_max: 4096,
            nameservers: vec![[1, 1, 1, 1].into(), [9, 9, 9, 9].into()],
            bwrap_path: PathBuf::from("/usr/bin/bwrap"),
            start_timeout: Duration::from_secs(10),
        }
    }

    /// From the daemon config: `<data_dir>/local`, `local.runner_path` (default:
    /// `agent-runner` next to the running executable), `local.rootfs`, `local.bridge`,
    /// `local.allow_unlimited`, `local.uid_base`, `local.uid_slots`.
    pub fn from_config(cfg: &Config) -> Self {
        let runner = cfg.local.runner_path.clone().unwrap_or_else(default_runner);
        let mut opts = Self::new(cfg.data_dir.join("local"), runner);
        opts.rootfs.clone_from(&cfg.local.rootfs);
        opts.bridge.clone_from(&cfg.local.bridge);
        opts.allow_unlimited = cfg.local.allow_unlimited;
        opts.uid_base = cfg.local.uid_base;
        opts.uid_slots = cfg.local.uid_slots;
        opts
    }

    /// The network namespace name of `vmid`.
    pub fn netns_name(&self, vmid: agentlab_core::Vmid) -> String {
        format!("{}{vmid}", self.netns_prefix)
    }

    /// The host-side veth of `vmid` (`al<vmid>h`, at most 12 characters).
    pub fn host_veth(vmid: agentlab_core::Vmid) -> String {
        format!("al{vmid}h")
    }
}

/// `agent-runner` next to the current executable, else `/usr/local/bin/agent-runner`.
fn default_runner() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("agent-runner"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| Path::new("/usr/local/bin/agent-runner").to_owned())
}
