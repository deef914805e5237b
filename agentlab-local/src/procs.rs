//! Finding a sandbox's processes without relying on what this process can see mounted: a
//! process belongs to the sandbox when any of these holds:
//! - its network namespace is the sandbox's: the same device and inode as
//!   `/run/netns/<name>`, or as the namespace id recorded at create (found even when the
//!   netns mount is invisible, e.g. to a daemon restarted in another mount namespace);
//! - it is in one of the sandbox's cgroups (it cannot leave them: no cgroupfs inside);
//! - it descends from the pid in the sandbox's pid file, whose start time matches (so a
//!   reused pid is never taken for the sandbox).
//!
//! Zombies do not count. A sandbox process that moved to another network namespace (through
//! a nested user namespace) is still found by cgroup and ancestry.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One process inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// Start time in clock ticks after boot (field 22 of `/proc/<pid>/stat`).
    pub start: u64,
    /// The first two words of `/proc/<pid>/cmdline` (program, and script for interpreters).
    pub argv: Vec<String>,
}

/// A namespace's identity: the device and inode of its nsfs file.
pub(crate) type NsId = (u64, u64);

/// `/run/netns/<name>`.
pub(crate) fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// The identity of the namespace file at `path`.
pub(crate) fn ns_id(path: &Path) -> Option<NsId> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// How to recognise one sandbox's processes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    /// Network namespace identities (the mounted name's and the recorded one).
    pub netns: Vec<NsId>,
    /// Pids in the sandbox's cgroups.
    pub cgroup_pids: Vec<i32>,
    /// The pid file's pid and start time.
    pub root: Option<(i32, u64)>,
}

/// Every live process matching `t`.
pub(crate) fn find(t: &Target) -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<Proc> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_proc)
        .collect();
    let mut chosen: BTreeSet<i32> = all
        .iter()
        .filter(|p| {
            t.cgroup_pids.contains(&p.pid)
                || ns_id(Path::new(&format!("/proc/{}/ns/net", p.pid)))
                    .is_some_and(|id| t.netns.contains(&id))
        })
        .map(|p| p.pid)
        .collect();
    if let Some((pid, start)) = t.root
        && all.iter().any(|p| p.pid == pid && p.start == start)
    {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in &all {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        let mut seen = BTreeSet::new();
        let mut stack = vec![pid];
        while let Some(p) = stack.pop() {
            if seen.insert(p) {
                chosen.insert(p);
                stack.extend(children.get(&p).into_iter().flatten());
            }
        }
    }
    all.into_iter()
        .filter(|p| chosen.contains(&p.pid))
        .collect()
}

/// The pid and start time of a live process.
pub(crate) fn identity(pid: i32) -> Option<(i32, u64)> {
    read_proc(pid).map(|p| (p.pid, p.start))
}

fn read_proc(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let ppid = fields.get(1)?.parse().ok()?;
    // Field 22 (starttime) is the 20th after the comm.
    let start = fields.get(19)?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv = cmdline
        .split(|b| *b == 0)
        .take(2)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(Proc {
        pid,
        ppid,
        start,
        argv,
    })
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
            start: 0,
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
        let unknown = Target {
            netns: ns_id(&netns_path("agentlab-local-test-no-such-netns"))
                .into_iter()
                .collect(),
            ..Target::default()
        };
        assert!(find(&unknown).is_empty());
        // Ancestry: this process (with its start time) and nothing else when it has no
        // children; a wrong start time matches nothing.
        let id = identity(me.pid).unwrap();
        let found = find(&Target {
            root: Some(id),
            ..Target::default()
        });
        assert!(found.iter().any(|p| p.pid == me.pid));
        let none = find(&Target {
            root: Some((id.0, id.1 + 1)),
            ..Target::default()
        });
        assert!(none.is_empty());
    }
}
