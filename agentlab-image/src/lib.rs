//! # agentlab-image
//!
//! AgentLab's guest images, built from Debian packages: [`ImageSpec`] (strict YAML,
//! `images/default.yaml`), [`build()`] (mmdebstrap → configuration → npm agent CLIs → ext4 +
//! extlinux disk → qcow2, kernel and initrd → [`Manifest`]) and the npm cache
//! ([`npm`]). One output directory serves every backend: `rootfs/` for `local.rootfs`,
//! `disk.qcow2` for Proxmox templates, `vmlinuz` + `initrd.img` for direct kernel boot.
//!
//! Loading a spec needs neither root nor the build tools; mistakes come back as
//! [`ImageError::Spec`] with the file, line, field and a suggestion for typos:
//!
//! ```
//! use agentlab_core::yaml::ErrorKind;
//! use agentlab_image::{AgentCli, ImageError, ImageSpec};
//!
//! let spec = ImageSpec::from_yaml(
//!     "suite: bookworm\ndisk_size: 8G\npackages: [git]\n\
//!      agents:\n  - name: codex\n    version: 0.40.0\n",
//!     "image.yaml",
//! )?;
//! assert_eq!(spec.agents[0].name, AgentCli::Codex);
//! assert_eq!(spec.disk_bytes(), Some(8 << 30));
//! // Agents first, then `npm_packages`, as `npm install` specs.
//! assert_eq!(spec.npm_specs(), ["@openai/codex@0.40.0"]);
//!
//! let err = ImageSpec::from_yaml("suite: bookworm\npackagse: [git]\n", "image.yaml")
//!     .unwrap_err();
//! let ImageError::Spec(details) = &err else { panic!("{err}") };
//! assert_eq!(details.kind, ErrorKind::UnknownField);
//! assert_eq!(details.line, Some(2));
//! assert_eq!(details.suggestion.as_deref(), Some("packages"));
//! # Ok::<(), ImageError>(())
//! ```
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
