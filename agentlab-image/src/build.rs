//! [`build`]: the whole pipeline, into a temporary directory renamed into place at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agentlab_core::api::guest::GUEST_PROTOCOL_VERSION;

use crate::disk::{self, Kernel};
use crate::error::ImageError;
use crate::manifest::{Manifest, PackageVersion, RunnerInfo, file_sha256, tree_sha256};
use crate::npm::{self, NpmOptions};
use crate::rootfs;
use crate::spec::ImageSpec;
use crate::tools;

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The spec.
    pub spec: ImageSpec,
    /// Output directory (`rootfs/`, `disk.qcow2`, `vmlinuz`, `initrd.img`, `manifest.json`).
    pub out: PathBuf,
    /// The `agent-runner` binary to install.
    pub runner: PathBuf,
    /// npm settings (cache directory, registry, offline).
    pub npm: NpmOptions,
    /// Replace an existing output directory.
    pub force: bool,
    /// Only `rootfs/` and the manifest (no disk, kernel or initrd): enough for `local.rootfs`.
    pub rootfs_only: bool,
    /// `SOURCE_DATE_EPOCH` (seconds); the current time when `None`.
    pub source_date_epoch: Option<u64>,
}

/// One progress line: step `index` of `total` started after `elapsed`.
#[derive(Debug, Clone)]
pub struct Progress {
    /// 1-based step number.
    pub index: usize,
    /// Number of steps.
    pub total: usize,
    /// Step name (`mmdebstrap`, `configure`, …).
    pub step: &'static str,
    /// What it does.
    pub detail: String,
    /// Time since the build started.
    pub elapsed: Duration,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>6.1}s] {}/{} {}: {}",
            self.elapsed.as_secs_f64(),
            self.index,
            self.total,
            self.step,
            self.detail
        )
    }
}

/// What a build needs free next to its output: the root file system (under 1 GiB for the
/// default spec) plus, for a full build, the raw disk's written blocks and the qcow2 at once
/// (each about the root file system's size) — 3 GiB, or 1 GiB for `--rootfs-only`.
fn needed_bytes(opts: &BuildOptions) -> u64 {
    const GIB: u64 = 1 << 30;
    if opts.rootfs_only { GIB } else { 3 * GIB }
}

/// Refuses to start when `dir`'s file system has less than `needed` bytes available, so a
/// build does not fail half-way with "No space left on device".
fn check_space(dir: &Path, needed: u64) -> Result<(), ImageError> {
    let st = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| ImageError::io(dir, std::io::Error::from_raw_os_error(e as i32)))?;
    // fsblkcnt_t and c_ulong are u64 on x86_64 but u32 on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    if free < needed {
        return Err(ImageError::NoSpace {
            dir: dir.to_path_buf(),
            free_bytes: free,
            needed_bytes: needed,
        });
    }
    Ok(())
}

/// Removes the temporary directory unless the build finished (and never while something is
/// mounted under it).
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let prefix = dir.display().to_string();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&prefix)))
        {
            eprintln!("warning: {prefix} still has mounts; left in place");
            return;
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Builds the image described by `opts`, reporting each step to `progress`. Blocking; needs
/// root, mmdebstrap, qemu-img, sfdisk, mkfs.ext4 and extlinux (checked first).
pub fn build(
    opts: &BuildOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Manifest, ImageError> {
    let started = Instant::now();
    let total = if opts.rootfs_only { 6 } else { 9 };
    let mut index = 0;
    let mut step = |name: &'static str, detail: String| {
        index += 1;
        progress(&Progress {
            index,
            total,
            step: name,
            detail,
            elapsed: started.elapsed(),
        });
    };
    step("check", "root, host tools, output directory".into());
    let tools_needed: Vec<(&str, &str)> = tools::REQUIRED_TOOLS
        .iter()
        .copied()
        .filter(|(t, _)| !opts.rootfs_only || matches!(*t, "mmdebstrap" | "chroot"))
        .collect();
    tools::check(&tools_needed)?;
    if opts.out.exists() && !opts.force {
        return Err(ImageError::Exists(opts.out.clone()));
    }
    let spec_hash = opts.spec.hash()?;
    let epoch = opts.source_date_epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let parent = opts
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
    check_space(parent, needed_bytes(opts))?;
    let name = opts
        .out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("image");
    let tmp = parent.join(format!(".{name}.building-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| ImageError::io(&tmp, e))?;
    let mut guard = TempDir(Some(tmp.clone()));
    let root = tmp.join("rootfs");
    let uuid = uuid_from(&spec_hash);

    let packages = rootfs::packages(&opts.spec);
    step(
        "mmdebstrap",
        format!("{} {} packages", opts.spec.suite, packages.len()),
    );
    rootfs::debootstrap(&opts.spec, &root, epoch)?;
    step(
        "configure",
        "agent user, units, cloud-init, runner, ssh off".into(),
    );
    rootfs::configure(&opts.spec, &root, &opts.runner, &uuid)?;
    let specs = opts.spec.npm_specs();
    step(
        "npm",
        format!(
            "{} package(s) via cache {}",
            specs.len(),
            opts.npm.cache.display()
        ),
    );
    let npm = npm::install(&specs, &root.join("usr/local"), &opts.npm)?;
    step("packages", "dpkg-query inside the rootfs".into());
    let packages = rootfs::package_versions(&root)?
        .into_iter()
        .map(|(name, version, arch)| PackageVersion {
            name,
            version,
            arch,
        })
        .collect();
    let mut outputs = BTreeMap::new();
    let (kernel_version, cmdline) = if opts.rootfs_only {
        (String::new(), String::new())
    } else {
        let (version, vmlinuz, initrd) = rootfs::kernel(&root)?;
        let kernel = Kernel {
            version,
            vmlinuz,
            initrd,
        };
        disk::write_extlinux_conf(&root, &kernel, &uuid)?;
        step(
            "disk",
            format!("{} ext4 + extlinux → disk.qcow2", opts.spec.disk_size),
        );
        let size = opts.spec.disk_bytes().unwrap_or(4 << 30);
        disk::build(&root, &tmp, size, &uuid, &tmp.join("disk.qcow2"))?;
        step(
            "kernel",
            format!("vmlinuz and initrd.img of {}", kernel.version),
        );
        for (src, dest) in [(&kernel.vmlinuz, "vmlinuz"), (&kernel.initrd, "initrd.img")] {
            fs::copy(root.join(src), tmp.join(dest))
                .map_err(|e| ImageError::io(root.join(src), e))?;
        }
        for f in ["disk.qcow2", "vmlinuz", "initrd.img"] {
            outputs.insert(f.to_owned(), file_sha256(&tmp.join(f))?);
        }
        (kernel.version, disk::cmdline(&uuid))
    };
    step("manifest", "sha256 of every output".into());
    outputs.insert("rootfs/".to_owned(), tree_sha256(&root)?);
    let manifest = Manifest {
        format: crate::manifest::MANIFEST_FORMAT,
        agentlab_version: env!("CARGO_PKG_VERSION").to_owned(),
        spec_hash,
        spec: opts.spec.clone(),
        source_date_epoch: epoch,
        kernel: kernel_version,
        cmdline,
        packages,
        npm,
        runner: runner_info(&opts.runner)?,
        outputs,
    };
    manifest.write(&tmp)?;
    step("install", format!("rename into {}", opts.out.display()));
    if opts.out.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        fs::rename(&opts.out, &old).map_err(|e| ImageError::io(&opts.out, e))?;
        fs::rename(&tmp, &opts.out).map_err(|e| ImageError::io(&opts.out, e))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&tmp, &opts.out).map_err(|e| ImageError::io(&opts.out, e))?;
    }
    guard.0 = None;
    Ok(manifest)
}

fn runner_info(runner: &Path) -> Result<RunnerInfo, ImageError> {
    let version = tools::run("runner", Command::new(runner).arg("--version"))?
        .trim()
        .to_owned();
    Ok(RunnerInfo {
        version,
        sha256: file_sha256(runner)?,
        guest_protocol: GUEST_PROTOCOL_VERSION,
    })
}

/// A version-4-shaped UUID derived from the spec hash (stable filesystem UUID per spec).
pub fn uuid_from(hash: &str) -> String {
    let hex: String = hash
        .trim_start_matches("sha256:")
        .chars()
        .take(32)
        .collect();
    let hex = format!("{hex:0<32}");
    let mut b: Vec<char> = hex.chars().collect();
    b[12] = '4';
    b[16] = match b[16] {
        '0'..='3' => '8',
        '4'..='7' => '9',
        '8' | '9' | 'a' | 'b' => 'a',
        _ => 'b',
    };
    let s: String = b.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

#[cfg(test)]
mod space_tests {
    use super::*;

    #[test]
    fn too_little_space_is_a_typed_error_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        check_space(dir.path(), 0).unwrap();
        match check_space(dir.path(), u64::MAX) {
            Err(ImageError::NoSpace {
                dir: named,
                free_bytes,
                needed_bytes,
            }) => {
                assert_eq!(named, dir.path());
                assert!(free_bytes > 0 && free_bytes < u64::MAX);
                assert_eq!(needed_bytes, u64::MAX);
            }
            other => panic!("expected NoSpace, got {other:?}"),
        }
        let msg = check_space(dir.path(), u64::MAX).unwrap_err().to_string();
        assert!(msg.contains("MiB free"), "{msg}");
    }
}
