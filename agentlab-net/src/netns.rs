//! Small blocking wrappers around `ip` (iproute2) used by the bridge helper, `net check` and the
//! test harness. Call them from `tokio::task::spawn_blocking` in async code.

use std::process::{Command, Output};

use crate::error::NetError;

fn finish(program: &str, args: &[&str], out: std::io::Result<Output>) -> Result<String, NetError> {
    let out = out.map_err(|source| NetError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Command {
            program: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip [-n <netns>] <args>` and returns stdout.
pub fn ip(netns: Option<&str>, args: &[&str]) -> Result<String, NetError> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let out = cmd.args(args).output();
    finish("ip", args, out)
}

/// Runs `program <args>` inside `netns` (`ip netns exec`) and returns stdout.
pub fn exec_in(netns: &str, program: &str, args: &[&str]) -> Result<String, NetError> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, program])
        .args(args)
        .output();
    finish(program, args, out)
}

/// Whether a link exists.
pub fn link_exists(netns: Option<&str>, name: &str) -> bool {
    ip(netns, &["link", "show", "dev", name]).is_ok()
}

/// The MAC address of a link (lower case).
pub fn link_mac(netns: Option<&str>, name: &str) -> Result<String, NetError> {
    let text = ip(netns, &["-o", "link", "show", "dev", name])?;
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| NetError::Parse(format!("No MAC address for {name}")))
}

/// The interface of the default IPv4 route (the usual uplink).
pub fn default_route_iface(netns: Option<&str>) -> Result<String, NetError> {
    let text = ip(netns, &["-4", "route", "show", "default"])?;
    text.split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| {
            NetError::Config(
                "No default route to find the NAT uplink: set `network.uplink` in the config"
                    .to_owned(),
            )
        })
}

/// A network namespace deleted when dropped (also on panic).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name` with its loopback up.
    pub fn create(name: &str) -> Result<Self, NetError> {
        ip(None, &["netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        ip(Some(name), &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(None, &["netns", "del", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "cannot delete network namespace");
        }
    }
}
