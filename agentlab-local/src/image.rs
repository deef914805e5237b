//! `agentlab local image build`: a read-only root filesystem for local sandboxes, built from
//! Debian packages with `mmdebstrap` (or `debootstrap`), then prepared for AgentLab: the
//! `agent` user (uid/gid 1000), `/home/agent`, `/work`, `/run/agentlab` and a marker file.
//! Point `local.rootfs` at the result.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::LocalError;

/// Packages every image gets: what `agent-runner` needs to clone and run an agent.
pub const BASE_PACKAGES: &[&str] = &[
    "git",
    "ca-certificates",
    "openssh-client",
    "python3",
    "procps",
    "bubblewrap",
];

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Where the finished root filesystem goes (must not exist unless `force`).
    pub out: PathBuf,
    /// Debian/Ubuntu suite (`bookworm`, `trixie`, `noble`, …).
    pub suite: String,
    /// Extra packages besides [`BASE_PACKAGES`].
    pub extra_packages: Vec<String>,
    /// Replace an existing `out`.
    pub force: bool,
}

/// The host's suite from `/etc/os-release` (`VERSION_CODENAME`), else `bookworm`.
pub fn host_suite() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "bookworm".to_owned())
}

/// Builds the image with `mmdebstrap` (preferred; uses the host's apt sources) or
/// `debootstrap`, into a temporary directory next to `out`, prepares it and renames it into
/// place. Blocking; takes a minute or so.
pub fn build(spec: &ImageSpec) -> Result<PathBuf, LocalError> {
    if spec.out.exists() && !spec.force {
        return Err(LocalError::Missing(format!(
            "{} exists; pass --force to replace it",
            spec.out.display()
        )));
    }
    let parent = spec.out.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|e| io(parent, &e))?;
    let tmp = parent.join(format!(
        ".{}.building",
        spec.out
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("rootfs")
    ));
    let _ = fs::remove_dir_all(&tmp);
    let mut packages: Vec<String> = BASE_PACKAGES.iter().map(|s| (*s).to_owned()).collect();
    packages.extend(spec.extra_packages.iter().cloned());
    let include = format!("--include={}", packages.join(","));
    let status = if which("mmdebstrap") {
        Command::new("mmdebstrap")
            .args(["--variant=minbase", &include, &spec.suite])
            .arg(&tmp)
            .status()
    } else if which("debootstrap") {
        Command::new("debootstrap")
            .args(["--variant=minbase", &include, &spec.suite])
            .arg(&tmp)
            .status()
    } else {
        return Err(LocalError::Missing(
            "neither mmdebstrap nor debootstrap is installed (apt-get install mmdebstrap)".into(),
        ));
    };
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return Err(LocalError::Missing(format!(
                "building the image failed ({s}); see the output above"
            )));
        }
        Err(e) => return Err(io(&tmp, &e)),
    }
    prepare_rootfs(&tmp)?;
    if spec.out.exists() {
        fs::remove_dir_all(&spec.out).map_err(|e| io(&spec.out, &e))?;
    }
    fs::rename(&tmp, &spec.out).map_err(|e| io(&spec.out, &e))?;
    Ok(spec.out.clone())
}

/// Makes a Debian root filesystem usable as a sandbox base: the `agent` user and group
/// (1000), `/home/agent` (0755, owned by 1000), `/work`, `/run/agentlab` and the marker file
/// `/etc/agentlab-image`, plus empty mount points for the per-sandbox `/etc` files.
/// Idempotent.
pub fn prepare_rootfs(root: &Path) -> Result<(), LocalError> {
    for d in ["home/agent", "work", "run/agentlab", "etc"] {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(|e| io(&p, &e))?;
    }
    append_once(
        &root.join("etc/passwd"),
        "agent:",
        "agent:x:1000:1000:AgentLab agent:/home/agent:/bin/sh\n",
    )?;
    append_once(&root.join("etc/group"), "agent:", "agent:x:1000:\n")?;
    let home = root.join("home/agent");
    std::os::unix::fs::chown(&home, Some(1000), Some(1000)).map_err(|e| io(&home, &e))?;
    // Mount points for the files the backend binds per sandbox (the base is read-only).
    for f in ["hosts", "hostname", "resolv.conf", "nsswitch.conf"] {
        let p = root.join("etc").join(f);
        if !p.exists() {
            fs::write(&p, "").map_err(|e| io(&p, &e))?;
        }
    }
    let marker = root.join("etc/agentlab-image");
    fs::write(
        &marker,
        format!("built-by: agentlab {}\n", env!("CARGO_PKG_VERSION")),
    )
    .map_err(|e| io(&marker, &e))?;
    Ok(())
}

fn append_once(path: &Path, prefix: &str, line: &str) -> Result<(), LocalError> {
    let text = fs::read_to_string(path).unwrap_or_default();
    if text.lines().any(|l| l.starts_with(prefix)) {
        return Ok(());
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io(path, &e))?;
    if !text.is_empty() && !text.ends_with('\n') {
        f.write_all(b"\n").map_err(|e| io(path, &e))?;
    }
    f.write_all(line.as_bytes()).map_err(|e| io(path, &e))
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn io(path: &Path, e: &std::io::Error) -> LocalError {
    LocalError::Missing(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_adds_the_agent_user_and_dirs_once() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh",
        )
        .unwrap();
        prepare_rootfs(dir.path()).unwrap();
        prepare_rootfs(dir.path()).unwrap();
        let passwd = fs::read_to_string(dir.path().join("etc/passwd")).unwrap();
        assert_eq!(
            passwd,
            "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:AgentLab agent:/home/agent:/bin/sh\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("etc/group")).unwrap(),
            "agent:x:1000:\n"
        );
        for d in ["home/agent", "work", "run/agentlab"] {
            assert!(dir.path().join(d).is_dir(), "{d}");
        }
        for f in ["hosts", "hostname", "resolv.conf", "nsswitch.conf"] {
            assert!(dir.path().join("etc").join(f).is_file(), "{f}");
        }
        use std::os::unix::fs::MetadataExt;
        let root = fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if root {
            assert_eq!(
                fs::metadata(dir.path().join("home/agent")).unwrap().uid(),
                1000
            );
        }
        assert!(dir.path().join("etc/agentlab-image").is_file());
    }

    #[test]
    fn existing_output_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ImageSpec {
            out: dir.path().to_owned(),
            suite: "bookworm".into(),
            extra_packages: vec![],
            force: false,
        };
        let err = build(&spec).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
    }
}
