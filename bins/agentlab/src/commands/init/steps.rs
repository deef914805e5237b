//! The typed steps of `init` and `uninstall`. Each step knows whether it is already
//! satisfied ([`Step::check`]) and how to make it so ([`Step::apply`]); the runner in
//! `mod.rs` applies only the steps whose check asks for a change.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::host::{self, Host};
use super::system::{self, Service};

/// What a file step does when the file exists with other content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Shipped files (units): replaced by the shipped content.
    Replace,
    /// Configuration: never overwritten, whatever it holds.
    Keep,
}

/// One unit of host setup (or teardown).
#[derive(Debug, Clone)]
pub enum Step {
    /// The system group `name` exists.
    Group(String),
    /// The group `name` is gone (kept while it has members).
    GroupRemoved(String),
    /// A directory with this mode, owned by root and `group` (root's group when `None`).
    Dir {
        /// Path on the installed host.
        path: PathBuf,
        /// Permission bits.
        mode: u32,
        /// Owning group.
        group: Option<String>,
    },
    /// A file with this content, mode and group.
    File {
        /// Path on the installed host.
        path: PathBuf,
        /// The content to write.
        content: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owning group.
        group: Option<String>,
        /// Replace or keep an existing file.
        existing: Existing,
    },
    /// An executable copied from `src` to `dest` (mode 0755) when their bytes differ.
    Binary {
        /// Where to take it from (next to the running `agentlab`, or `--bin-dir`).
        src: PathBuf,
        /// Path on the installed host.
        dest: PathBuf,
    },
    /// The secrets identity, `recipients.txt` and the empty `default` bundle exist.
    Secrets {
        /// `secrets.dir`.
        dir: PathBuf,
        /// `secrets.identity`.
        identity: PathBuf,
    },
    /// A file or directory tree is gone.
    Removed(PathBuf),
    /// A service manager action.
    Service(Service),
    /// Debian packages are installed.
    Packages(Vec<String>),
    /// The agent bridge exists with the gateway address, and forwarding is on.
    Bridge(system::BridgePlan),
    /// A check command that must succeed (not a change).
    Verify {
        /// Name of the step.
        name: String,
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// Nothing to do here; `reason` says why (or what to do by hand).
    Skip {
        /// Name of the step.
        name: String,
        /// Why it is skipped, or instructions for the operator.
        reason: String,
    },
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Already as wanted.
    Ok(String),
    /// Needs this change.
    Change(String),
    /// Not done by this run.
    Skip(String),
    /// A verification to run (never a change).
    Verify(String),
}

impl Step {
    /// Short name: kind and object.
    pub fn name(&self) -> String {
        match self {
            Self::Group(g) => format!("group {g}"),
            Self::GroupRemoved(g) => format!("remove group {g}"),
            Self::Dir { path, .. } => format!("directory {}", path.display()),
            Self::File { path, .. } => format!("file {}", path.display()),
            Self::Binary { dest, .. } => format!("binary {}", dest.display()),
            Self::Secrets { identity, .. } => format!("secrets identity {}", identity.display()),
            Self::Removed(p) => format!("remove {}", p.display()),
            Self::Service(s) => s.name(),
            Self::Packages(_) => "packages".to_owned(),
            Self::Bridge(b) => format!("bridge {}", b.bridge),
            Self::Verify { name, .. } | Self::Skip { name, .. } => name.clone(),
        }
    }

    /// Whether the step is satisfied on `host`, and if not, what would change.
    pub fn check(&self, host: &Host) -> anyhow::Result<Check> {
        match self {
            Self::Group(g) => Ok(match host.gid(g)? {
                Some(gid) => Check::Ok(format!("exists (gid {gid})")),
                None => Check::Change(format!("add system group {g}")),
            }),
            Self::GroupRemoved(g) => Ok(match host.group_line(g)? {
                None => Check::Ok("absent".into()),
                Some(l) if !l.members.is_empty() => Check::Skip(format!(
                    "kept: members {} (remove them, then groupdel {g})",
                    l.members.join(",")
                )),
                Some(_) => Check::Change(format!("groupdel {g}")),
            }),
            Self::Dir { path, mode, group } => {
                let real = host.path(path);
                let want = wanted_owner(host, group.as_deref())?;
                Ok(match host::stat(&real)? {
                    None => Check::Change(format!("create, mode {mode:04o} {}", owner(group))),
                    Some((m, u, g)) if m == *mode && u == 0 && Some(g) == want => {
                        Check::Ok(format!("mode {mode:04o} {}", owner(group)))
                    }
                    Some((m, u, g)) => Check::Change(format!(
                        "set mode {mode:04o} {} (is {m:04o} {u}:{g})",
                        owner(group)
                    )),
                })
            }
            Self::File {
                path,
                content,
                mode,
                group,
                existing,
            } => {
                let real = host.path(path);
                let want = wanted_owner(host, group.as_deref())?;
                let Some((m, u, g)) = host::stat(&real)? else {
                    return Ok(Check::Change(format!(
                        "write {} bytes, mode {mode:04o} {}",
                        content.len(),
                        owner(group)
                    )));
                };
                if *existing == Existing::Keep {
                    return Ok(Check::Ok(
                        "exists; kept as is (init never overwrites it)".into(),
                    ));
                }
                let same = fs::read(&real)
                    .with_context(|| format!("reading {}", real.display()))?
                    == *content;
                Ok(if !same {
                    Check::Change("replace with the shipped content".into())
                } else if m != *mode || u != 0 || Some(g) != want {
                    Check::Change(format!("set mode {mode:04o} {}", owner(group)))
                } else {
                    Check::Ok("up to date".into())
                })
            }
            Self::Binary { src, dest } => check_binary(host, src, dest),
            Self::Secrets { dir, identity } => {
                let store = secrets_store(host, dir, identity);
                let missing: Vec<&str> = [
                    (store.identity_path().exists(), "identity"),
                    (store.recipients_path().exists(), "recipients.txt"),
                    (store.exists("default").unwrap_or(false), "bundle default"),
                ]
                .into_iter()
                .filter_map(|(ok, what)| (!ok).then_some(what))
                .collect();
                Ok(if missing.is_empty() {
                    Check::Ok("identity, recipients.txt and bundle default exist".into())
                } else {
                    Check::Change(format!("create {} (age x25519)", missing.join(", ")))
                })
            }
            Self::Removed(p) => Ok(if host::stat(&host.path(p))?.is_some() {
                Check::Change("remove".into())
            } else {
                Check::Ok("absent".into())
            }),
            Self::Service(s) => s.check(host),
            Self::Packages(names) => system::check_packages(host, names),
            Self::Bridge(b) => Ok(system::check_bridge(b)),
            Self::Verify { argv, .. } => Ok(Check::Verify(argv.join(" "))),
            Self::Skip { reason, .. } => Ok(Check::Skip(reason.clone())),
        }
    }

    /// Makes the step satisfied.
    pub fn apply(&self, host: &Host) -> anyhow::Result<()> {
        match self {
            Self::Group(g) => {
                let mut c = host.group_tool("groupadd");
                c.args(["--system", g]);
                host::run(c).map(drop)
            }
            Self::GroupRemoved(g) => {
                let mut c = host.group_tool("groupdel");
                c.arg(g);
                host::run(c).map(drop)
            }
            Self::Dir { path, mode, group } => {
                let real = host.path(path);
                fs::create_dir_all(&real)
                    .with_context(|| format!("creating {}", real.display()))?;
                host::set_mode_owner(&real, *mode, wanted_owner(host, group.as_deref())?)
            }
            Self::File {
                path,
                content,
                mode,
                group,
                ..
            } => write_file(
                &host.path(path),
                content,
                *mode,
                wanted_owner(host, group.as_deref())?,
            ),
            Self::Binary { src, dest } => {
                let bytes = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
                write_file(&host.path(dest), &bytes, 0o755, None)
            }
            Self::Secrets { dir, identity } => {
                secrets_store(host, dir, identity).init("default")?;
                Ok(())
            }
            Self::Removed(p) => {
                let real = host.path(p);
                if real.is_dir() && !real.is_symlink() {
                    fs::remove_dir_all(&real)
                } else {
                    fs::remove_file(&real)
                }
                .with_context(|| format!("removing {}", real.display()))
            }
            Self::Service(s) => s.apply(host),
            Self::Packages(names) => system::install_packages(names),
            Self::Bridge(b) => system::apply_bridge(b),
            Self::Verify { argv, .. } => {
                let (program, args) = argv.split_first().context("empty check command")?;
                let mut c = Command::new(program);
                c.args(args);
                host::run(c).map(drop)
            }
            Self::Skip { .. } => Ok(()),
        }
    }
}

/// `root:<group>` for messages.
fn owner(group: &Option<String>) -> String {
    format!("root:{}", group.as_deref().unwrap_or("root"))
}

/// The gid a path should have: the group's (0 for none). A group that does not exist yet
/// (dry run before the group step) gives `None`, which never matches.
fn wanted_owner(host: &Host, group: Option<&str>) -> anyhow::Result<Option<u32>> {
    match group {
        None => Ok(Some(0)),
        Some(g) => host.gid(g),
    }
}

fn check_binary(host: &Host, src: &Path, dest: &Path) -> anyhow::Result<Check> {
    let real = host.path(dest);
    let have = fs::read(&real).ok();
    if !src.is_file() {
        return Ok(match have {
            Some(_) => Check::Ok(format!("present (no {} to install from)", src.display())),
            None => Check::Skip(format!(
                "no {} to install from: build it (cargo build --release) and copy it to {}",
                src.display(),
                dest.display()
            )),
        });
    }
    if fs::canonicalize(src).ok() == fs::canonicalize(&real).ok() && have.is_some() {
        return Ok(Check::Ok("is the running binary".into()));
    }
    let new = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let mode = host::stat(&real)?.map(|s| s.0);
    Ok(match have {
        Some(old) if old == new && mode == Some(0o755) => Check::Ok("up to date".into()),
        Some(_) => Check::Change(format!("replace with {}", src.display())),
        None => Check::Change(format!("copy {}", src.display())),
    })
}

fn secrets_store(host: &Host, dir: &Path, identity: &Path) -> agentlab_secrets::AgeSecretStore {
    agentlab_secrets::AgeSecretStore::new(host.path(dir), host.path(identity))
}

/// Writes `content` atomically (temporary file in the same directory, then rename) with
/// `mode`, owned by root and `gid`; creates missing parent directories (mode 0755).
fn write_file(path: &Path, content: &[u8], mode: u32, gid: Option<u32>) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".agentlab-init-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(content)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    host::set_mode_owner(tmp.path(), mode, gid)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
