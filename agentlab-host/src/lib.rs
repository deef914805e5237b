//! The host side of AgentLab, for `agentlabd` and for programs that embed the engine: the
//! guest listener that sandboxes talk to (bootstrap fetch, status reports, logs, artifact
//! uploads, the sandbox channel), the artifact store, and [`Host`], which wires a running
//! [`Lab`](agentlab_core::engine::Lab) from a config value with the same factory the daemon
//! uses. Backends are cargo features: `fake`, `pve`, `local`, `qemu` (`all-backends`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use agentlab_core::config::Config;
//! use agentlab_core::engine::JobRequest;
//! use agentlab_core::profile::Profiles;
//!
//! let cfg = Config::load(std::path::Path::new("/etc/agentlab/config.yaml"))?;
//! let profiles = Profiles::load_dir(&cfg.profiles_dir)?;
//! let host = agentlab_host::Host::builder(cfg, profiles).start().await?;
//! let job = host
//!     .lab()
//!     .run_job(JobRequest {
//!         repo: "https://example.com/repo.git".into(),
//!         task: "fix the failing test".into(),
//!         profile: "yolo-ephemeral".into(),
//!         ..JobRequest::default()
//!     })
//!     .await?;
//! println!("job {} queued", job.id);
//! host.shutdown().await;
//! # Ok(()) }
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
pub mod maintenance;
mod release;
mod unmanaged;
pub mod wiring;
#[cfg(feature = "fake")]
mod wiring_fake;

pub use artifacts::ArtifactStore;
pub use channel::ChannelHub;
pub use host::{Host, HostBuilder, HostError, TICK_EVERY};
pub use maintenance::DiskReport;
pub use unmanaged::Unmanaged;
pub use wiring::WiringError;
