//! The host `init` and `uninstall` work on: an optional `--root` prefix, whether systemd runs,
//! and small helpers over `/etc/group`, files and external commands.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

/// The group owning the control socket's directory; its members may use the CLI.
pub const GROUP: &str = "agentlab";

/// Where changes go.
#[derive(Debug, Clone)]
pub struct Host {
    /// `--root DIR`: every path is prefixed, systemctl runs with `--root=DIR`, nothing is
    /// started and no package or network change is made.
    pub root: Option<PathBuf>,
    /// systemd runs as PID 1 (`/run/systemd/system` exists) and this is not a `--root` run.
    pub systemd: bool,
}

impl Host {
    /// The host for `root`; systemd counts as running only without `--root`.
    pub fn new(root: Option<PathBuf>) -> Self {
        let systemd = root.is_none() && Path::new("/run/systemd/system").is_dir();
        Self { root, systemd }
    }

    /// `path` (absolute, as on the installed host) under the root.
    pub fn path(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_owned(),
        }
    }

    /// The gid of `name` in the root's `/etc/group`, if the group exists.
    pub fn gid(&self, name: &str) -> anyhow::Result<Option<u32>> {
        Ok(self.group_line(name)?.and_then(|l| l.gid))
    }

    /// The entry of group `name` in the root's `/etc/group`.
    pub fn group_line(&self, name: &str) -> anyhow::Result<Option<GroupLine>> {
        let path = self.path(Path::new("/etc/group"));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| GroupLine {
                gid: f.get(2).and_then(|g| g.parse().ok()),
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        }))
    }

    /// `systemctl` with `--root=DIR` under a root; offline (`SYSTEMD_OFFLINE=1`, unit files
    /// only) when systemd does not run.
    pub fn systemctl(&self, args: &[&str]) -> Command {
        let mut c = Command::new("systemctl");
        if let Some(root) = &self.root {
            c.arg(format!("--root={}", root.display()));
        } else if !self.systemd {
            c.env("SYSTEMD_OFFLINE", "1");
        }
        c.args(args);
        c
    }

    /// `groupadd`/`groupdel` with `--prefix DIR` under a root (edits `DIR/etc/group` and
    /// `DIR/etc/gshadow` with the host's binary).
    pub fn group_tool(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        if let Some(root) = &self.root {
            c.arg("--prefix").arg(root);
        }
        c
    }
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLine {
    /// The numeric id.
    pub gid: Option<u32>,
    /// Supplementary members.
    pub members: Vec<String>,
}

/// Mode (permission bits), uid and gid of `path`, if it exists.
pub fn stat(path: &Path) -> anyhow::Result<Option<(u32, u32, u32)>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some((m.permissions().mode() & 0o7777, m.uid(), m.gid()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Sets `mode` and root ownership with group `gid` (root's group when `None`).
pub fn set_mode_owner(path: &Path, mode: u32, gid: Option<u32>) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(0), Some(gid.unwrap_or(0)))
        .with_context(|| format!("chown {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {:o} {}", mode, path.display()))
}

/// Runs `cmd`, failing with its stderr when it exits non-zero; returns its stdout.
pub fn run(mut cmd: Command) -> anyhow::Result<String> {
    let shown = show(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The stdout of `cmd` whatever its exit status (`systemctl is-enabled` exits 1 for
/// "disabled"); `None` when it cannot be run.
pub fn probe(mut cmd: Command) -> Option<String> {
    cmd.stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// A command line for messages.
pub fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an executable named `name` is on `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}
