//! The QEMU process of a sandbox: found by its pid file, accepted only when
//! `/proc/<pid>/cmdline` carries the sandbox's `-name` and its directory (a recycled pid is
//! never killed), killed with SIGKILL.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::args::vm_name;

/// The live QEMU process of the sandbox in `dir`, if any.
pub(crate) fn running_pid(dir: &Path, vmid: u32) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let name = format!("{},process={}", vm_name(vmid), vm_name(vmid));
    let dir_text = dir.display().to_string();
    let ours = args.contains(&name.as_bytes())
        && args
            .iter()
            .any(|a| String::from_utf8_lossy(a).contains(&dir_text));
    // A zombie (exited, not yet reaped by init) is not running.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = state
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    (ours && !zombie).then_some(pid)
}

/// SIGKILLs the sandbox's QEMU and waits (up to 10 s) until it is gone.
pub(crate) fn kill_and_wait(dir: &Path, vmid: u32) -> bool {
    if let Some(pid) = running_pid(dir, vmid) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    wait_gone(dir, vmid, Duration::from_secs(10))
}

/// Waits until the sandbox's QEMU is gone; `false` after `max`.
pub(crate) fn wait_gone(dir: &Path, vmid: u32, max: Duration) -> bool {
    let deadline = Instant::now() + max;
    loop {
        if running_pid(dir, vmid).is_none() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of `pid` in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time (user + system) of `pid` in seconds, from `/proc/<pid>/stat` (fields 14 and 15,
/// in clock ticks of 1/100 s: Linux's fixed `USER_HZ` for /proc).
pub(crate) fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces), starting at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let (utime, stime) = (ticks(11)?, ticks(12)?);
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_rss_and_cpu_time() {
        let pid = i32::try_from(std::process::id()).expect("pid");
        assert!(super::rss_kib(pid).is_some_and(|k| k > 0));
        // Burn a little CPU so the figure is above zero on any clock.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(super::cpu_seconds(pid).is_some_and(|s| s > 0.0));
    }
}
