//! cgroup v2 limits per sandbox: `<root>/agentlab/<vmid>` with `cpu.max` (from `cpulimit`, else
//! `cores`), `memory.max` (from `memory_mb`, swap off) and `pids.max`. Used only when
//! `<root>/cgroup.controllers` lists `memory` and the hierarchy is writable; otherwise the
//! sandbox runs without limits and a warning is logged.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use agentlab_core::{Resources, Vmid};

use crate::error::LocalError;

/// The cgroup v2 hierarchy under `root`.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    root: PathBuf,
}

impl Cgroups {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// Whether limits can be applied: a cgroup v2 root with the memory controller that we
    /// may write to.
    pub fn usable(&self) -> bool {
        let controllers = fs::read_to_string(self.root.join("cgroup.controllers"));
        let has_memory = controllers.is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
        has_memory
            && fs::OpenOptions::new()
                .append(true)
                .open(self.root.join("cgroup.subtree_control"))
                .is_ok()
    }

    /// `<root>/agentlab/<vmid>`.
    pub fn dir(&self, vmid: Vmid) -> PathBuf {
        self.root.join("agentlab").join(vmid.to_string())
    }

    /// Creates the sandbox's cgroup with its limits; returns the path of its `cgroup.procs`.
    pub fn prepare(
        &self,
        vmid: Vmid,
        res: &Resources,
        pids_max: u32,
    ) -> Result<PathBuf, LocalError> {
        let parent = self.root.join("agentlab");
        fs::create_dir_all(&parent).map_err(LocalError::io("create", &parent))?;
        enable(&self.root)?;
        enable(&parent)?;
        let dir = self.dir(vmid);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(LocalError::io("create", &dir)(e)),
        }
        let period = 100_000u64;
        let cores = res.cpulimit.unwrap_or(f64::from(res.cores)).max(0.01);
        // Truncation is fine: a quota in microseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let quota = (cores * period as f64) as u64;
        let memory = u64::from(res.memory_mb) * 1024 * 1024;
        write(&dir, "cpu.max", &format!("{quota} {period}"))?;
        write(&dir, "memory.max", &memory.to_string())?;
        // Not every kernel has swap accounting; best effort.
        let _ = write(&dir, "memory.swap.max", "0");
        write(&dir, "pids.max", &pids_max.to_string())?;
        Ok(dir.join("cgroup.procs"))
    }

    /// Removes the sandbox's cgroup (its processes must be gone); a missing one is fine.
    /// Retries for a second while the kernel still counts exiting tasks (`EBUSY`).
    pub fn remove(&self, vmid: Vmid) {
        let dir = self.dir(vmid);
        for attempt in 0..100 {
            match fs::remove_dir(&dir) {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::NotFound => return,
                Err(e)
                    if e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32)
                        && attempt < 99 =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => {
                    tracing::warn!(sandbox = %vmid, error = %e, "cannot remove sandbox cgroup");
                    return;
                }
            }
        }
    }
}

fn enable(dir: &Path) -> Result<(), LocalError> {
    for c in ["+cpu", "+memory", "+pids"] {
        // A controller the parent does not offer fails; memory is what matters.
        let r = write(dir, "cgroup.subtree_control", c);
        if c == "+memory" {
            r?;
        }
    }
    Ok(())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), LocalError> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(LocalError::io("write", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_directory_is_not_a_usable_hierarchy() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!Cgroups::new(dir.path()).usable());
        fs::write(dir.path().join("cgroup.controllers"), "cpu pids").unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        assert!(!Cgroups::new(dir.path()).usable());
        fs::write(dir.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        assert!(Cgroups::new(dir.path()).usable());
    }

    #[test]
    fn limits_are_written_from_the_resources() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroups::new(dir.path());
        let vmid = Vmid::new(4242).unwrap();
        let res = Resources {
            cores: 2,
            memory_mb: 64,
            cpulimit: None,
            balloon_mb: None,
        };
        let procs = cg.prepare(vmid, &res, 77).unwrap();
        let d = cg.dir(vmid);
        assert_eq!(procs, d.join("cgroup.procs"));
        let read = |f: &str| fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read("cpu.max"), "200000 100000");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "77");
    }
}
