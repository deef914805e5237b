//! # agentlab-qemu
//!
//! The `qemu` [`Hypervisor`](agentlab_core::Hypervisor) backend: each sandbox is a real VM run
//! by `qemu-system-x86_64` on this host, driven over QMP (power, status) and the QEMU guest
//! agent (bootstrap file, guest address, the exec fallback), both through the `qapi` crate.
//!
//! - [`QemuOptions`]: image, machine, acceleration, state directory, bridge namespace.
//! - [`QemuHypervisor`]: implements the trait. A sandbox is a directory under
//!   `<data_dir>/qemu/<vmid>/` (record, qcow2 overlay over the image, QMP and agent sockets,
//!   pid file, console log); its QEMU process runs detached (`-daemonize`), so a restarted
//!   daemon finds it again by pid file, `/proc/<pid>/cmdline` and the QMP socket.
//! - [`accel::choose`]: `auto | kvm | tcg`.
//!
//! Requires root (tap devices). See `docs/qemu-backend.md`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod accel;
pub mod args;
mod error;
mod guest_exec;
mod hypervisor;
mod layout;
mod lifecycle;
mod net;
mod ops;
mod options;
mod proc;
mod qga;
mod qmp;
pub mod seed;
mod volumes;

pub use error::QemuError;
pub use hypervisor::QemuHypervisor;
pub use net::tap_name;
pub use options::{Boot, QemuOptions};
