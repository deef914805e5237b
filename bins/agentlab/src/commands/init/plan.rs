//! The step lists of `init` and `uninstall`, computed before anything changes.

use std::path::{Path, PathBuf};

use agentlab_core::config::{BackendKind, Config, DEFAULT_CONFIG_PATH};

use super::answers::Answers;
use super::host::{GROUP, Host};
use super::pve;
use super::steps::{Existing, Step};
use super::system::{BridgePlan, Service};

/// The unit file as shipped in `deploy/systemd/`.
pub const UNIT_FILE: &str = include_str!("../../../../../deploy/systemd/agentlabd.service");
/// The tmpfiles.d entry as shipped in `deploy/systemd/`.
pub const TMPFILES: &str = include_str!("../../../../../deploy/systemd/agentlab.tmpfiles.conf");
/// Where the unit is installed.
pub const UNIT_PATH: &str = "/etc/systemd/system/agentlabd.service";
/// Where the tmpfiles.d entry is installed.
pub const TMPFILES_PATH: &str = "/etc/tmpfiles.d/agentlab.conf";
/// The control socket's directory (see the tmpfiles.d entry).
pub const RUN_DIR: &str = "/run/agentlab";
/// Where binaries are installed (the unit's `ExecStart`).
pub const BIN_DIR: &str = "/usr/local/bin";
/// The binaries `init` installs.
pub const BINARIES: [&str; 3] = ["agentlab", "agentlabd", "agent-runner"];

/// The config the host has (or will have): an existing file wins over the answers.
#[derive(Debug, Clone)]
pub struct Current {
    /// The parsed config.
    pub config: Config,
    /// The file existed before this run.
    pub existed: bool,
}

/// Reads the root's `/etc/agentlab/config.yaml` if there is one.
pub fn existing_config(host: &Host) -> anyhow::Result<Option<Config>> {
    let path = host.path(Path::new(DEFAULT_CONFIG_PATH));
    if !path.exists() {
        return Ok(None);
    }
    let cfg = Config::load(&path).map_err(|e| {
        anyhow::anyhow!(
            "{e}; fix {} (init never overwrites it) or move it away",
            path.display()
        )
    })?;
    Ok(Some(cfg))
}

/// The steps of `agentlab init`.
pub fn init_steps(host: &Host, answers: &Answers, current: &Current, bin_dir: &Path) -> Vec<Step> {
    let cfg = &current.config;
    let grp = || Some(GROUP.to_owned());
    let mut steps = vec![Step::Group(GROUP.into())];
    for name in BINARIES {
        steps.push(Step::Binary {
            src: bin_dir.join(name),
            dest: Path::new(BIN_DIR).join(name),
        });
    }
    steps.push(dir("/etc/agentlab", 0o750, grp()));
    steps.push(Step::File {
        path: DEFAULT_CONFIG_PATH.into(),
        content: answers.config_text().into_bytes(),
        mode: 0o640,
        group: grp(),
        existing: Existing::Keep,
    });
    steps.push(dir(&cfg.profiles_dir, 0o750, grp()));
    steps.push(Step::File {
        path: cfg.profiles_dir.join("defaults.yaml"),
        content: answers.profiles_text().into_bytes(),
        mode: 0o640,
        group: grp(),
        existing: Existing::Keep,
    });
    steps.push(Step::Secrets {
        dir: cfg.secrets.dir.clone(),
        identity: cfg.secrets.identity.clone(),
    });
    steps.push(dir(&cfg.data_dir, 0o700, None));
    steps.push(shipped(UNIT_PATH, UNIT_FILE));
    steps.push(shipped(TMPFILES_PATH, TMPFILES));
    steps.push(if host.root.is_some() {
        skip(
            &format!("directory {RUN_DIR}"),
            "--root: created at boot by systemd-tmpfiles from /etc/tmpfiles.d/agentlab.conf",
        )
    } else {
        dir(RUN_DIR, 0o750, grp())
    });
    steps.extend(backend_steps(host, cfg));
    if host.root.is_none() {
        steps.push(Step::Verify {
            name: "agentlabd --check".into(),
            argv: vec![
                format!("{BIN_DIR}/agentlabd"),
                "--check".into(),
                "--config".into(),
                DEFAULT_CONFIG_PATH.into(),
            ],
        });
    }
    steps.push(Step::Service(Service::Reload));
    steps.push(Step::Service(Service::Enable));
    steps.push(start_step(host, cfg));
    if cfg.backend == BackendKind::Pve
        && host.root.is_none()
        && missing_pve_secret(host, cfg).is_none()
    {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("agentlab"));
        steps.push(Step::Verify {
            name: "agentlab doctor".into(),
            argv: vec![
                exe.display().to_string(),
                "doctor".into(),
                "--config".into(),
                DEFAULT_CONFIG_PATH.into(),
            ],
        });
    }
    steps
}

/// Packages, bridge and Proxmox instructions for the config's backend.
fn backend_steps(host: &Host, cfg: &Config) -> Vec<Step> {
    let packages: &[&str] = match cfg.backend {
        BackendKind::Local => &["nftables", "bubblewrap", "iproute2", "git", "util-linux"],
        BackendKind::Qemu => &[
            "nftables",
            "iproute2",
            "git",
            "qemu-system-x86",
            "qemu-utils",
        ],
        BackendKind::Pve => &["nftables", "iproute2"],
        BackendKind::Fake => &[],
    };
    let mut steps = Vec::new();
    if !packages.is_empty() {
        steps.push(Step::Packages(
            packages.iter().map(|s| (*s).to_owned()).collect(),
        ));
    }
    let bridge = BridgePlan {
        bridge: if cfg.backend == BackendKind::Local {
            cfg.local.bridge.clone()
        } else {
            cfg.network.bridge.clone()
        },
        gateway: cfg.network.gateway,
        prefix: cfg.network.subnet.prefix_len(),
        subnet: cfg.network.subnet,
    };
    match cfg.backend {
        BackendKind::Local | BackendKind::Qemu if host.root.is_some() => steps.push(skip(
            &format!("bridge {}", bridge.bridge),
            "--root: no network change (agentlabd creates the bridge at every start)",
        )),
        BackendKind::Local | BackendKind::Qemu => steps.push(Step::Bridge(bridge)),
        BackendKind::Pve => steps.extend(pve::instructions(cfg)),
        BackendKind::Fake => {}
    }
    steps
}

/// `systemctl start`, unless the qemu backend has no image yet (the daemon would refuse to
/// start).
fn start_step(host: &Host, cfg: &Config) -> Step {
    let disk = cfg.qemu.image.join("disk.qcow2");
    if cfg.backend == BackendKind::Qemu && host.systemd && !host.path(&disk).exists() {
        return skip(
            "systemctl start agentlabd.service",
            &format!(
                "no image at {}: build it (sudo agentlab image build --out {}), then run \
                 sudo systemctl start agentlabd",
                cfg.qemu.image.display(),
                cfg.qemu.image.display()
            ),
        );
    }
    if host.root.is_none()
        && let Some(secret) = missing_pve_secret(host, cfg)
    {
        return skip(
            "systemctl start agentlabd.service",
            &format!(
                "no Proxmox token secret at {}: create the token (see the Proxmox step), write \
                 its secret there (mode 0600), then run sudo agentlab init again",
                secret.display()
            ),
        );
    }
    Step::Service(Service::Start)
}

/// `pve.token_secret_file` when it is configured but not there yet.
fn missing_pve_secret(host: &Host, cfg: &Config) -> Option<PathBuf> {
    let file = cfg.pve.as_ref()?.token_secret_file.clone()?;
    (cfg.backend == BackendKind::Pve && !host.path(&file).exists()).then_some(file)
}

/// The steps of `agentlab uninstall`.
pub fn uninstall_steps(host: &Host, cfg: &Config, purge: bool) -> Vec<Step> {
    let mut steps = vec![
        Step::Service(Service::Stop),
        Step::Service(Service::Disable),
        Step::Removed(UNIT_PATH.into()),
        Step::Removed(TMPFILES_PATH.into()),
        Step::Service(Service::Reload),
        Step::Removed(RUN_DIR.into()),
    ];
    for name in BINARIES {
        steps.push(Step::Removed(Path::new(BIN_DIR).join(name)));
    }
    if purge {
        steps.push(Step::Removed("/etc/agentlab".into()));
        for p in [&cfg.profiles_dir, &cfg.secrets.dir, &cfg.secrets.identity] {
            if !p.starts_with("/etc/agentlab") {
                steps.push(purge_step(p));
            }
        }
        steps.push(purge_step(&cfg.data_dir));
        steps.push(Step::GroupRemoved(GROUP.into()));
    } else {
        steps.push(skip(
            "keep configuration and data",
            &format!(
                "kept /etc/agentlab (config, profiles, secrets identity), {} and group {GROUP}; \
                 --purge removes them",
                cfg.data_dir.display()
            ),
        ));
    }
    if host.root.is_none() {
        steps.push(skip(
            "packages and network",
            "left in place: packages, the agent bridge (gone at reboot) and AgentLab's nftables \
             tables (sudo agentlab net delete removes them)",
        ));
    }
    steps
}

/// Removal of a configured path, only when it looks like AgentLab's own (its name mentions
/// agentlab), so a config pointing `data_dir` at `/var` never empties `/var`.
fn purge_step(path: &Path) -> Step {
    let own = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("agentlab"))
        || path.ancestors().any(|a| a.ends_with("agentlab"));
    if own && path.components().count() > 2 {
        Step::Removed(path.to_owned())
    } else {
        skip(
            &format!("remove {}", path.display()),
            "not removed: the path does not look like AgentLab's own; remove it yourself",
        )
    }
}

fn dir(path: impl AsRef<Path>, mode: u32, group: Option<String>) -> Step {
    Step::Dir {
        path: path.as_ref().to_owned(),
        mode,
        group,
    }
}

fn shipped(path: &str, content: &str) -> Step {
    Step::File {
        path: path.into(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
        group: None,
        existing: Existing::Replace,
    }
}

/// A step that only reports.
pub fn skip(name: &str, reason: &str) -> Step {
    Step::Skip {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_removes_only_paths_that_are_agentlabs_own() {
        for (path, removed) in [
            ("/var/lib/agentlab", true),
            ("/srv/agentlab-data", true),
            ("/srv/agentlab/state", true),
            ("/var", false),
            ("/srv/data", false),
            ("/agentlab", false),
        ] {
            let step = purge_step(Path::new(path));
            assert_eq!(
                matches!(step, Step::Removed(_)),
                removed,
                "{path}: {step:?}"
            );
        }
    }

    #[test]
    fn a_kept_config_and_data_are_said_without_purge() {
        let host = Host::new(Some(PathBuf::from("/nonexistent")));
        let steps = uninstall_steps(&host, &Config::default(), false);
        assert!(!steps.iter().any(|s| matches!(s, Step::GroupRemoved(_))));
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, Step::Removed(p) if p.starts_with("/etc/agentlab")))
        );
        let purge = uninstall_steps(&host, &Config::default(), true);
        assert!(purge.iter().any(|s| matches!(s, Step::GroupRemoved(_))));
        assert!(
            purge
                .iter()
                .any(|s| matches!(s, Step::Removed(p) if p == Path::new("/var/lib/agentlab")))
        );
    }
}
