//! Subordinate uid/gid ranges: each sandbox owns one range of 65536 host ids (its slot), so
//! the agent (uid 1000 inside) is an unprivileged host uid no other sandbox shares, never host
//! root. The user namespace is made by a short-lived helper (`unshare --user sleep`) whose
//! `uid_map`/`gid_map` the daemon (root) writes; `bwrap --userns` joins it.
//!
//! Files the agent may write (its home, an attached volume) are owned by the range. On the
//! host they stay under the root-only (0700) state directory, and their setuid/setgid bits are
//! stripped when the sandbox stops or is destroyed.

use std::fs;
use std::io::ErrorKind;
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LocalError;

/// Ids per sandbox.
pub(crate) const RANGE: u32 = 65_536;
/// The agent's uid and gid inside every sandbox.
pub(crate) const AGENT: u32 = 1000;

/// One sandbox's host ids: `base..base + 65536` (inside ids `0..65536`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRange {
    pub base: u32,
}

impl IdRange {
    /// The range of `slot` after `uid_base`.
    pub fn of_slot(uid_base: u32, slot: u32) -> Self {
        Self {
            base: uid_base.saturating_add(slot.saturating_mul(RANGE)),
        }
    }

    /// The agent's host uid (and gid).
    pub fn agent(self) -> u32 {
        self.base + AGENT
    }

    /// The `uid_map`/`gid_map` line.
    pub fn map_line(self) -> String {
        format!("0 {} {RANGE}\n", self.base)
    }
}

/// The lowest slot below `slots` not in `used`.
pub(crate) fn free_slot(used: &[u32], slots: u32) -> Option<u32> {
    (0..slots).find(|s| !used.contains(s))
}

/// A process holding a new user namespace mapped to one [`IdRange`]; killed on drop (the
/// namespace lives on in the processes that joined it).
#[derive(Debug)]
pub(crate) struct Userns {
    child: Child,
}

fn user_ns_ino(pid: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/user"))
        .ok()
        .map(|m| m.ino())
}

impl Userns {
    /// Starts the helper and writes its maps. Blocking (up to 5 s for `unshare`).
    pub fn create(range: IdRange) -> Result<Self, LocalError> {
        let child = Command::new("/usr/bin/unshare")
            .args(["--user", "--", "sleep", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| LocalError::Spawn {
                program: "/usr/bin/unshare".to_owned(),
                source,
            })?;
        let mut ns = Self { child };
        let pid = ns.child.id().to_string();
        let own = user_ns_ino("self");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let theirs = user_ns_ino(&pid);
            if theirs.is_some() && theirs != own {
                break;
            }
            if Instant::now() > deadline || matches!(ns.child.try_wait(), Ok(Some(_))) {
                return Err(LocalError::Missing(
                    "`unshare --user` did not create a user namespace (user.max_user_namespaces?)"
                        .to_owned(),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for file in ["uid_map", "gid_map"] {
            let path = PathBuf::from(format!("/proc/{pid}/{file}"));
            fs::write(&path, range.map_line()).map_err(LocalError::io("write", &path))?;
        }
        Ok(ns)
    }

    /// `/proc/<helper>/ns/user`, to be opened before the helper is dropped.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/user", self.child.id()))
    }
}

impl Drop for Userns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Walks `root` without following symlinks or crossing into other filesystems, calling `f`
/// on every entry (the root included). Entries that vanish meanwhile are skipped.
fn walk(
    root: &Path,
    f: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<(), LocalError>,
) -> Result<(), LocalError> {
    let Ok(top) = fs::symlink_metadata(root) else {
        return Ok(());
    };
    let dev = top.dev();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(LocalError::io("inspect", &path)(e)),
        };
        if meta.dev() != dev {
            continue;
        }
        f(&path, &meta)?;
        if meta.is_dir() {
            let entries = fs::read_dir(&path).map_err(LocalError::io("list", &path))?;
            stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    Ok(())
}

/// Clears setuid/setgid on the regular files under `root` (what an agent may have left for
/// host users to run).
pub(crate) fn strip_setid(root: &Path) -> Result<(), LocalError> {
    walk(root, &mut |path, meta| {
        let mode = meta.permissions().mode();
        if meta.is_file() && mode & 0o6000 != 0 {
            let perms = fs::Permissions::from_mode(mode & 0o1777);
            fs::set_permissions(path, perms).map_err(LocalError::io("chmod", path))?;
        }
        Ok(())
    })
}

/// Gives the tree `root` to `range`: ids of another sandbox range (inside `space`) keep their
/// inside id, anything else (host-owned, e.g. a directory the daemon made) goes to the agent.
/// Setuid/setgid bits are cleared on the way. Skipped when `root` already belongs to the agent.
pub(crate) fn give_tree(root: &Path, range: IdRange, space: &Range<u32>) -> Result<(), LocalError> {
    let owned = fs::symlink_metadata(root).is_ok_and(|m| m.uid() == range.agent());
    if owned {
        return Ok(());
    }
    let shift = |id: u32| {
        if space.contains(&id) {
            range.base + (id - space.start) % RANGE
        } else {
            range.agent()
        }
    };
    walk(root, &mut |path, meta| {
        let (uid, gid) = (shift(meta.uid()), shift(meta.gid()));
        if (uid, gid) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(LocalError::io("chown", path))?;
        }
        Ok(())
    })?;
    strip_setid(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_ranges() {
        assert_eq!(free_slot(&[0, 1, 3], 10), Some(2));
        assert_eq!(free_slot(&[0, 1], 2), None);
        let r = IdRange::of_slot(100_000, 2);
        assert_eq!(r.base, 100_000 + 2 * 65_536);
        assert_eq!(r.agent(), r.base + 1000);
        assert_eq!(r.map_line(), format!("0 {} 65536\n", r.base));
    }

    #[test]
    fn a_tree_is_shifted_into_the_new_range_and_loses_setuid_bits() {
        if !std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        }) {
            assert!(
                std::env::var_os("CI").is_none(),
                "chown needs root under CI"
            );
            eprintln!("SKIP: chown needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        fs::create_dir(&root).unwrap();
        let old = IdRange::of_slot(100_000, 0);
        let new = IdRange::of_slot(100_000, 1);
        let f = root.join("tool");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o4755)).unwrap();
        // Inside uid 1234 of the old range.
        std::os::unix::fs::lchown(&f, Some(old.base + 1234), Some(old.base + 1234)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let space = 100_000..100_000 + 4 * RANGE;
        give_tree(&root, new, &space).unwrap();
        let m = fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid()), (new.base + 1234, new.base + 1234));
        assert_eq!(m.permissions().mode() & 0o7777, 0o755);
        assert_eq!(fs::metadata(&root).unwrap().uid(), new.agent());
        // The symlink itself changed owner; its target did not.
        assert_eq!(
            fs::symlink_metadata(root.join("link")).unwrap().uid(),
            new.agent()
        );
        assert_eq!(fs::metadata("/etc/passwd").unwrap().uid(), 0);
    }
}
