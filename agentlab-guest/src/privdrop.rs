//! Dropping root: the runner starts as root only to read the bootstrap file and fill the
//! secrets tmpfs; before the clone it hands the secrets and work directories to the agent user
//! and becomes that user for good (no supplementary groups, `no_new_privs`), so the clone and
//! the agent never run as root.
//!
//! `no_new_privs` is per thread and inherited: [`set_no_new_privs`] must run on the main
//! thread before the async runtime starts its threads (the binary does this for `--run-as`).
//! `setresuid`/`setresgid`/`setgroups` go through libc, which applies them to every thread.

use std::os::unix::fs::{MetadataExt as _, chown};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use crate::error::GuestError;
use crate::secrets_dir::PAYLOAD_FILE;

/// The identity the clone and agent run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

fn err(reason: String) -> GuestError {
    GuestError::step("bootstrap", reason)
}

impl RunAs {
    /// `uid:gid`, or a user name looked up in `passwd` (`/etc/passwd`).
    pub fn parse(spec: &str, passwd: &Path) -> Result<Self, GuestError> {
        if let Some((u, g)) = spec.split_once(':')
            && let (Ok(uid), Ok(gid)) = (u.parse(), g.parse())
        {
            return Ok(Self { uid, gid });
        }
        let text = std::fs::read_to_string(passwd)
            .map_err(|e| err(format!("cannot read {}: {e}", passwd.display())))?;
        text.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&spec) && f.len() >= 4)
            .and_then(|f| {
                Some(Self {
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                })
            })
            .ok_or_else(|| err(format!("no user {spec:?} in {}", passwd.display())))
    }

    /// Gives `dirs` (recursively) to this identity, except the cached payload, which stays
    /// root's; then drops groups, gid and uid. Irreversible for the whole process.
    pub fn hand_over_and_drop(&self, dirs: &[PathBuf]) -> Result<(), GuestError> {
        for d in dirs {
            std::fs::create_dir_all(d)
                .map_err(|e| err(format!("cannot create {}: {e}", d.display())))?;
            self.chown_tree(d)?;
        }
        nix::unistd::setgroups(&[]).map_err(|e| err(format!("setgroups([]) failed: {e}")))?;
        let (gid, uid) = (Gid::from_raw(self.gid), Uid::from_raw(self.uid));
        nix::unistd::setresgid(gid, gid, gid)
            .map_err(|e| err(format!("setresgid({}) failed: {e}", self.gid)))?;
        nix::unistd::setresuid(uid, uid, uid)
            .map_err(|e| err(format!("setresuid({}) failed: {e}", self.uid)))?;
        if nix::unistd::geteuid().as_raw() != self.uid
            || nix::unistd::getegid().as_raw() != self.gid
        {
            return Err(err("still privileged after dropping".into()));
        }
        Ok(())
    }

    fn chown_tree(&self, path: &Path) -> Result<(), GuestError> {
        let md =
            std::fs::symlink_metadata(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        if path.file_name().is_some_and(|n| n == PAYLOAD_FILE) || md.file_type().is_symlink() {
            return Ok(());
        }
        if md.uid() != self.uid || md.gid() != self.gid {
            chown(path, Some(self.uid), Some(self.gid))
                .map_err(|e| err(format!("chown {}: {e}", path.display())))?;
        }
        if md.is_dir() {
            for e in std::fs::read_dir(path).map_err(|e| err(format!("{}: {e}", path.display())))? {
                let e = e.map_err(|e| err(format!("{}: {e}", path.display())))?;
                self.chown_tree(&e.path())?;
            }
        }
        Ok(())
    }
}

/// Becomes `uid`/`gid` (no supplementary groups) and executes `argv` in place (looked up in
/// `PATH`): the `drop-exec` helper through which a terminal exec runs as another user. Returns
/// only on failure.
pub fn exec_as(uid: u32, gid: u32, argv: &[String]) -> GuestError {
    let run = || -> Result<std::convert::Infallible, String> {
        let args = argv
            .iter()
            .map(|a| std::ffi::CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "argv must not contain NUL bytes".to_owned())?;
        let prog = args.first().ok_or("argv must name a program")?;
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups([]) failed: {e}"))?;
        let (g, u) = (Gid::from_raw(gid), Uid::from_raw(uid));
        nix::unistd::setresgid(g, g, g).map_err(|e| format!("setresgid({gid}) failed: {e}"))?;
        nix::unistd::setresuid(u, u, u).map_err(|e| format!("setresuid({uid}) failed: {e}"))?;
        nix::unistd::execvp(prog, &args).map_err(|e| format!("cannot run {:?}: {e}", argv[0]))
    };
    match run() {
        Ok(never) => match never {},
        Err(reason) => GuestError::step("exec", reason),
    }
}

/// Sets `no_new_privs` on the calling thread (inherited by threads and children it creates).
pub fn set_no_new_privs() -> Result<(), GuestError> {
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| err(format!("prctl(PR_SET_NO_NEW_PRIVS) failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_numeric_and_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nagent:x:1000:1001::/home/agent:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(
            RunAs::parse("agent", &passwd).unwrap(),
            RunAs {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(
            RunAs::parse("5:6", &passwd).unwrap(),
            RunAs { uid: 5, gid: 6 }
        );
        assert!(
            RunAs::parse("nobody-here", &passwd)
                .unwrap_err()
                .to_string()
                .contains("nobody-here")
        );
    }

    /// Runs in a child process (the drop is irreversible): see `drop_is_real`.
    #[test]
    fn privdrop_child() {
        let Some(dir) = std::env::var_os("AGENTLAB_PRIVDROP_CHILD") else {
            return;
        };
        let dir = PathBuf::from(dir);
        set_no_new_privs().unwrap();
        RunAs {
            uid: 1000,
            gid: 1000,
        }
        .hand_over_and_drop(&[dir.join("secrets")])
        .unwrap();
        // no_new_privs is per thread: read this thread's status, and a child's.
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let pick = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .unwrap_or_default()
                .to_owned()
        };
        let out = std::process::Command::new("sh")
            .args(["-c", "echo $(id -u) $(grep NoNewPrivs /proc/self/status)"])
            .output()
            .unwrap();
        let child = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "RESULT {} | {} | {} | {} | child {child}",
            pick("Uid:"),
            pick("Gid:"),
            pick("Groups:"),
            pick("NoNewPrivs:")
        );
    }

    #[test]
    fn drop_is_real() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "privilege-drop test needs root in CI"
            );
            eprintln!("SKIPPED: not root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("secrets/.runner")).unwrap();
        std::fs::write(dir.path().join("secrets/payload.json"), "{}").unwrap();
        std::fs::write(dir.path().join("secrets/.runner/cred"), "x").unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "privdrop::tests::privdrop_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AGENTLAB_PRIVDROP_CHILD", dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("RESULT"))
            .unwrap_or_else(|| panic!("{text}\n{}", String::from_utf8_lossy(&out.stderr)));
        let f: Vec<String> = line
            .split('|')
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert!(f[0].ends_with("Uid: 1000 1000 1000 1000"), "{line}");
        assert_eq!(f[1], "Gid: 1000 1000 1000 1000", "{line}");
        assert_eq!(f[2], "Groups:", "{line}");
        assert_eq!(f[3], "NoNewPrivs: 1", "{line}");
        assert_eq!(f[4], "child 1000 NoNewPrivs: 1", "{line}");
        let uid = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().uid();
        assert_eq!(uid("secrets"), 1000);
        assert_eq!(uid("secrets/.runner/cred"), 1000);
        assert_eq!(
            uid("secrets/payload.json"),
            0,
            "the cached payload stays root's"
        );
    }
}
