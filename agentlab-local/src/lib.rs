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
//! Creating and starting sandboxes requires root. See `docs/local-backend.md`.
//!
//! Building the backend and reading its state does not: a fresh state directory holds no
//! sandboxes, and the names a sandbox gets follow from the options.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agentlab_core::{Hypervisor, HypervisorError, Vmid};
//! use agentlab_local::{LocalHypervisor, LocalOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let opts = LocalOptions::new(dir.path().join("local"), "/usr/local/bin/agent-runner");
//! let vmid = Vmid::new(101)?;
//! // Sandbox 101 gets network namespace `al-101` and host-side veth `al101h` on `agentlab0`.
//! assert_eq!(opts.netns_name(vmid), "al-101");
//! assert_eq!(LocalOptions::host_veth(vmid), "al101h");
//! assert_eq!(opts.bridge, "agentlab0");
//!
//! let hv = LocalHypervisor::new(opts);
//! assert_eq!(hv.name(), "local");
//! assert!(hv.list_managed().await?.is_empty());
//! assert!(matches!(hv.status(vmid).await, Err(HypervisorError::NotFound(_))));
//! # Ok(()) }
//! ```
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
