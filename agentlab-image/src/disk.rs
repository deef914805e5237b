//! `disk.qcow2`: an MBR disk with one bootable ext4 partition holding the root filesystem and
//! extlinux, so SeaBIOS (Proxmox's default firmware, q35 or i440fx) boots it. cloud-init grows
//! the partition and filesystem to the VM's disk size on first boot.
//!
//! Steps: sparse raw file → `sfdisk` (one partition from 1 MiB, bootable) → loop device at the
//! partition's offset → `mkfs.ext4 -d rootfs` (no copy through a mount) → mount, `extlinux
//! --install /boot/extlinux`, unmount → syslinux MBR code into the first 440 bytes →
//! `qemu-img convert -O qcow2`.

use std::fs;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::ImageError;
use crate::tools::{mbr_path, run};

/// Partition start (bytes).
const PART_START: u64 = 1 << 20;
/// Filesystem label of the root partition.
pub const ROOT_LABEL: &str = "agentlab-root";

/// The kernel and initrd paths inside the image (relative to the root).
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Kernel version (`6.1.0-28-cloud-amd64`).
    pub version: String,
    /// `boot/vmlinuz-…`.
    pub vmlinuz: String,
    /// `boot/initrd.img-…`.
    pub initrd: String,
}

/// The kernel command line of the image.
pub fn cmdline(root_uuid: &str) -> String {
    format!("root=UUID={root_uuid} ro console=tty0 console=ttyS0,115200n8")
}

/// Writes `boot/extlinux/extlinux.conf` into `root`.
pub fn write_extlinux_conf(
    root: &Path,
    kernel: &Kernel,
    root_uuid: &str,
) -> Result<(), ImageError> {
    let conf = format!(
        "# Written by agentlab image build.\nDEFAULT agentlab\nPROMPT 0\nTIMEOUT 1\nSERIAL 0 115200\n\
         LABEL agentlab\n  LINUX /{}\n  INITRD /{}\n  APPEND {}\n",
        kernel.vmlinuz,
        kernel.initrd,
        cmdline(root_uuid)
    );
    crate::rootfs::write(
        &root.join("boot/extlinux/extlinux.conf"),
        conf.as_bytes(),
        0o644,
    )
}

/// Detaches a loop device and unmounts on drop (also on errors).
struct Attached {
    loopdev: String,
    mounted: Option<PathBuf>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            let _ = Command::new("umount").arg(&m).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
    }
}

/// Builds `qcow2` of `size` bytes from `root` (whose `boot/extlinux/extlinux.conf` must exist).
/// `work` holds the temporary raw disk and mount point.
pub fn build(
    root: &Path,
    work: &Path,
    size: u64,
    root_uuid: &str,
    qcow2: &Path,
) -> Result<(), ImageError> {
    let raw = work.join("disk.raw");
    let f = fs::File::create(&raw).map_err(|e| ImageError::io(&raw, e))?;
    f.set_len(size).map_err(|e| ImageError::io(&raw, e))?;
    drop(f);
    let label_id = &root_uuid.replace('-', "")[..8];
    let script = format!("label: dos\nlabel-id: 0x{label_id}\nstart=2048, type=83, bootable\n");
    let mut sfdisk = Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "--quiet"])
        .arg(&raw)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::step("disk", format!("cannot run sfdisk: {e}")))?;
    if let Some(mut stdin) = sfdisk.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| ImageError::step("disk", format!("sfdisk: {e}")))?;
    }
    let out = sfdisk
        .wait_with_output()
        .map_err(|e| ImageError::step("disk", format!("sfdisk: {e}")))?;
    if !out.status.success() {
        return Err(ImageError::step(
            "disk",
            format!("sfdisk failed: {}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    let part_size = size - PART_START;
    let loopdev = run(
        "disk",
        Command::new("losetup")
            .args(["--find", "--show"])
            .arg(format!("--offset={PART_START}"))
            .arg(format!("--sizelimit={part_size}"))
            .arg(&raw),
    )?
    .trim()
    .to_owned();
    let mut attached = Attached {
        loopdev: loopdev.clone(),
        mounted: None,
    };
    run(
        "disk",
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-O",
                "^64bit,^metadata_csum_seed",
                "-L",
                ROOT_LABEL,
                "-U",
                root_uuid,
            ])
            .arg("-E")
            .arg(format!("nodiscard,hash_seed={root_uuid},root_owner=0:0"))
            .arg("-d")
            .arg(root)
            .arg(&loopdev),
    )?;
    let mnt = work.join("mnt");
    fs::create_dir_all(&mnt).map_err(|e| ImageError::io(&mnt, e))?;
    run("disk", Command::new("mount").arg(&loopdev).arg(&mnt))?;
    attached.mounted = Some(mnt.clone());
    run(
        "bootloader",
        Command::new("extlinux")
            .arg("--install")
            .arg(mnt.join("boot/extlinux")),
    )?;
    drop(attached);
    let _ = fs::remove_dir(&mnt);
    let mbr_file = mbr_path().ok_or_else(|| ImageError::MissingTool {
        tool: crate::tools::MBR_PATHS[0].to_owned(),
        package: "extlinux".to_owned(),
    })?;
    let mbr = fs::read(&mbr_file).map_err(|e| ImageError::io(&mbr_file, e))?;
    let mut disk = fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .map_err(|e| ImageError::io(&raw, e))?;
    disk.seek(SeekFrom::Start(0))
        .and_then(|_| disk.write_all(&mbr[..mbr.len().min(440)]))
        .map_err(|e| ImageError::io(&raw, e))?;
    drop(disk);
    run(
        "qcow2",
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(qcow2),
    )?;
    fs::remove_file(&raw).map_err(|e| ImageError::io(&raw, e))
}
