//! # agentlab-image
//!
//! AgentLab's guest images, built from Debian packages: [`ImageSpec`] (strict YAML,
//! `images/default.yaml`), [`build()`] (mmdebstrap → configuration → npm agent CLIs → ext4 +
//! extlinux disk → qcow2, kernel and initrd → [`Manifest`]) and the npm cache
//! ([`npm`]). One output directory serves every backend: `rootfs/` for `local.rootfs`,
//! `disk.qcow2` for Proxmox templates, `vmlinuz` + `initrd.img` for direct kernel boot.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod build;
pub mod disk;
pub mod error;
pub mod manifest;
pub mod npm;
pub mod rootfs;
pub mod spec;
pub mod testing;
pub mod tools;

pub use build::{BuildOptions, Progress, build};
pub use error::ImageError;
pub use manifest::{MANIFEST_FILE, Manifest, manifest_sha256};
pub use rootfs::BASE_PACKAGES;
pub use spec::{AgentCli, AgentSpec, FileSpec, ImageSpec};
