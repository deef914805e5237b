//! cgroup v1: one directory per controller hierarchy, and the freezer used to kill a
//! sandbox's processes without letting them fork.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Limits, write};
use crate::error::LocalError;

/// Writes the limits of `controller` into its directory `dir`.
pub(super) fn limit(controller: &str, dir: &Path, limits: &Limits) -> Result<(), LocalError> {
    match controller {
        "memory" => {
            write(dir, "memory.limit_in_bytes", &limits.memory.to_string())?;
            // Memory + swap, where swap accounting exists; must follow limit_in_bytes.
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                write(
                    dir,
                    "memory.memsw.limit_in_bytes",
                    &limits.memory.to_string(),
                )?;
            }
            Ok(())
        }
        "cpu" => {
            write(dir, "cpu.cfs_period_us", &limits.period_us.to_string())?;
            write(dir, "cpu.cfs_quota_us", &limits.quota_us.to_string())
        }
        "pids" => write(dir, "pids.max", &limits.pids.to_string()),
        _ => Ok(()),
    }
}

/// Freezes the freezer cgroup `freezer` (when there is one), SIGKILLs the `members` it has
/// then, thaws (frozen processes die once thawed, without having forked meanwhile).
pub(super) fn freeze_kill_thaw(freezer: Option<&Path>, members: &dyn Fn() -> Vec<i32>) {
    let state = |value: &str| freezer.map(|d| fs::write(d.join("freezer.state"), value));
    if state("FROZEN").is_some() {
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(d) = freezer {
            let now = fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
            if now.trim() != "FREEZING" || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for pid in members() {
        crate::procs::signal(pid, Signal::SIGKILL);
    }
    let _ = state("THAWED");
}
