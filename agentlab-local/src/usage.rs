//! [`ProcessUsage`](agentlab_core::ProcessUsage) of the local backend: what a running
//! sandbox's process tree uses, read from its cgroup (CPU time and memory charged to it,
//! which includes processes that already exited) or, where the cgroup does not account it
//! (a cgroup v1 `cpu` controller without `cpuacct`), summed over its live processes from
//! `/proc`. Idle stop reads the CPU time; `agentlab sandbox show` prints both.

use std::fs;
use std::path::Path;

use agentlab_core::{HypervisorError, VmUsage, Vmid};

use crate::ops::Inner;
use crate::procs;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux
/// architecture).
const USER_HZ: f64 = 100.0;

impl Inner {
    /// The sandbox's use, `None` when it does not run.
    pub(crate) fn usage(&self, vmid: Vmid) -> Result<Option<VmUsage>, HypervisorError> {
        self.record(vmid)?;
        let running = self.procs(vmid);
        let Some(first) = running.first() else {
            return Ok(None);
        };
        let pid = procs::inits(&running).first().copied().unwrap_or(first.pid);
        let dirs = self.cgroups.dirs(vmid);
        let cpu_seconds = dirs
            .iter()
            .find_map(|d| cgroup_cpu_seconds(d))
            .unwrap_or_else(|| running.iter().filter_map(|p| proc_cpu_seconds(p.pid)).sum());
        let rss_bytes = dirs
            .iter()
            .find_map(|d| cgroup_memory_bytes(d))
            .unwrap_or_else(|| running.iter().filter_map(|p| proc_rss_bytes(p.pid)).sum());
        Ok(Some(VmUsage {
            pid: u32::try_from(pid).unwrap_or_default(),
            rss_bytes,
            cpu_seconds,
        }))
    }
}

/// CPU time charged to a cgroup: `usage_usec` of v2 `cpu.stat`, or v1 `cpuacct.usage` (ns).
fn cgroup_cpu_seconds(dir: &Path) -> Option<f64> {
    if let Ok(stat) = fs::read_to_string(dir.join("cpu.stat")) {
        let usec = stat.lines().find_map(|l| {
            l.strip_prefix("usage_usec ")
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        if let Some(usec) = usec {
            return Some(usec as f64 / 1e6);
        }
    }
    let ns: u64 = fs::read_to_string(dir.join("cpuacct.usage"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(ns as f64 / 1e9)
}

/// Memory charged to a cgroup: v2 `memory.current` or v1 `memory.usage_in_bytes`.
fn cgroup_memory_bytes(dir: &Path) -> Option<u64> {
    ["memory.current", "memory.usage_in_bytes"]
        .iter()
        .find_map(|f| fs::read_to_string(dir.join(f)).ok()?.trim().parse().ok())
}

/// User + system time of a process and its waited-for children (`/proc/<pid>/stat` fields
/// 14–17).
fn proc_cpu_seconds(pid: i32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) is the 12th after the comm.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Some(ticks as f64 / USER_HZ)
}

/// Resident memory of a process (`VmRSS` of `/proc/<pid>/status`).
fn proc_rss_bytes(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_counters_of_both_versions_are_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        )
        .unwrap();
        fs::write(dir.path().join("memory.current"), "1048576\n").unwrap();
        assert_eq!(cgroup_cpu_seconds(dir.path()), Some(2.5));
        assert_eq!(cgroup_memory_bytes(dir.path()), Some(1_048_576));

        // v1: cpu.stat without usage_usec (the cpu controller's throttling figures).
        let v1 = tempfile::tempdir().unwrap();
        fs::write(v1.path().join("cpu.stat"), "nr_periods 0\nnr_throttled 0\n").unwrap();
        assert_eq!(cgroup_cpu_seconds(v1.path()), None);
        fs::write(v1.path().join("cpuacct.usage"), "1500000000\n").unwrap();
        assert_eq!(cgroup_cpu_seconds(v1.path()), Some(1.5));
        fs::write(v1.path().join("memory.usage_in_bytes"), "4096\n").unwrap();
        assert_eq!(cgroup_memory_bytes(v1.path()), Some(4096));
    }

    #[test]
    fn this_process_has_cpu_time_and_resident_memory() {
        // Burn a little CPU so the counter is above zero at 100 ticks per second.
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let pid = i32::try_from(std::process::id()).unwrap();
        assert!(proc_cpu_seconds(pid).unwrap() > 0.0);
        assert!(proc_rss_bytes(pid).unwrap() > 0);
        assert_eq!(proc_cpu_seconds(i32::MAX), None);
    }
}
