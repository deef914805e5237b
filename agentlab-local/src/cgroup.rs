//! Per-sandbox resource limits through cgroups, v2 or v1, whichever the host has:
//! - v2: `<root>/cgroup.controllers` exists; the sandbox gets `<root>/<name>/<vmid>` with
//!   `cpu.max`, `memory.max` (swap off) and `pids.max` ([`v2`]);
//! - v1: `<root>/{memory,cpu,pids}` are controller hierarchies; the sandbox gets
//!   `<root>/<ctrl>/<name>/<vmid>` in each, plus `freezer` when mounted, with
//!   `memory.limit_in_bytes`, `cpu.cfs_quota_us`/`cpu.cfs_period_us` and `pids.max` ([`v1`]).
//!
//! [`Cgroups::detect`] names the controllers that are missing; the caller refuses the sandbox
//! unless running without limits is allowed. The cgroups are also how `stop`/`destroy` find,
//! freeze and kill a sandbox's processes without relying on mounts.

mod v1;
mod v2;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentlab_core::{Resources, Vmid};

use crate::error::LocalError;

/// The controllers a sandbox's limits need.
const REQUIRED: [&str; 3] = ["memory", "cpu", "pids"];
/// v1 hierarchies a sandbox joins (freezer only when mounted).
const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "freezer"];

/// Which cgroup layout the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// The unified hierarchy at the root.
    V2,
    /// One hierarchy per controller under the root; `freezer` when it is mounted.
    V1 {
        /// Whether `<root>/freezer` is a usable hierarchy.
        freezer: bool,
    },
}

/// The limits wanted for one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// CPU quota in microseconds per `period_us`.
    pub quota_us: u64,
    /// CPU period in microseconds.
    pub period_us: u64,
    /// Memory limit in bytes.
    pub memory: u64,
    /// Most processes/threads.
    pub pids: u32,
}

impl Limits {
    /// From the spec's resources: `cpulimit` (else `cores`) × 100 ms per 100 ms, `memory_mb`.
    pub fn new(res: &Resources, pids: u32) -> Self {
        let period_us = 100_000u64;
        let cores = res.cpulimit.unwrap_or(f64::from(res.cores)).max(0.01);
        // Truncation is fine: a quota in microseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let quota_us = (cores * period_us as f64) as u64;
        Self {
            quota_us,
            period_us,
            memory: u64::from(res.memory_mb) * 1024 * 1024,
            pids,
        }
    }
}

/// The cgroups of every sandbox: `<root>[/<ctrl>]/<name>/<vmid>`.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    root: PathBuf,
    name: String,
}

/// Whether `path` can be opened for appending (a writable control file).
fn writable(path: &Path) -> bool {
    fs::OpenOptions::new().append(true).open(path).is_ok()
}

impl Cgroups {
    pub fn new(root: &Path, name: &str) -> Self {
        Self {
            root: root.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The hierarchy that can enforce every limit, or `Err` naming what is missing.
    pub fn detect(&self) -> Result<Hierarchy, LocalError> {
        let missing = |what: Vec<&str>, why: String| LocalError::LimitsUnavailable {
            missing: what.join(", "),
            detail: why,
        };
        if let Ok(text) = fs::read_to_string(self.root.join("cgroup.controllers")) {
            let have: Vec<&str> = text.split_whitespace().collect();
            let absent: Vec<&str> = REQUIRED.into_iter().filter(|c| !have.contains(c)).collect();
            if !absent.is_empty() {
                return Err(missing(
                    absent,
                    format!(
                        "not offered by the cgroup v2 hierarchy {}",
                        self.root.display()
                    ),
                ));
            }
            if !writable(&self.root.join("cgroup.subtree_control")) {
                return Err(missing(
                    REQUIRED.to_vec(),
                    format!(
                        "the cgroup v2 hierarchy {} is not writable",
                        self.root.display()
                    ),
                ));
            }
            return Ok(Hierarchy::V2);
        }
        let absent: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|c| !writable(&self.root.join(c).join("cgroup.procs")))
            .collect();
        if absent.is_empty() {
            let freezer = writable(&self.root.join("freezer").join("cgroup.procs"));
            return Ok(Hierarchy::V1 { freezer });
        }
        Err(missing(
            absent,
            format!(
                "no cgroup v2 hierarchy and no writable cgroup v1 hierarchy for them under {}",
                self.root.display()
            ),
        ))
    }

    /// Every directory the sandbox's cgroups may occupy (v2 and v1 candidates).
    fn candidates(&self, vmid: Vmid) -> Vec<PathBuf> {
        let id = vmid.to_string();
        let mut dirs = vec![self.root.join(&self.name).join(&id)];
        dirs.extend(
            V1_CONTROLLERS
                .iter()
                .map(|c| self.root.join(c).join(&self.name).join(&id)),
        );
        dirs
    }

    /// The sandbox's cgroup directories that exist.
    pub fn dirs(&self, vmid: Vmid) -> Vec<PathBuf> {
        self.candidates(vmid)
            .into_iter()
            .filter(|d| d.is_dir())
            .collect()
    }

    /// The v2 directory, or the v1 directory of `controller`.
    pub fn dir(&self, h: &Hierarchy, controller: &str, vmid: Vmid) -> PathBuf {
        match h {
            Hierarchy::V2 => self.root.join(&self.name).join(vmid.to_string()),
            Hierarchy::V1 { .. } => self
                .root
                .join(controller)
                .join(&self.name)
                .join(vmid.to_string()),
        }
    }

    /// Creates the sandbox's cgroups with `limits`; returns the `cgroup.procs` files the
    /// sandbox's first process must join.
    pub fn prepare(
        &self,
        h: &Hierarchy,
        vmid: Vmid,
        limits: &Limits,
    ) -> Result<Vec<PathBuf>, LocalError> {
        match h {
            Hierarchy::V2 => {
                let dir = self.dir(h, "", vmid);
                v2::prepare(&self.root, &dir, limits)?;
                Ok(vec![dir.join("cgroup.procs")])
            }
            Hierarchy::V1 { freezer } => {
                let mut procs = Vec::new();
                for c in V1_CONTROLLERS {
                    if c == "freezer" && !freezer {
                        continue;
                    }
                    let dir = self.dir(h, c, vmid);
                    mkdir(&dir)?;
                    v1::limit(c, &dir, limits)?;
                    procs.push(dir.join("cgroup.procs"));
                }
                Ok(procs)
            }
        }
    }

    /// Pids in any of the sandbox's cgroups.
    pub fn members(&self, vmid: Vmid) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs(vmid)
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills every member without giving it a chance to fork: `cgroup.kill` on v2, freeze,
    /// SIGKILL, thaw on v1 (SIGKILL alone without a freezer).
    pub fn kill(&self, vmid: Vmid) {
        for dir in self.dirs(vmid) {
            if dir.join("cgroup.kill").exists() {
                let _ = fs::write(dir.join("cgroup.kill"), "1");
            }
        }
        let freezer = self
            .dirs(vmid)
            .into_iter()
            .find(|d| d.join("freezer.state").exists());
        v1::freeze_kill_thaw(freezer.as_deref(), &|| self.members(vmid));
    }

    /// Removes the sandbox's cgroups (its processes must be gone). Fails when one stays.
    pub fn remove(&self, vmid: Vmid) -> Result<(), LocalError> {
        for dir in self.dirs(vmid) {
            remove_dir(&dir)?;
        }
        Ok(())
    }
}

/// Creates `dir` (and parents); an existing one is fine.
pub(crate) fn mkdir(dir: &Path) -> Result<(), LocalError> {
    fs::create_dir_all(dir).map_err(LocalError::io("create", dir))
}

/// Writes a control file.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), LocalError> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(LocalError::io("write", &path))
}

/// `rmdir`, retried for a second while the kernel still counts exiting tasks (`EBUSY`). A
/// directory of plain files (a stand-in hierarchy in tests) is removed as a tree.
fn remove_dir(dir: &Path) -> Result<(), LocalError> {
    for attempt in 0..100 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => {
                return crate::layout::remove_tree(dir);
            }
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32) && attempt < 99 => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(LocalError::io("remove", dir)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cores: u32, memory_mb: u32, cpulimit: Option<f64>) -> Resources {
        Resources {
            cores,
            memory_mb,
            cpulimit,
            balloon_mb: None,
        }
    }

    #[test]
    fn a_root_without_controllers_is_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroups::new(dir.path(), "agentlab");
        let err = cg.detect().unwrap_err().to_string();
        assert!(err.contains("memory, cpu, pids"), "{err}");
        fs::write(dir.path().join("cgroup.controllers"), "cpu pids").unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        let err = cg.detect().unwrap_err().to_string();
        assert!(err.contains("memory") && !err.contains("cpu,"), "{err}");
        fs::write(dir.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        assert_eq!(cg.detect().unwrap(), Hierarchy::V2);
    }

    #[test]
    fn v1_controllers_are_found_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for c in ["memory", "cpu"] {
            fs::create_dir_all(dir.path().join(c)).unwrap();
            fs::write(dir.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let cg = Cgroups::new(dir.path(), "agentlab");
        let err = cg.detect().unwrap_err().to_string();
        assert!(err.contains("pids") && !err.contains("memory"), "{err}");
        fs::create_dir_all(dir.path().join("pids")).unwrap();
        fs::write(dir.path().join("pids/cgroup.procs"), "").unwrap();
        assert_eq!(cg.detect().unwrap(), Hierarchy::V1 { freezer: false });
    }

    #[test]
    fn v2_limits_are_written_from_the_resources() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroups::new(dir.path(), "agentlab");
        let vmid = Vmid::new(4242).unwrap();
        let limits = Limits::new(&res(2, 64, None), 77);
        let procs = cg.prepare(&Hierarchy::V2, vmid, &limits).unwrap();
        let d = cg.dir(&Hierarchy::V2, "", vmid);
        assert_eq!(procs, vec![d.join("cgroup.procs")]);
        let read = |f: &str| fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read("cpu.max"), "200000 100000");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "77");
        cg.remove(vmid).unwrap();
        assert!(cg.dirs(vmid).is_empty());
    }

    #[test]
    fn v1_limits_go_into_each_controller() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroups::new(dir.path(), "al");
        let vmid = Vmid::new(4243).unwrap();
        let h = Hierarchy::V1 { freezer: true };
        let limits = Limits::new(&res(4, 32, Some(0.5)), 9);
        let procs = cg.prepare(&h, vmid, &limits).unwrap();
        assert_eq!(procs.len(), 4);
        let read = |c: &str, f: &str| fs::read_to_string(cg.dir(&h, c, vmid).join(f)).unwrap();
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(read("pids", "pids.max"), "9");
        assert!(cg.dir(&h, "freezer", vmid).is_dir());
        assert_eq!(cg.dirs(vmid).len(), 4);
    }
}
