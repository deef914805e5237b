//! A Proxmox VE API simulator that validates every request against the official schema.
//!
//! [`Simulator::start`] serves `/api2/json/…` over HTTP with PVE's token auth, envelopes, error
//! shapes and status codes, and the semantics AgentLab relies on (templates and linked clones,
//! config and storage locks, UPID tasks, power states, a guest agent that answers some time
//! after start, storages with content types and free space, several nodes). Faults can be
//! injected per endpoint ([`FaultRule`]); a [`BootHook`] sees VM starts and guest-agent file
//! writes so end-to-end tests can launch the real guest runner.

use std::collections::BTreeMap;
use std::sync::Arc;

mod acl;
mod clone;
mod cluster;
mod control;
mod dispatch;
mod faults;
mod formats;
mod guest_exec;
mod images;
mod multipart;
mod power;
mod qemu;
mod runner;
mod schema;
mod server;
mod simulator;
mod state;
mod tasks;
mod tls;
mod validate;

pub use faults::{FaultKind, FaultRule};
pub use guest_exec::{GuestExecHandler, SimExecCall, SimExecResult, echo_handler};
pub use images::UploadedFile;
pub use runner::process_boot_hook;
pub use schema::{Lookup, MethodSchema, Schema, SchemaError};
pub use server::RecordedRequest;
pub use simulator::{
    SimError, Simulator, default_schema_path, full_schema_paths, pve84_schema_path,
};
pub use state::{Power, SeedVm, SimConfig, SimNode, SimStorage};
pub use tasks::TaskTiming;
pub use tls::{SimTls, TlsSetupError};
pub use validate::validate;

use dispatch::dispatch;

/// What the boot hook is told.
#[derive(Debug, Clone)]
pub enum BootEvent {
    /// A VM finished starting.
    Started {
        /// VM id.
        vmid: u32,
        /// Node.
        node: String,
        /// Its config at start (e.g. `cicustom`, `ipconfig0`).
        config: BTreeMap<String, String>,
    },
    /// A VM stopped.
    Stopped {
        /// VM id.
        vmid: u32,
    },
    /// A file was written into the guest through the guest agent.
    FileWritten {
        /// VM id.
        vmid: u32,
        /// Guest path.
        path: String,
        /// Content.
        content: Vec<u8>,
    },
}

/// Callback for [`BootEvent`]s; called without simulator locks held.
pub type BootHook = Arc<dyn Fn(&BootEvent) + Send + Sync>;
