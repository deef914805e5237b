//! # agentlab-local
//!
//! The `local` [`Hypervisor`](agentlab_core::Hypervisor) backend: each sandbox is a process tree
//! started with bubblewrap (`bwrap`) inside its own network namespace (`al-<vmid>`), attached to
//! AgentLab's bridge through a veth pair, with the real `agent-runner` as its first process.
//!
//! - [`LocalOptions`]: where state lives, which runner, bridge, cgroup root.
//! - [`LocalHypervisor`]: implements the trait; state survives a daemon restart because every
//!   sandbox is a directory under `<data_dir>/local/` and its processes are found again through
//!   their network namespace, cgroups and pid file. Each sandbox runs in its own user
//!   namespace mapped to a subordinate host id range, never as host root.
//! - [`setup_bridge`]: creates the agent bridge and enables forwarding (host setup);
//!   [`LocalHypervisor::from_config`] does that and builds the backend for the daemon.
//!
//! Requires root. See `docs/local-backend.md`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cgroup;
mod error;
mod hypervisor;
mod idmap;
pub mod image;
mod layout;
mod net;
mod ops;
mod options;
mod procs;
mod sandbox;
mod seccomp;
mod setup;
mod teardown;
mod usage;
mod volumes;

pub use error::LocalError;
pub use hypervisor::LocalHypervisor;
pub use net::setup_bridge;
pub use options::LocalOptions;
pub use sandbox::{INIT_PATH_INSIDE, RUNNER_PATH_INSIDE};
pub use setup::bridge_net_config;
