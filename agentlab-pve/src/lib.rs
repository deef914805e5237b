//! # agentlab-pve
//!
//! Proxmox VE backend for AgentLab: [`ProxmoxHypervisor`] implements
//! [`agentlab_core::hypervisor::Hypervisor`] over the PVE REST API with an API token, and
//! [`doctor()`] checks a PVE setup. With feature `sim`, [`sim`] is a PVE API simulator that
//! validates every request against the official schema (the subset in `agentlab-pve/schema/`).
//!
//! The backend against the simulator (feature `sim`; plain HTTP on a local port, no Proxmox
//! needed):
//!
//! ```
//! # #[cfg(feature = "sim")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agentlab_core::secrets::SecretValue;
//! use agentlab_core::{Hypervisor, Vmid};
//! use agentlab_pve::sim::{SeedVm, SimConfig, Simulator, default_schema_path};
//! use agentlab_pve::{ProxmoxHypervisor, PveOptions};
//!
//! let sim = Simulator::start(SimConfig::new(default_schema_path()), "127.0.0.1:0").await?;
//! sim.add_vm(&SeedVm::template(9000, "pve1"));
//! sim.add_vm(&SeedVm::foreign(100, "pve2"));
//!
//! let cfg = sim.config();
//! let opts = PveOptions::new(
//!     sim.url(),
//!     cfg.token_id.clone(),
//!     SecretValue::new(cfg.token_secret.clone()),
//!     "local-lvm",
//! );
//! let hv = ProxmoxHypervisor::new(opts)?;
//! // Every VM id in use on the cluster, AgentLab's or not.
//! let used = hv.used_ids().await?;
//! assert!(used.contains(&Vmid::new(100)?) && used.contains(&Vmid::new(9000)?));
//! // Neither VM carries AgentLab's tag, so none is listed as managed.
//! assert!(hv.list_managed().await?.is_empty());
//! // Every request the backend sent was valid against the PVE API schema.
//! sim.assert_all_valid();
//! # Ok(()) }
//! # #[cfg(not(feature = "sim"))]
//! # fn main() {}
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod budget;
pub mod client;
mod create;
pub mod doctor;
mod doctor_nodes;
pub mod error;
mod from_config;
pub mod guest_exec;
mod hypervisor_impl;
mod journal;
pub mod lifecycle;
mod nodes;
pub mod options;
mod place;
pub mod placement;
pub mod privileges;
mod pve;
#[cfg(feature = "sim")]
pub mod sim;
pub mod task;
mod task_times;
pub mod template;
mod template_doctor;
pub mod tls;
mod upload;
mod volumes;

pub use client::CounterSnapshot;
pub use create::{ipconfig0, net0, strict_urlencode};
pub use doctor::{CheckResult, doctor};
pub use error::PveError;
pub use from_config::default_snippets_dir;
pub use lifecycle::{GUEST_BOOTSTRAP_PATH, cleanup_stale_snippets};
pub use options::{BootstrapDelivery, PollOptions, PveOptions, TlsOptions};
pub use pve::{ClusterVm, ProxmoxHypervisor};
pub use upload::{Upload, UploadProgress};
pub use volumes::WORKSPACE_DISK;
