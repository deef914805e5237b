//! [`QemuOptions`]: the QEMU backend's settings, from the daemon config or by hand (tests pick
//! their own state directory, image, bridge namespace and boot mode).

use std::path::PathBuf;
use std::time::Duration;

use agentlab_core::config::{Config, QemuAccel, QemuMachine};

/// How the VM boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// SeaBIOS from the root disk (the image's `disk.qcow2`; q35 only).
    Disk,
    /// Direct kernel boot of the image's `vmlinuz` and `initrd.img`.
    Kernel,
}

/// Settings of the QEMU backend.
#[derive(Debug, Clone, PartialEq)]
pub struct QemuOptions {
    /// Where sandboxes live (`<data_dir>/qemu`).
    pub state_dir: PathBuf,
    /// Image directory (`disk.qcow2`, `vmlinuz`, `initrd.img`, `manifest.json`).
    pub image: PathBuf,
    /// The QEMU binary.
    pub binary: PathBuf,
    /// `qemu-img`.
    pub qemu_img: PathBuf,
    /// Requested acceleration.
    pub accel: QemuAccel,
    /// Machine type.
    pub machine: QemuMachine,
    /// Boot mode (q35: disk, microvm: kernel by default).
    pub boot: Boot,
    /// Kernel command line for direct boot; `None` = the manifest's `cmdline`.
    pub kernel_cmdline: Option<String>,
    /// Extra kernel arguments appended for direct boot.
    pub kernel_args: Option<String>,
    /// Network namespace holding the bridge (tests); `None` = this process's.
    pub bridge_netns: Option<String>,
    /// Attach a cloud-init NoCloud seed (network config) as a read-only disk.
    pub cloud_init_seed: bool,
    /// How long a boot may take until the guest agent answers; the VM is killed after it.
    pub boot_timeout: Duration,
}

impl QemuOptions {
    /// Defaults for `state_dir` and `image`: `auto` acceleration, q35 booting the disk.
    pub fn new(state_dir: impl Into<PathBuf>, image: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            image: image.into(),
            binary: PathBuf::from("qemu-system-x86_64"),
            qemu_img: PathBuf::from("qemu-img"),
            accel: QemuAccel::Auto,
            machine: QemuMachine::Q35,
            boot: Boot::Disk,
            kernel_cmdline: None,
            kernel_args: None,
            bridge_netns: None,
            cloud_init_seed: true,
            boot_timeout: Duration::from_secs(300),
        }
    }

    /// The options for `backend: qemu` (`qemu:` section, state under `<data_dir>/qemu`).
    pub fn from_config(cfg: &Config) -> Self {
        let q = &cfg.qemu;
        let mut opts = Self::new(cfg.data_dir.join("qemu"), q.image.clone());
        opts.binary.clone_from(&q.binary);
        opts.accel = q.accel;
        opts.machine = q.machine;
        opts.boot = match q.machine {
            QemuMachine::Q35 => Boot::Disk,
            QemuMachine::Microvm => Boot::Kernel,
        };
        opts.kernel_args.clone_from(&q.kernel_args);
        opts.boot_timeout = Duration::from_secs(q.boot_timeout_secs);
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_maps_onto_options() {
        let yaml = "backend: qemu\ndata_dir: /var/lib/al\nqemu:\n  image: /img\n  machine: microvm\n  accel: tcg\n  boot_timeout_secs: 90\n";
        let cfg = Config::from_yaml_str(yaml, "test").expect("config");
        let o = QemuOptions::from_config(&cfg);
        assert_eq!(o.state_dir, PathBuf::from("/var/lib/al/qemu"));
        assert_eq!(o.image, PathBuf::from("/img"));
        assert_eq!(o.machine, QemuMachine::Microvm);
        assert_eq!(o.boot, Boot::Kernel);
        assert_eq!(o.accel, QemuAccel::Tcg);
        assert_eq!(o.boot_timeout, Duration::from_secs(90));
        let d =
            QemuOptions::from_config(&Config::from_yaml_str("backend: qemu\n", "t").expect("c"));
        assert_eq!(d.boot, Boot::Disk);
        assert_eq!(d.accel, QemuAccel::Auto);
    }
}
