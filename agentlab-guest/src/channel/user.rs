//! Who a stream runs as: [`ChannelConfig`] and the resolution of an [`ExecUser`] to an
//! [`Identity`].
//!
//! A guest agent running as root serves `agent` requests as the `agent` user of
//! [`ChannelConfig::passwd`] and `root` requests as root. A guest agent running as anyone else
//! (tests, a hand-started runner) serves `agent` requests as itself and refuses `root` ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentlab_core::api::channel::ExecUser;

/// The search path every exec starts with.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the guest side of the channel serves streams.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// The passwd file the `agent` user is looked up in.
    pub passwd: PathBuf,
    /// Name of the unprivileged user (`agent`).
    pub agent_user: String,
    /// A binary offering `drop-exec --uid U --gid G -- argv…` (the `agent-runner` binary): a
    /// terminal exec as another user runs through it, because the PTY library cannot switch
    /// users itself. `None`: terminal execs as another user are refused.
    pub drop_helper: Option<PathBuf>,
    /// SIGTERM → SIGKILL grace when an exec times out.
    pub kill_grace: Duration,
    /// How long output is still read after an exec's process ended (background processes
    /// that keep its stdout open are not waited for beyond this).
    pub output_linger: Duration,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            passwd: PathBuf::from("/etc/passwd"),
            agent_user: "agent".to_owned(),
            drop_helper: None,
            kill_grace: Duration::from_secs(5),
            output_linger: Duration::from_secs(2),
        }
    }
}

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User name (`USER`).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (`HOME`, the default working directory).
    pub home: PathBuf,
}

impl Identity {
    /// Whether this is the guest agent's own user (no switch needed).
    pub fn is_self(&self) -> bool {
        self.uid == nix::unistd::geteuid().as_raw()
    }

    /// The clean base environment: `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`.
    pub fn base_env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("HOME".to_owned(), self.home.display().to_string()),
            ("USER".to_owned(), self.name.clone()),
            ("LOGNAME".to_owned(), self.name.clone()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ]
    }

    /// `cwd`, or the home directory (or `/` when the home does not exist).
    pub fn work_dir(&self, cwd: Option<&str>) -> PathBuf {
        match cwd {
            Some(c) => PathBuf::from(c),
            None if self.home.is_dir() => self.home.clone(),
            None => PathBuf::from("/"),
        }
    }
}

/// Finds `name` in a passwd file: `(uid, gid, home)`.
fn passwd_entry(passwd: &Path, name: &str) -> Result<(u32, u32, PathBuf), String> {
    let text = std::fs::read_to_string(passwd)
        .map_err(|e| format!("cannot read {}: {e}", passwd.display()))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name) && f.len() >= 6)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?, PathBuf::from(f[5]))))
        .ok_or_else(|| format!("no user {name:?} in {}", passwd.display()))
}

/// Resolves `user` for this guest agent (see the module docs).
pub fn resolve(config: &ChannelConfig, user: ExecUser) -> Result<Identity, String> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return match user {
            ExecUser::Root => Ok(Identity {
                name: "root".to_owned(),
                uid: 0,
                gid: 0,
                home: PathBuf::from("/root"),
            }),
            ExecUser::Agent => {
                let (uid, gid, home) = passwd_entry(&config.passwd, &config.agent_user)?;
                Ok(Identity {
                    name: config.agent_user.clone(),
                    uid,
                    gid,
                    home,
                })
            }
        };
    }
    if user == ExecUser::Root {
        return Err("root exec needs the guest agent to run as root".to_owned());
    }
    let name = std::env::var("USER").unwrap_or_else(|_| euid.to_string());
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    Ok(Identity {
        name,
        uid: euid.as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_and_root_resolve_by_runner_identity() {
        let dir = tempfile::tempdir().expect("dir");
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "agent:x:1000:1001::/home/agent:/bin/sh\n").expect("write");
        let config = ChannelConfig {
            passwd,
            ..ChannelConfig::default()
        };
        let agent = resolve(&config, ExecUser::Agent).expect("agent");
        if nix::unistd::geteuid().is_root() {
            assert_eq!((agent.uid, agent.gid), (1000, 1001));
            assert_eq!(agent.home, PathBuf::from("/home/agent"));
            assert_eq!(resolve(&config, ExecUser::Root).expect("root").uid, 0);
            let missing = ChannelConfig {
                agent_user: "nobody-here".into(),
                ..config
            };
            assert!(
                resolve(&missing, ExecUser::Agent)
                    .expect_err("missing")
                    .contains("nobody-here")
            );
        } else {
            assert!(agent.is_self());
            assert!(
                resolve(&config, ExecUser::Root)
                    .expect_err("root")
                    .contains("root exec needs")
            );
        }
        assert!(
            agent
                .base_env()
                .iter()
                .any(|(k, v)| k == "LANG" && v == "C.UTF-8")
        );
    }
}
