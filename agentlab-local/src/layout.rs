//! On-disk state: one directory per sandbox, `<state_dir>/<vmid>/`, holding `spec.json` (the
//! [`Record`]), `etc/` (the generated
//! `/etc` files), `home/` (the sandbox's writable `/home/agent`) and `runner.log`; and one
//! directory per workspace volume, `<state_dir>/volumes/<workspace>/` with `data/` and an
//! `attached` file naming the sandbox using it.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use agentlab_core::{VmSpec, Vmid, VolumeId};
use serde::{Deserialize, Serialize};

use crate::error::LocalError;

/// What is stored per sandbox in `spec.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The last spec given to `create`/`configure`.
    pub spec: VmSpec,
    /// The attached workspace volume, bound at `/work` on the next start.
    #[serde(default)]
    pub volume: Option<VolumeId>,
    /// The sandbox's subordinate id slot (see [`crate::idmap`]); `None` in records written
    /// before slots existed (one is allocated at the next start).
    #[serde(default)]
    pub slot: Option<u32>,
    /// Device and inode of the sandbox's network namespace, recorded at create: finds its
    /// processes even where `/run/netns/<name>` is not visible.
    #[serde(default)]
    pub netns_id: Option<(u64, u64)>,
}

/// Paths under the state directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub fn vm_dir(&self, vmid: Vmid) -> PathBuf {
        self.root.join(vmid.to_string())
    }

    pub fn record_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("spec.json")
    }

    /// Where versions before the stdin delivery kept the bootstrap data (removed at start).
    pub fn legacy_bootstrap_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("bootstrap.json")
    }

    pub fn log_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("runner.log")
    }

    pub fn pid_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("pid")
    }

    pub fn etc_dir(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("etc")
    }

    /// Where `create` builds the sandbox directory before renaming it into place.
    pub fn creating_dir(&self, vmid: Vmid) -> PathBuf {
        self.root.join(format!(".creating-{vmid}"))
    }

    pub fn home_dir(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("home")
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    pub fn volume_dir(&self, volume: &VolumeId) -> PathBuf {
        self.volumes_dir().join(&volume.0)
    }

    /// Creates `path` (and parents) with mode 0700.
    pub fn mkdir(path: &Path) -> Result<(), LocalError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(LocalError::io("create", path))
    }

    /// The sandbox's record; `None` when the sandbox does not exist.
    pub fn load(&self, vmid: Vmid) -> Result<Option<Record>, LocalError> {
        let path = self.record_path(vmid);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LocalError::io("read", &path)(e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| LocalError::Corrupt {
                path,
                message: e.to_string(),
            })
    }

    /// Saves the record atomically.
    pub fn save(&self, record: &Record) -> Result<(), LocalError> {
        let path = self.record_path(record.spec.vmid);
        let json = serde_json::to_vec_pretty(record).map_err(|e| LocalError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &json)
    }

    /// Half-made sandbox directories (a crash during `create` or `destroy`): `.creating-*`
    /// build directories, and numbered directories without a record.
    pub fn incomplete(&self) -> Vec<(PathBuf, Option<Vmid>)> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                if let Some(id) = name.strip_prefix(".creating-") {
                    return Some((e.path(), id.parse().ok().and_then(|n| Vmid::new(n).ok())));
                }
                let vmid = Vmid::new(name.parse().ok()?).ok()?;
                (!self.record_path(vmid).exists()).then(|| (e.path(), Some(vmid)))
            })
            .collect()
    }

    /// Records `pid` (the outer `bwrap`) with its start time.
    pub fn write_pid(&self, vmid: Vmid, pid: i32) {
        if let Some((pid, start)) = crate::procs::identity(pid) {
            let _ = write_atomic(&self.pid_path(vmid), format!("{pid} {start}\n").as_bytes());
        }
    }

    /// The pid file's pid and start time (`None` when absent or from an older format).
    pub fn read_pid(&self, vmid: Vmid) -> Option<(i32, u64)> {
        let text = fs::read_to_string(self.pid_path(vmid)).ok()?;
        let mut words = text.split_whitespace();
        Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
    }

    /// Every sandbox directory with a record, in id order.
    pub fn list(&self) -> Result<Vec<Vmid>, LocalError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LocalError::io("list", &self.root)(e)),
        };
        let mut ids: Vec<Vmid> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|n| Vmid::new(n).ok())
            .filter(|v| self.record_path(*v).is_file())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

/// Writes `data` to `path` with mode 0600 through a temp file and a rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), LocalError> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(LocalError::io("write", &tmp))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(LocalError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(LocalError::io("rename", path))
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<(), LocalError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LocalError::io("remove", path)(e)),
    }
}
