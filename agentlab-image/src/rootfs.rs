//! The root filesystem: `mmdebstrap` from Debian packages, then AgentLab's configuration
//! (agent user, units, cloud-init, runner, ssh off, per-VM identity removed).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::error::ImageError;
use crate::spec::ImageSpec;
use crate::tools::run;

/// Packages every image gets (besides `nodejs` when the spec has npm packages).
pub const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "passwd",
    "kmod",
    "iproute2",
    "ifupdown",
    "isc-dhcp-client",
    "procps",
    "e2fsprogs",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "qemu-guest-agent",
    "cloud-init",
    "cloud-guest-utils",
    "openssh-server",
    "sudo",
    "git",
    "ca-certificates",
    "curl",
    "bubblewrap",
    "python3",
    "openssh-client",
];

/// The shipped unit files and cloud-init config: `(path in the image, content)`.
pub const SHIPPED_FILES: &[(&str, &str)] = &[
    (
        "etc/systemd/system/agent-runner.service",
        include_str!("../units/agent-runner.service"),
    ),
    (
        "etc/systemd/system/run-agentlab-secrets.mount",
        include_str!("../units/run-agentlab-secrets.mount"),
    ),
    (
        "etc/systemd/system/agentlab-ssh-if-keys.service",
        include_str!("../units/agentlab-ssh-if-keys.service"),
    ),
    (
        "etc/cloud/cloud.cfg.d/99-agentlab.cfg",
        include_str!("../units/99-agentlab.cfg"),
    ),
];

/// Units enabled in the image.
pub const ENABLED_UNITS: &[&str] = &[
    "agent-runner.service",
    "run-agentlab-secrets.mount",
    "agentlab-ssh-if-keys.service",
    "qemu-guest-agent.service",
];

/// Where the runner goes in the image.
pub const RUNNER_PATH: &str = "usr/local/bin/agent-runner";

/// The full package list for `spec`.
pub fn packages(spec: &ImageSpec) -> Vec<String> {
    let mut list: Vec<String> = BASE_PACKAGES.iter().map(|s| (*s).to_owned()).collect();
    if !spec.npm_specs().is_empty() {
        list.push("nodejs".to_owned());
    }
    list.extend(spec.packages.iter().cloned());
    list.sort();
    list.dedup();
    list
}

/// The apt source lines for `spec` (the mirror or deb.debian.org, plus updates and security).
pub fn sources(spec: &ImageSpec) -> Vec<String> {
    let suite = &spec.suite;
    match &spec.mirror {
        Some(m) => vec![
            format!("deb {m} {suite} main"),
            format!("deb {m} {suite}-updates main"),
        ],
        None => vec![
            format!("deb http://deb.debian.org/debian {suite} main"),
            format!("deb http://deb.debian.org/debian {suite}-updates main"),
            format!("deb http://deb.debian.org/debian-security {suite}-security main"),
        ],
    }
}

/// Runs mmdebstrap into `root` (which must not exist), honouring `SOURCE_DATE_EPOCH`.
pub fn debootstrap(spec: &ImageSpec, root: &Path, epoch: u64) -> Result<(), ImageError> {
    let mut cmd = Command::new("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .stdin(std::process::Stdio::null())
        .args([
            "--mode=root",
            "--variant=apt",
            "--format=directory",
            "--components=main",
        ])
        .arg(format!("--include={}", packages(spec).join(",")))
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .args([
            // No fsync per file: the image is written once and checked by its manifest.
            "--dpkgopt=force-unsafe-io",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        ])
        .arg(&spec.suite)
        .arg(root);
    for line in sources(spec) {
        cmd.arg(line);
    }
    let result = run("mmdebstrap", &mut cmd).map(drop);
    // mmdebstrap can leave a pseudo filesystem (seen: a read-only /proc) mounted in the target.
    unmount_below(root);
    result
}

/// Unmounts everything mounted at or below `root`, deepest first.
pub fn unmount_below(root: &Path) {
    let prefix = root.display().to_string();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let ok = Command::new("umount")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}

/// Configures a freshly bootstrapped `root`: see the module docs. `root_uuid` goes in fstab.
pub fn configure(
    spec: &ImageSpec,
    root: &Path,
    runner: &Path,
    root_uuid: &str,
) -> Result<(), ImageError> {
    let has_agent = fs::read_to_string(root.join("etc/passwd"))
        .map_err(|e| ImageError::io(root.join("etc/passwd"), e))?
        .lines()
        .any(|l| l.starts_with("agent:"));
    if !has_agent {
        run(
            "configure",
            Command::new("chroot").arg(root).args([
                "useradd",
                "--uid=1000",
                "--user-group",
                "--create-home",
                "--home-dir=/home/agent",
                "--shell=/bin/bash",
                "--comment=AgentLab agent",
                "agent",
            ]),
        )?;
    }
    agentlab_local::image::prepare_rootfs(root)
        .map_err(|e| ImageError::step("configure", e.to_string()))?;
    // Clones go under /work by default: the agent user (1000) owns it.
    let work = root.join("work");
    std::os::unix::fs::chown(&work, Some(1000), Some(1000))
        .map_err(|e| ImageError::io(&work, e))?;
    for (rel, content) in SHIPPED_FILES {
        write(&root.join(rel), content.as_bytes(), 0o644)?;
    }
    let runner_bytes = fs::read(runner).map_err(|e| ImageError::io(runner, e))?;
    write(&root.join(RUNNER_PATH), &runner_bytes, 0o755)?;
    write(
        &root.join("etc/fstab"),
        format!("UUID={root_uuid} / ext4 errors=remount-ro 0 1\n").as_bytes(),
        0o644,
    )?;
    for f in &spec.files {
        let data = fs::read(&f.src).map_err(|e| ImageError::io(&f.src, e))?;
        let mode = u32::from_str_radix(&f.mode, 8).unwrap_or(0o644);
        write(&root.join(f.dest.trim_start_matches('/')), &data, mode)?;
    }
    let mut enable = Command::new("chroot");
    enable
        .arg(root)
        .args(["systemctl", "enable"])
        .args(ENABLED_UNITS);
    run("configure", &mut enable)?;
    let mut disable = Command::new("chroot");
    disable
        .arg(root)
        .args(["systemctl", "disable", "ssh.service"]);
    run("configure", &mut disable)?;
    // Per-VM identity: each clone gets its own machine-id and SSH host keys (cloud-init).
    write(&root.join("etc/machine-id"), b"", 0o444)?;
    let _ = fs::remove_file(root.join("var/lib/dbus/machine-id"));
    if let Ok(dir) = fs::read_dir(root.join("etc/ssh")) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// `(package, version, architecture)` of every installed package, sorted by name.
pub fn package_versions(root: &Path) -> Result<Vec<(String, String, String)>, ImageError> {
    let out = run(
        "packages",
        Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                root.join("var/lib/dpkg").display()
            ))
            .args([
                "-W",
                "-f",
                "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n",
            ]),
    )?;
    let mut list: Vec<(String, String, String)> = out
        .lines()
        .filter_map(|l| {
            let mut p = l.split('\t');
            let status = p.next()?;
            (status.trim() == "ii").then_some(())?;
            Some((
                p.next()?.to_owned(),
                p.next()?.to_owned(),
                p.next()?.to_owned(),
            ))
        })
        .collect();
    list.sort();
    Ok(list)
}

/// The newest kernel and its initrd under `root/boot`: `(version, vmlinuz, initrd)` paths.
pub fn kernel(root: &Path) -> Result<(String, String, String), ImageError> {
    let boot = root.join("boot");
    let mut versions: Vec<String> = fs::read_dir(&boot)
        .map_err(|e| ImageError::io(&boot, e))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("vmlinuz-"))
                .map(str::to_owned)
        })
        .collect();
    versions.sort();
    let v = versions
        .pop()
        .ok_or_else(|| ImageError::step("kernel", "no /boot/vmlinuz-* in the image"))?;
    let initrd = format!("boot/initrd.img-{v}");
    if !root.join(&initrd).is_file() {
        return Err(ImageError::step(
            "kernel",
            format!("no /{initrd} in the image"),
        ));
    }
    Ok((v.clone(), format!("boot/vmlinuz-{v}"), initrd))
}

/// Writes `data` to `path` (creating parents) with `mode`.
pub fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
    }
    fs::write(path, data).map_err(|e| ImageError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| ImageError::io(path, e))
}
