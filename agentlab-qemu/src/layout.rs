//! On-disk state: `<state_dir>/<vmid>/` per sandbox (`vm.json` written last, so a directory
//! without it is half-made and removed at start-up), `<state_dir>/volumes/<ws>.qcow2` per
//! workspace volume.

use std::fs;
use std::path::{Path, PathBuf};

use agentlab_core::{VmSpec, Vmid, VolumeId};
use serde::{Deserialize, Serialize};

use crate::error::QemuError;

/// The record of one sandbox (`vm.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VmRecord {
    /// The spec of the last create/configure.
    pub spec: VmSpec,
    /// Whether `configure` ran.
    pub configured: bool,
    /// The attached workspace volume.
    pub volume: Option<VolumeId>,
}

/// Paths below the state directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn vm_dir(&self, vmid: Vmid) -> PathBuf {
        self.root.join(vmid.to_string())
    }

    pub fn record_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("vm.json")
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    pub fn volume_path(&self, vol: &VolumeId) -> PathBuf {
        self.volumes_dir().join(format!("{}.qcow2", vol.0))
    }

    /// Creates `dir` (and parents) with mode 0700.
    pub fn mkdir(dir: &Path) -> Result<(), QemuError> {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(QemuError::io("create", dir))
    }

    pub fn load(&self, vmid: Vmid) -> Result<Option<VmRecord>, QemuError> {
        let path = self.record_path(vmid);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| QemuError::Corrupt {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(QemuError::io("read", &path)(e)),
        }
    }

    /// Writes the record atomically (temp file + rename).
    pub fn save(&self, vmid: Vmid, rec: &VmRecord) -> Result<(), QemuError> {
        let path = self.record_path(vmid);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| QemuError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        fs::write(&tmp, bytes).map_err(QemuError::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(QemuError::io("rename", &tmp))
    }

    /// Every sandbox directory's vmid, complete (`vm.json`) or not.
    pub fn dirs(&self) -> Result<Vec<(Vmid, bool)>, QemuError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(QemuError::io("list", &self.root)(e)),
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(vmid) = name
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(|n| Vmid::new(n).ok())
            else {
                continue;
            };
            out.push((vmid, self.record_path(vmid).is_file()));
        }
        out.sort_by_key(|(v, _)| v.get());
        Ok(out)
    }

    /// Complete sandboxes.
    pub fn list(&self) -> Result<Vec<Vmid>, QemuError> {
        Ok(self
            .dirs()?
            .into_iter()
            .filter_map(|(v, complete)| complete.then_some(v))
            .collect())
    }
}
