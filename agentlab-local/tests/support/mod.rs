//! The local-backend lab: a router namespace holding the agent bridge (so nothing touches the
//! host's network), a temp state directory, a sandbox-netns prefix unique to this test process,
//! and a runner script. `Drop` kills every process left in the lab's sandbox namespaces and
//! deletes them, even when the test panics.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agentlab_core::testkit::hypervisor::ConformanceEnv;
use agentlab_core::{VmSpec, Vmid};
use agentlab_local::{LocalHypervisor, LocalOptions, setup_bridge};
use agentlab_net::NetConfig;
use agentlab_net::netns::{Netns, ip};

/// A runner that waits for SIGTERM (exiting cleanly) and otherwise sleeps.
pub const SLEEPER: &str = "#!/bin/sh\ntrap 'exit 0' TERM\nsleep 100000 &\nwait\n";

/// The privileged-test gate: `true` to run; panics under `CI` when prerequisites are missing.
pub fn privileged() -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    });
    let have = |p: &str| Path::new(p).exists();
    let reason = if !root {
        Some("not running as root".to_owned())
    } else if let Some(tool) = ["/usr/bin/bwrap", "/usr/bin/nsenter", "/usr/bin/setsid"]
        .into_iter()
        .find(|t| !have(t))
    {
        Some(format!(
            "{tool} missing (apt-get install bubblewrap util-linux)"
        ))
    } else if !Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("ip not installed (apt-get install iproute2)".to_owned())
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("privileged test prerequisites missing under CI: {r}")
        }
        Some(r) => {
            eprintln!("SKIP: {r}");
            false
        }
    }
}

/// One test's world.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub opts: LocalOptions,
    pub router: Netns,
}

impl Lab {
    /// A lab whose sandboxes run `script` as their runner.
    pub fn new(tag: &str, script: &str) -> Self {
        let pid = std::process::id();
        let dir = tempfile::tempdir().unwrap();
        let router = Netns::create(&format!("alr{pid}{tag}")).unwrap();
        let net = NetConfig {
            bridge: "agentlab0".to_owned(),
            subnet_v6: None,
            gateway_v6: None,
            uplink: "lo".to_owned(),
            ..NetConfig::default()
        };
        setup_bridge(&net, Some(router.name())).unwrap();
        let runner = dir.path().join("runner.sh");
        std::fs::write(&runner, script).unwrap();
        std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut opts = LocalOptions::new(dir.path().join("state"), runner);
        opts.runner_args = vec!["--from-test".to_owned()];
        opts.bridge_netns = Some(router.name().to_owned());
        opts.netns_prefix = format!("alt{pid}{tag}-");
        opts.cgroup_name = format!("agentlab-test-{pid}{tag}");
        opts.start_timeout = Duration::from_secs(20);
        Self { dir, opts, router }
    }

    pub fn hv(&self) -> LocalHypervisor {
        LocalHypervisor::new(self.opts.clone())
    }

    /// Conformance settings on this lab's bridge (10.77.0.0/16, guest 10.77.0.100).
    pub fn env(&self) -> ConformanceEnv {
        ConformanceEnv {
            bridge: "agentlab0".to_owned(),
            address_polls: 500,
            poll_interval: Duration::from_millis(20),
            ..ConformanceEnv::fake()
        }
    }

    /// A spec for `vmid` with guest address 10.77.0.`host`.
    pub fn spec(&self, vmid: u32, host: u8) -> VmSpec {
        let mut env = self.env();
        env.guest_ip = IpAddr::V4(Ipv4Addr::new(10, 77, 0, host));
        env.spec(Vmid::new(vmid).unwrap())
    }

    pub fn netns(&self, vmid: u32) -> String {
        format!("{}{vmid}", self.opts.netns_prefix)
    }

    pub fn vm_dir(&self, vmid: u32) -> PathBuf {
        self.opts.state_dir.join(vmid.to_string())
    }

    /// The sandbox's `/home/agent` on the host.
    pub fn home(&self, vmid: u32) -> PathBuf {
        self.vm_dir(vmid).join("home")
    }

    /// Whether the router namespace has the link `name`.
    pub fn router_has_link(&self, name: &str) -> bool {
        ip(Some(self.router.name()), &["link", "show", "dev", name]).is_ok()
    }

    /// Network namespaces carrying this lab's prefix.
    pub fn sandbox_netns(&self) -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&self.opts.netns_prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Waits (up to 30 s of real time, for a real process) until `path` exists with a final line
/// `done`; returns its content.
pub fn wait_for_done(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.lines().any(|l| l == "done")
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never completed",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The lab's cgroup parents (v1 controllers and v2), once their sandboxes are gone.
        let root = &self.opts.cgroup_root;
        let name = &self.opts.cgroup_name;
        let parents = ["", "memory", "cpu", "pids", "freezer"].map(|c| root.join(c).join(name));
        for ns in self.sandbox_netns() {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = ip(None, &["netns", "del", &ns]);
        }
        for parent in parents {
            if let Ok(children) = std::fs::read_dir(&parent) {
                for child in children.filter_map(Result::ok) {
                    if child.path().is_dir() {
                        let _ = std::fs::remove_dir(child.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}
