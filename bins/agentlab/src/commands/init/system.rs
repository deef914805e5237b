//! Steps that talk to the system: systemctl, apt and the agent bridge.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use super::host::{self, Host};
use super::steps::Check;

/// The unit `init` installs.
pub const UNIT: &str = "agentlabd.service";

/// A service manager action on [`UNIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `systemctl daemon-reload` when systemd has an outdated copy of the unit files.
    Reload,
    /// `systemctl enable` (with `--root` under a root; offline without systemd).
    Enable,
    /// `systemctl disable`.
    Disable,
    /// `systemctl start` (only with systemd running).
    Start,
    /// `systemctl stop` (only with systemd running).
    Stop,
}

impl Service {
    /// The step's name.
    pub fn name(self) -> String {
        let verb = match self {
            Self::Reload => return "systemctl daemon-reload".into(),
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Start => "start",
            Self::Stop => "stop",
        };
        format!("systemctl {verb} {UNIT}")
    }

    /// Whether the action is needed.
    pub fn check(self, host: &Host) -> anyhow::Result<Check> {
        // Empty output: the unit is not installed.
        let state = |verb: &str| {
            host::probe(host.systemctl(&[verb, UNIT]))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "not installed".to_owned())
        };
        let enabled = || Some(state("is-enabled"));
        let active = || Some(state("is-active"));
        let live = matches!(self, Self::Reload | Self::Start | Self::Stop);
        if live && !host.systemd {
            return Ok(Check::Skip(match (self, &host.root) {
                (_, Some(_)) => "--root: the service manager is not asked".into(),
                (Self::Start, None) => format!(
                    "systemd is not running as PID 1 (no /run/systemd/system), so {UNIT} \
                     cannot be started now (the enable step makes it start at the next boot \
                     under systemd); start the daemon by hand: sudo /usr/local/bin/agentlabd \
                     --config /etc/agentlab/config.yaml"
                ),
                _ => "systemd is not running as PID 1 (no /run/systemd/system)".into(),
            }));
        }
        Ok(match self {
            Self::Reload => {
                let need = host::probe(host.systemctl(&[
                    "show",
                    "-p",
                    "NeedDaemonReload",
                    "--value",
                    UNIT,
                ]));
                if need.as_deref() == Some("yes") {
                    Check::Change("unit files changed on disk".into())
                } else {
                    Check::Ok("systemd has the current unit files".into())
                }
            }
            Self::Enable => match enabled().as_deref() {
                Some("enabled") => Check::Ok("enabled".into()),
                state => Check::Change(format!("enable (is {})", state.unwrap_or("unknown"))),
            },
            Self::Disable => match enabled().as_deref() {
                Some("enabled") => Check::Change("disable".into()),
                state => Check::Ok(format!("not enabled ({})", state.unwrap_or("unknown"))),
            },
            Self::Start => match active().as_deref() {
                Some("active") => Check::Ok("running".into()),
                state => Check::Change(format!("start (is {})", state.unwrap_or("unknown"))),
            },
            Self::Stop => match active().as_deref() {
                Some("active" | "activating" | "reloading") => Check::Change("stop".into()),
                state => Check::Ok(format!("not running ({})", state.unwrap_or("unknown"))),
            },
        })
    }

    /// Runs the action.
    pub fn apply(self, host: &Host) -> anyhow::Result<()> {
        let args: &[&str] = match self {
            Self::Reload => &["daemon-reload"],
            Self::Enable => &["enable", UNIT],
            Self::Disable => &["disable", UNIT],
            Self::Start => &["start", UNIT],
            Self::Stop => &["stop", UNIT],
        };
        host::run(host.systemctl(args)).map(drop)
    }
}

/// Packages missing from a Debian host, or a reason why none can be checked.
pub fn check_packages(host: &Host, names: &[String]) -> anyhow::Result<Check> {
    if host.root.is_some() {
        return Ok(Check::Skip(format!(
            "--root: packages are not installed into the root; the host needs {}",
            names.join(" ")
        )));
    }
    if !host::on_path("dpkg-query") {
        return Ok(Check::Skip(format!(
            "not a Debian/Ubuntu host (no dpkg-query): install {} yourself",
            names.join(" ")
        )));
    }
    let missing = missing_packages(names);
    Ok(if missing.is_empty() {
        Check::Ok(format!("installed: {}", names.join(" ")))
    } else {
        Check::Change(format!("apt-get install {}", missing.join(" ")))
    })
}

fn missing_packages(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            let mut c = Command::new("dpkg-query");
            c.args(["-W", "-f=${Status}", n.as_str()]);
            host::probe(c).as_deref() != Some("install ok installed")
        })
        .cloned()
        .collect()
}

/// `apt-get install -y` of the missing packages.
pub fn install_packages(names: &[String]) -> anyhow::Result<()> {
    let missing = missing_packages(names);
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing);
    host::run(c).map(drop)
}

/// The agent bridge of a local or qemu host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    /// Bridge name.
    pub bridge: String,
    /// Gateway address on it.
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The subnet.
    pub subnet: ipnet::Ipv4Net,
}

/// Whether the bridge has the gateway address and forwarding is on.
pub fn check_bridge(b: &BridgePlan) -> Check {
    let addr = format!("{}/{}", b.gateway, b.prefix);
    let mut c = Command::new("ip");
    c.args(["-o", "-4", "addr", "show", "dev", &b.bridge]);
    let has_addr = host::probe(c).is_some_and(|o| o.contains(&addr));
    let forwarding =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1");
    match (has_addr, forwarding) {
        (true, true) => Check::Ok(format!("{addr} up, forwarding on")),
        _ => Check::Change(format!(
            "create {} with {addr}, enable forwarding (not persistent: agentlabd does this \
             again at every start)",
            b.bridge
        )),
    }
}

/// Creates the bridge and enables forwarding, as `agentlab net bridge` does.
pub fn apply_bridge(b: &BridgePlan) -> anyhow::Result<()> {
    let cfg = agentlab_net::NetConfig {
        bridge: b.bridge.clone(),
        subnet_v4: b.subnet,
        gateway_v4: b.gateway,
        ..agentlab_net::NetConfig::default()
    };
    agentlab_net::bridge::create_bridge(&cfg, None)?;
    agentlab_net::bridge::enable_forwarding(Path::new("/proc/sys"))?;
    Ok(())
}
