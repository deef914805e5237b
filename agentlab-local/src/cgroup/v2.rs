//! cgroup v2: enable the controllers down the tree, then `cpu.max`, `memory.max` (swap off
//! where the kernel accounts it) and `pids.max`.

use std::path::Path;

use super::{Limits, mkdir, write};
use crate::error::LocalError;

/// Creates `dir` under `root` (enabling cpu, memory and pids for it) with `limits`.
pub(super) fn prepare(root: &Path, dir: &Path, limits: &Limits) -> Result<(), LocalError> {
    let parent = dir.parent().unwrap_or(root);
    mkdir(parent)?;
    for level in [root, parent] {
        for c in ["+cpu", "+memory", "+pids"] {
            write(level, "cgroup.subtree_control", c)?;
        }
    }
    mkdir(dir)?;
    write(
        dir,
        "cpu.max",
        &format!("{} {}", limits.quota_us, limits.period_us),
    )?;
    write(dir, "memory.max", &limits.memory.to_string())?;
    // Not every kernel has swap accounting; best effort.
    let _ = write(dir, "memory.swap.max", "0");
    write(dir, "pids.max", &limits.pids.to_string())
}
