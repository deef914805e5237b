//! The QEMU-backend lab: the tiny test image (built once per target directory under a file
//! lock), a router namespace holding the agent bridge (nothing touches the host's network), a
//! temp state directory, and options booting the tiny image. Every test skips without its
//! prerequisites, or panics under `CI`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agentlab_core::config::{QemuAccel, QemuMachine};
use agentlab_core::testkit::hypervisor::ConformanceEnv;
use agentlab_net::NetConfig;
use agentlab_net::netns::{Netns, ip};
use agentlab_qemu::accel::{self, Accel};
use agentlab_qemu::{Boot, QemuHypervisor, QemuOptions};

/// Skips (printing why) or, under `CI`, fails.
pub fn skip_or_fail(reason: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("prerequisite missing in CI: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Root, QEMU, qemu-img and what the tiny image needs.
pub fn privileged() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        return skip_or_fail("not running as root");
    }
    for (tool, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
        ("apt-get", "apt"),
        ("ip", "iproute2"),
    ] {
        if !have(tool) {
            return skip_or_fail(&format!("{tool} missing (apt-get install {pkg})"));
        }
    }
    true
}

/// The tiny image's directory (built on first use; a file lock serialises builders).
pub fn tiny_image() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let root = target.join("agentlab-qemu-tiny");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(".lock")).unwrap();
    lock.lock().unwrap();
    let out = root.join("image");
    if !out.join("disk.qcow2").is_file() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tiny-image.sh");
        let st = Command::new("sh").arg(&script).arg(&out).status().unwrap();
        assert!(st.success(), "building the tiny image failed");
    }
    out
}

/// One test's world.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub opts: QemuOptions,
    pub router: Netns,
}

impl Lab {
    /// A lab booting the tiny image on `machine`.
    pub fn new(tag: &str, machine: QemuMachine) -> Self {
        let image = tiny_image();
        let pid = std::process::id();
        let dir = tempfile::tempdir().unwrap();
        let router = Netns::create(&format!("alq{pid}{tag}")).unwrap();
        let net = NetConfig {
            bridge: "agentlab0".to_owned(),
            subnet_v6: None,
            gateway_v6: None,
            uplink: "lo".to_owned(),
            ..NetConfig::default()
        };
        agentlab_net::bridge::create_bridge(&net, Some(router.name())).unwrap();
        let mut opts = QemuOptions::new(dir.path().join("state"), image);
        opts.machine = machine;
        opts.boot = Boot::Kernel;
        opts.kernel_cmdline = Some("quiet panic=-1".to_owned());
        opts.cloud_init_seed = false;
        opts.bridge_netns = Some(router.name().to_owned());
        opts.boot_timeout = Duration::from_secs(120);
        Self { dir, opts, router }
    }

    /// The backend; TCG unless `AGENTLAB_QEMU_TEST_ACCEL` says `kvm` or `auto` (resolved as
    /// `qemu.accel` would be).
    pub fn hv(&self) -> QemuHypervisor {
        let accel = match std::env::var("AGENTLAB_QEMU_TEST_ACCEL").as_deref() {
            Ok("kvm") => accel::choose(QemuAccel::Kvm).unwrap(),
            Ok("auto") => accel::choose(QemuAccel::Auto).unwrap(),
            _ => Accel::Tcg,
        };
        QemuHypervisor::new(self.opts.clone(), accel)
    }

    /// Conformance settings on this lab's bridge (10.77.0.0/16, guest 10.77.0.100).
    pub fn env(&self) -> ConformanceEnv {
        ConformanceEnv {
            bridge: "agentlab0".to_owned(),
            address_polls: 60,
            poll_interval: Duration::from_millis(500),
            stop_grace: Duration::from_secs(20),
            guest_ip: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100)),
            ..ConformanceEnv::fake()
        }
    }

    /// Links of the router namespace whose name starts with `alq`.
    pub fn taps(&self) -> Vec<String> {
        ip(Some(self.router.name()), &["-o", "link", "show"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .filter(|n| n.starts_with("alq"))
            .collect()
    }

    /// QEMU processes whose command line mentions this lab's directory.
    pub fn qemu_procs(&self) -> Vec<i32> {
        let needle = self.dir.path().display().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pid in self.qemu_procs() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}
