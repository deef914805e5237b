//! # agentlab-pve
//!
//! Proxmox VE backend for AgentLab: [`ProxmoxHypervisor`] implements
//! [`agentlab_core::hypervisor::Hypervisor`] over the PVE REST API with an API token, and
//! [`doctor()`] checks a PVE setup. With feature `sim`, [`sim`] is a PVE API simulator that
//! validates every request against the official schema (the subset in `agentlab-pve/schema/`).
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
