//! The host side of AgentLab, for `agentlabd` and for programs that embed the engine: the
//! guest listener that sandboxes talk to (bootstrap fetch, status reports, logs, artifact
//! uploads, the sandbox channel), the artifact store, and [`Host`], which wires a running
//! [`Lab`](agentlab_core::engine::Lab) from a config value with the same factory the daemon
//! uses. Backends are cargo features: `fake`, `pve`, `local`, `qemu` (`all-backends`).
//!
//! A complete program on the in-memory `fake` backend (with the `local`, `qemu` or `pve`
//! feature and `backend:` in the config, the same code drives real sandboxes; see
//! `docs/embedding.md` and the `embed_job` example for a job that runs to the end):
//!
//! ```
//! # #[cfg(feature = "fake")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agentlab_core::config::Config;
//! use agentlab_core::engine::SandboxRequest;
//! use agentlab_core::profile::Profiles;
//! use agentlab_core::SandboxState;
//!
//! let dir = tempfile::tempdir()?;
//! let d = dir.path().display();
//! // The same YAML as agentlabd's /etc/agentlab/config.yaml (docs/configuration.md).
//! let cfg = Config::from_yaml_str(
//!     &format!(
//!         "backend: fake\ndata_dir: {d}/data\nprofiles_dir: {d}/profiles\n\
//!          guest:\n  listen: 127.0.0.1:0\nnetwork:\n  manage_firewall: false\n\
//!          secrets:\n  dir: {d}/secrets\n  identity: {d}/age.key\n"
//!     ),
//!     "config.yaml",
//! )?;
//! let profiles = Profiles::from_yaml_str(
//!     "name: small\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
//!      agent:\n  command: \"true\"\n",
//!     "small.yaml",
//! )?;
//! let host = agentlab_host::Host::builder(cfg, profiles).start().await?;
//! println!("sandboxes reach the host at {}", host.guest_addr());
//!
//! let lab = host.lab();
//! let sb = lab
//!     .create_sandbox(SandboxRequest {
//!         profile: "small".into(),
//!         ..SandboxRequest::default()
//!     })
//!     .await?;
//! assert_eq!(lab.list_sandboxes(&Default::default()).await?.len(), 1);
//! let gone = lab.destroy_sandbox(sb.vmid).await?;
//! assert_eq!(gone.state, SandboxState::Destroyed);
//! host.shutdown().await;
//! # Ok(()) }
//! # #[cfg(not(feature = "fake"))]
//! # fn main() {}
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod artifact_scan;
pub mod artifacts;
pub mod channel;
pub mod error;
pub mod extract;
pub mod guest;
mod host;
pub mod host_lock;
pub mod maintenance;
mod release;
mod unmanaged;
pub mod wiring;
#[cfg(feature = "fake")]
mod wiring_fake;

pub use artifacts::ArtifactStore;
pub use channel::ChannelHub;
pub use host::{Host, HostBuilder, HostError, TICK_EVERY};
pub use host_lock::{HostLock, LockError};
pub use maintenance::DiskReport;
pub use unmanaged::Unmanaged;
pub use wiring::WiringError;
