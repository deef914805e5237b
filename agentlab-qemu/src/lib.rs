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
//! Running sandboxes requires root (tap devices). See `docs/qemu-backend.md`.
//!
//! The command line of a sandbox is rendered by [`args::build`], a pure function, so it can be
//! inspected without QEMU or root (the spec here is a sample from `agentlab-core`'s
//! conformance kit):
//!
//! ```
//! use std::path::Path;
//!
//! use agentlab_core::Vmid;
//! use agentlab_core::config::QemuAccel;
//! use agentlab_core::testkit::hypervisor::ConformanceEnv;
//! use agentlab_qemu::args::{self, VmArgs};
//! use agentlab_qemu::{Boot, QemuOptions, accel, tap_name};
//!
//! let opts = QemuOptions::new("/var/lib/agentlab/qemu", "/var/lib/agentlab/images/default");
//! assert_eq!(opts.boot, Boot::Disk); // q35 boots the image's disk by default
//! let vmid = Vmid::new(9100)?;
//! let spec = ConformanceEnv::fake().spec(vmid);
//! let tap = tap_name(vmid);
//! assert_eq!(tap, "alq9100");
//!
//! let argv = args::build(&VmArgs {
//!     spec: &spec,
//!     dir: &opts.state_dir.join("9100"),
//!     accel: accel::choose(QemuAccel::Tcg)?, // always TCG, whether or not KVM works
//!     machine: opts.machine,
//!     boot: opts.boot,
//!     kernel: None,
//!     cmdline: String::new(),
//!     tap: &tap,
//!     volume: None,
//!     seed: None,
//! })
//! .join(" ");
//! assert!(argv.starts_with("-name agentlab-9100,process=agentlab-9100 -machine q35 -accel tcg"));
//! assert!(argv.contains(&format!("-sandbox {}", args::SANDBOX)));
//! assert!(argv.contains("-netdev tap,id=net0,ifname=alq9100,script=no,downscript=no"));
//! assert!(argv.contains("-qmp unix:/var/lib/agentlab/qemu/9100/qmp.sock,server=on,wait=off"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
