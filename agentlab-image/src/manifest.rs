//! `manifest.json`: what an image holds and the sha256 of every output.
//!
//! The sha256 of the manifest file itself ([`manifest_sha256`]) identifies a build: `agentlab
//! template install` writes it into the template's description marker.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ImageError;
use crate::npm::NpmPackage;
use crate::spec::ImageSpec;

/// File name of the manifest in an image directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Current manifest format.
pub const MANIFEST_FORMAT: u32 = 1;

/// One installed Debian package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
}

/// The runner in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerInfo {
    /// `agent-runner --version`.
    pub version: String,
    /// `sha256:<hex>` of the binary.
    pub sha256: String,
    /// Guest protocol version it speaks.
    pub guest_protocol: u32,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// AgentLab version that built it.
    pub agentlab_version: String,
    /// [`ImageSpec::hash`].
    pub spec_hash: String,
    /// The spec as built.
    pub spec: ImageSpec,
    /// `SOURCE_DATE_EPOCH` used for the build.
    pub source_date_epoch: u64,
    /// Kernel version (empty for a rootfs-only build).
    pub kernel: String,
    /// Kernel command line for direct kernel boot.
    pub cmdline: String,
    /// Installed Debian packages, sorted by name.
    pub packages: Vec<PackageVersion>,
    /// npm packages (agent CLIs first), with installed versions.
    pub npm: Vec<NpmPackage>,
    /// The runner.
    pub runner: RunnerInfo,
    /// `output name → sha256:<hex>` (`rootfs/` is a tree hash, see [`tree_sha256`]).
    pub outputs: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self, ImageError> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).map_err(|e| ImageError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| ImageError::step("manifest", format!("{}: {e}", path.display())))
    }

    /// Writes `dir/manifest.json` (pretty, trailing newline).
    pub fn write(&self, dir: &Path) -> Result<(), ImageError> {
        let path = dir.join(MANIFEST_FILE);
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| ImageError::step("manifest", e.to_string()))?;
        text.push('\n');
        fs::write(&path, text).map_err(|e| ImageError::io(&path, e))
    }
}

/// `sha256:<hex>` of `dir/manifest.json`: the identity of a build.
pub fn manifest_sha256(dir: &Path) -> Result<String, ImageError> {
    file_sha256(&dir.join(MANIFEST_FILE))
}

/// `sha256:<hex>` of a file, streamed.
pub fn file_sha256(path: &Path) -> Result<String, ImageError> {
    let mut f = fs::File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ImageError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// `sha256:<hex>` over a directory tree: for each entry in path order, its relative path,
/// type, mode, owner and content (files) or target (symlinks).
pub fn tree_sha256(root: &Path) -> Result<String, ImageError> {
    let mut h = Sha256::new();
    let mut stack = vec![root.to_path_buf()];
    let mut entries = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(|e| ImageError::io(&dir, e))? {
            let path = e.map_err(|e| ImageError::io(&dir, e))?.path();
            let md = fs::symlink_metadata(&path).map_err(|e| ImageError::io(&path, e))?;
            if md.is_dir() {
                stack.push(path.clone());
            }
            entries.push((path, md));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, md) in entries {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        h.update(format!(
            "{}\0{:o}\0{}:{}\0",
            rel.display(),
            md.mode(),
            md.uid(),
            md.gid()
        ));
        if md.file_type().is_symlink() {
            let t = fs::read_link(&path).map_err(|e| ImageError::io(&path, e))?;
            h.update(t.as_os_str().as_encoded_bytes());
        } else if md.is_file() {
            h.update(file_sha256(&path)?.as_bytes());
        }
        h.update(b"\n");
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}
