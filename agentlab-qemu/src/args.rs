//! The QEMU command line of a sandbox (pure; unit-tested).
//!
//! Devices: the root overlay and an optional workspace volume as virtio block devices, the NIC
//! on the sandbox's tap with the engine's MAC, a virtio-serial port for the guest agent
//! (`org.qemu.guest_agent.0`) on a Unix socket, QMP on another, the serial console into
//! `console.log`, and an optional cloud-init seed (a read-only FAT view of the `seed/`
//! directory labelled `cidata`). QEMU daemonizes after set-up and writes its pid file.

use std::path::{Path, PathBuf};

use agentlab_core::VmSpec;
use agentlab_core::config::QemuMachine;

use crate::accel::Accel;
use crate::options::Boot;

/// Everything one command line depends on.
#[derive(Debug, Clone)]
pub struct VmArgs<'a> {
    /// The sandbox.
    pub spec: &'a VmSpec,
    /// Its directory (sockets, pid file, console log, overlay).
    pub dir: &'a Path,
    /// Accelerator.
    pub accel: Accel,
    /// Machine.
    pub machine: QemuMachine,
    /// Boot mode.
    pub boot: Boot,
    /// Kernel and initrd for [`Boot::Kernel`].
    pub kernel: Option<(PathBuf, PathBuf)>,
    /// Full kernel command line for [`Boot::Kernel`].
    pub cmdline: String,
    /// Host tap device.
    pub tap: &'a str,
    /// Workspace volume file, if attached.
    pub volume: Option<PathBuf>,
    /// cloud-init seed directory, if any.
    pub seed: Option<PathBuf>,
}

/// The `-sandbox` (seccomp) setting of every sandbox's QEMU.
pub const SANDBOX: &str = "on,obsolete=deny,resourcecontrol=deny";

/// The `-name` of a sandbox's QEMU; also how a restarted daemon recognises its process.
pub fn vm_name(vmid: u32) -> String {
    format!("agentlab-{vmid}")
}

/// The argument vector (without the binary).
pub fn build(a: &VmArgs<'_>) -> Vec<String> {
    let vmid = a.spec.vmid.get();
    let p = |name: &str| a.dir.join(name).display().to_string();
    let microvm = a.machine == QemuMachine::Microvm;
    // microvm has no PCI bus: its virtio devices sit on virtio-mmio.
    let dev = |kind: &str| {
        if microvm {
            format!("virtio-{kind}-device")
        } else {
            format!("virtio-{kind}-pci")
        }
    };
    let mut v: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| v.extend(items.iter().map(|s| (*s).to_owned()));
    let machine = if microvm {
        "microvm,acpi=on,pit=off,pic=off,rtc=on".to_owned()
    } else {
        "q35".to_owned()
    };
    let cpu = match a.accel {
        Accel::Kvm => "host",
        Accel::Tcg => "max",
    };
    let name = format!("{},process={}", vm_name(vmid), vm_name(vmid));
    let smp = a.spec.resources.cores.max(1).to_string();
    let mem = format!("{}M", a.spec.resources.memory_mb.max(128));
    push(&[
        "-name",
        &name,
        "-machine",
        &machine,
        "-accel",
        a.accel.as_str(),
        "-cpu",
        cpu,
        "-smp",
        &smp,
        "-m",
        &mem,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        // QEMU's seccomp filter: the default deny list (reboot, swapon, mount, module and
        // kexec calls …) plus obsolete and resource-control calls. `spawn` and
        // `elevateprivileges` stay allowed: `-daemonize` forks after the filter is in place.
        "-sandbox",
        SANDBOX,
    ]);
    let serial = format!("file:{}", p("console.log"));
    let qmp = format!("unix:{},server=on,wait=off", p("qmp.sock"));
    let pidfile = p("qemu.pid");
    push(&[
        "-serial",
        &serial,
        "-qmp",
        &qmp,
        "-pidfile",
        &pidfile,
        "-daemonize",
    ]);
    if a.boot == Boot::Kernel
        && let Some((kernel, initrd)) = &a.kernel
    {
        let (k, i) = (kernel.display().to_string(), initrd.display().to_string());
        push(&["-kernel", &k, "-initrd", &i, "-append", &a.cmdline]);
    }
    let root = format!(
        "driver=qcow2,node-name=root,file.driver=file,file.filename={},discard=unmap",
        p("root.qcow2")
    );
    let boot_index = if !microvm && a.boot == Boot::Disk {
        ",bootindex=0"
    } else {
        ""
    };
    let root_dev = format!("{},drive=root,serial=agentlab-root{boot_index}", dev("blk"));
    push(&["-blockdev", &root, "-device", &root_dev]);
    if let Some(vol) = &a.volume {
        let node = format!(
            "driver=qcow2,node-name=workspace,file.driver=file,file.filename={}",
            vol.display()
        );
        let d = format!("{},drive=workspace,serial=agentlab-workspace", dev("blk"));
        push(&["-blockdev", &node, "-device", &d]);
    }
    if let Some(seed) = &a.seed {
        let node = format!(
            "driver=vvfat,node-name=seed,dir={},label=cidata,read-only=on",
            seed.display()
        );
        let d = format!("{},drive=seed,serial=agentlab-seed", dev("blk"));
        push(&["-blockdev", &node, "-device", &d]);
    }
    let netdev = format!("tap,id=net0,ifname={},script=no,downscript=no", a.tap);
    let nic = format!("{},netdev=net0,mac={}", dev("net"), a.spec.net.mac);
    push(&["-netdev", &netdev, "-device", &nic]);
    let qga = format!("socket,id=qga0,path={},server=on,wait=off", p("qga.sock"));
    push(&[
        "-device",
        &dev("serial"),
        "-chardev",
        &qga,
        "-device",
        "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
    ]);
    if !microvm {
        let rng = dev("rng");
        push(&["-device", &rng]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentlab_core::Vmid;
    use agentlab_core::testkit::hypervisor::ConformanceEnv;

    fn args(machine: QemuMachine, boot: Boot) -> Vec<String> {
        let spec = ConformanceEnv::fake().spec(Vmid::new(9100).expect("vmid"));
        let dir = Path::new("/var/lib/agentlab/qemu/9100");
        build(&VmArgs {
            spec: &spec,
            dir,
            accel: Accel::Tcg,
            machine,
            boot,
            kernel: Some(("/img/vmlinuz".into(), "/img/initrd.img".into())),
            cmdline: "console=ttyS0".to_owned(),
            tap: "alq9100",
            volume: Some("/v/ws.qcow2".into()),
            seed: None,
        })
    }

    #[test]
    fn q35_boots_the_disk_with_pci_devices() {
        let v = args(QemuMachine::Q35, Boot::Disk).join(" ");
        assert!(
            v.contains("-name agentlab-9100,process=agentlab-9100"),
            "{v}"
        );
        assert!(
            v.contains("-machine q35 -accel tcg -cpu max -smp 1 -m 512M"),
            "{v}"
        );
        assert!(!v.contains("-kernel"), "{v}");
        assert!(
            v.contains("virtio-blk-pci,drive=root,serial=agentlab-root,bootindex=0"),
            "{v}"
        );
        assert!(v.contains("file.filename=/v/ws.qcow2"), "{v}");
        assert!(
            v.contains("tap,id=net0,ifname=alq9100,script=no,downscript=no"),
            "{v}"
        );
        assert!(
            v.contains("virtio-net-pci,netdev=net0,mac=02:00:00:00:23:8c"),
            "{v}"
        );
        assert!(
            v.contains("path=/var/lib/agentlab/qemu/9100/qga.sock"),
            "{v}"
        );
        assert!(
            v.contains("-qmp unix:/var/lib/agentlab/qemu/9100/qmp.sock"),
            "{v}"
        );
        assert!(v.contains("-daemonize"), "{v}");
        assert!(
            v.contains("-sandbox on,obsolete=deny,resourcecontrol=deny"),
            "{v}"
        );
    }

    #[test]
    fn microvm_boots_the_kernel_with_mmio_devices() {
        let v = args(QemuMachine::Microvm, Boot::Kernel).join(" ");
        assert!(v.contains("-machine microvm"), "{v}");
        assert!(
            v.contains("-kernel /img/vmlinuz -initrd /img/initrd.img -append console=ttyS0"),
            "{v}"
        );
        assert!(v.contains("virtio-blk-device,drive=root"), "{v}");
        assert!(v.contains("virtio-net-device"), "{v}");
        assert!(!v.contains("-pci"), "{v}");
    }
}
