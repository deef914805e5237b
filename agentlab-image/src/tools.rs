//! Host prerequisites and running external commands with a readable failure.

use std::path::PathBuf;
use std::process::Command;

use crate::error::ImageError;

/// Host tools a full build needs: `(program, Debian package)`.
pub const REQUIRED_TOOLS: &[(&str, &str)] = &[
    ("mmdebstrap", "mmdebstrap"),
    ("qemu-img", "qemu-utils"),
    ("sfdisk", "fdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("extlinux", "extlinux"),
    ("losetup", "mount"),
    ("mount", "mount"),
    ("chroot", "coreutils"),
];

/// The MBR boot code installed by the `extlinux` package.
pub const MBR_PATHS: &[&str] = &["/usr/lib/EXTLINUX/mbr.bin", "/usr/lib/syslinux/mbr/mbr.bin"];

/// `program`'s path in `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Checks root and every tool in `tools` (plus the MBR boot code when `extlinux` is needed);
/// the first missing one is the error.
pub fn check(tools: &[(&str, &str)]) -> Result<(), ImageError> {
    if !is_root() {
        return Err(ImageError::NotRoot);
    }
    for (tool, package) in tools {
        if which(tool).is_none() {
            return Err(ImageError::MissingTool {
                tool: (*tool).to_owned(),
                package: (*package).to_owned(),
            });
        }
    }
    if tools.iter().any(|(t, _)| *t == "extlinux") && mbr_path().is_none() {
        return Err(ImageError::MissingTool {
            tool: MBR_PATHS[0].to_owned(),
            package: "extlinux".to_owned(),
        });
    }
    Ok(())
}

/// The MBR boot code file, if installed.
pub fn mbr_path() -> Option<PathBuf> {
    MBR_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Runs `cmd`, capturing its output; a non-zero exit becomes a [`ImageError::Step`] naming
/// the command, its status and the last lines of its stderr.
pub fn run(step: &'static str, cmd: &mut Command) -> Result<String, ImageError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| ImageError::step(step, format!("cannot run {shown}: {e}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
    let tail = tail[tail.len().saturating_sub(15)..].join("\n");
    Err(ImageError::step(
        step,
        format!("{shown} exited with {}:\n{tail}", out.status),
    ))
}
