//! Finding a sandbox's processes: every process whose network namespace is the sandbox's
//! (`/proc/<pid>/ns/net` has the same device and inode as `/run/netns/<name>`). This needs no
//! pid file and works for sandboxes started by an earlier daemon process. Zombies have no
//! namespace links, so exited but unreaped processes do not count. A sandbox process that moves
//! to another network namespace (possible through a nested user namespace) is not seen here,
//! but it cannot outlive the sandbox: it stays in the sandbox's pid namespace, whose init (which
//! stays in the netns) takes every member down with it when killed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One process inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// The first two words of `/proc/<pid>/cmdline` (program, and script for interpreters).
    pub argv: Vec<String>,
}

/// `/run/netns/<name>`.
pub(crate) fn netns_path(name: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(name)
}

/// The processes in the network namespace `name` (empty when it does not exist).
pub(crate) fn in_netns(name: &str) -> Vec<Proc> {
    let Ok(ns) = fs::metadata(netns_path(name)) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.ino() == ns.ino() && m.dev() == ns.dev())
        })
        .filter_map(read_proc)
        .collect()
}

fn read_proc(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let ppid = fields.next()?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv = cmdline
        .split(|b| *b == 0)
        .take(2)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(Proc { pid, ppid, argv })
}

/// The sandbox's "init" processes: those whose parent is inside the sandbox but whose
/// grandparent is not (the init, pid 1 of the sandbox's pid namespace, child of the
/// outer `bwrap`). Falls back to the outermost processes.
pub(crate) fn inits(procs: &[Proc]) -> Vec<i32> {
    let inside = |pid: i32| procs.iter().any(|p| p.pid == pid);
    let outer: Vec<i32> = procs
        .iter()
        .filter(|p| !inside(p.ppid))
        .map(|p| p.pid)
        .collect();
    let inner: Vec<i32> = procs
        .iter()
        .filter(|p| outer.contains(&p.ppid))
        .map(|p| p.pid)
        .collect();
    if inner.is_empty() { outer } else { inner }
}

/// Sends `signal` to `pid`, ignoring processes that are already gone.
pub(crate) fn signal(pid: i32, signal: Signal) {
    if let Err(err) = kill(Pid::from_raw(pid), signal)
        && err != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, error = %err, "cannot signal sandbox process");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32) -> Proc {
        Proc {
            pid,
            ppid,
            argv: Vec::new(),
        }
    }

    #[test]
    fn inits_are_the_children_of_the_outermost_processes() {
        let procs = [p(10, 1), p(11, 10), p(12, 11), p(13, 12)];
        assert_eq!(inits(&procs), vec![11]);
        assert_eq!(inits(&[p(10, 1)]), vec![10]);
        assert!(inits(&[]).is_empty());
    }

    #[test]
    fn own_process_is_readable_and_unknown_netns_has_no_processes() {
        let me = read_proc(i32::try_from(std::process::id()).unwrap()).unwrap();
        assert!(me.ppid > 0);
        assert!(in_netns("agentlab-local-test-no-such-netns").is_empty());
    }
}
