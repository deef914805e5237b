//! The bootstrap's SSH public keys into the agent user's `~/.ssh/authorized_keys`, for
//! `agentlab sandbox ssh`. On the local backend this is how keys arrive; on Proxmox and QEMU
//! cloud-init installs the same keys at boot and this only confirms them.
//!
//! Runs once, at bootstrap, before any agent code ran in the sandbox. Still careful with a
//! home the agent owns: nothing is followed through a symlink (`.ssh` must be a real
//! directory, the file is written under a fresh name with `O_EXCL` and renamed over the old
//! one), and what is created belongs to the agent user (0700 directory, 0600 file). Lines
//! already in the file stay; only missing keys are added.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

use crate::error::GuestError;
use crate::privdrop::RunAs;

fn err(reason: String) -> GuestError {
    GuestError::step("bootstrap", reason)
}

/// Adds `keys` to `home/.ssh/authorized_keys`, owned by `owner` (the runner's own user when
/// `None`). Returns how many keys were added.
pub fn install(home: &Path, owner: Option<&RunAs>, keys: &[String]) -> Result<usize, GuestError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let real_dir = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.file_type().is_dir());
    match real_dir(home) {
        Ok(true) => {}
        Ok(false) => return Err(err(format!("{} is not a directory", home.display()))),
        Err(e) => return Err(err(format!("cannot use {}: {e}", home.display()))),
    }
    let ssh = home.join(".ssh");
    match real_dir(&ssh) {
        Ok(true) => {}
        Ok(false) => {
            return Err(err(format!(
                "{} is not a directory (a symlink?); SSH keys not installed",
                ssh.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&ssh)
                .map_err(|e| err(format!("cannot create {}: {e}", ssh.display())))?;
            if let Some(o) = owner {
                std::os::unix::fs::lchown(&ssh, Some(o.uid), Some(o.gid))
                    .map_err(|e| err(format!("cannot chown {}: {e}", ssh.display())))?;
            }
        }
        Err(e) => return Err(err(format!("cannot use {}: {e}", ssh.display()))),
    }
    let file = ssh.join("authorized_keys");
    let existing = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&file)
    {
        Ok(mut f) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut f, &mut text)
                .map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(err(format!("cannot read {}: {e}", file.display()))),
    };
    let present: Vec<&str> = existing.lines().map(str::trim).collect();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !present.contains(&k.trim()))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for k in &missing {
        text.push_str(k.trim());
        text.push('\n');
    }
    let tmp = ssh.join(".authorized_keys.agentlab");
    let _ = std::fs::remove_file(&tmp);
    let io = |what: &str, e: std::io::Error| err(format!("cannot {what} {}: {e}", tmp.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    if let Some(o) = owner {
        std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid)).map_err(|e| io("chown", e))?;
    }
    f.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("sync", e))?;
    std::fs::rename(&tmp, &file).map_err(|e| io("rename", e))?;
    Ok(missing.len())
}

/// Asks systemd to start `ssh.service` (without waiting) when this is a systemd guest and the
/// runner is root: the image's `agentlab-ssh-if-keys.service` checks for keys once, after
/// cloud-init, which may be before the runner wrote them. Elsewhere (the local backend, no
/// systemd) nothing happens; a failure is logged, never fatal.
pub fn start_sshd() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/run/systemd/system").is_dir() {
        return;
    }
    match std::process::Command::new("systemctl")
        .args(["start", "--no-block", "ssh.service"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
    {
        Ok(o) if o.status.success() => tracing::info!("ssh.service start requested"),
        Ok(o) => tracing::warn!(
            stderr = %String::from_utf8_lossy(&o.stderr).trim(),
            "systemctl start ssh.service failed"
        ),
        Err(e) => tracing::warn!(error = %e, "systemctl not run"),
    }
}

/// Gives the bootstrap's SSH keys to the agent user ([`install`]). A failure costs
/// only `sandbox ssh`, never the job: it is logged and the run goes on.
pub(crate) fn install_for(config: &crate::config::RunnerConfig, keys: &[String]) {
    if keys.is_empty() {
        return;
    }
    let Some(home) = &config.agent_home else {
        tracing::warn!("SSH keys given but no agent home configured; not installed");
        return;
    };
    match install(home, config.run_as.as_ref(), keys) {
        Ok(n) => {
            tracing::info!(added = n, home = %home.display(), "SSH keys installed");
            start_sshd();
        }
        Err(e) => tracing::warn!(error = %e, "SSH keys not installed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF64o0VDodINATLXFtw+CbG17MoDthD4kkGmh7vKoGB+ a@h";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF64o0VDodINATLXFtw+CbG17MoDthD4kkGmh7vKoGB+ b@h";

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn keys_are_added_once_and_existing_lines_stay() {
        let home = tempfile::tempdir().expect("dir");
        assert_eq!(install(home.path(), None, &[]).expect("none"), 0);
        assert!(!home.path().join(".ssh").exists(), "no keys: nothing made");
        let keys = vec![KEY_A.to_owned()];
        assert_eq!(install(home.path(), None, &keys).expect("install"), 1);
        let file = home.path().join(".ssh/authorized_keys");
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            format!("{KEY_A}\n")
        );
        assert_eq!(mode(&home.path().join(".ssh")), 0o700);
        assert_eq!(mode(&file), 0o600);
        std::fs::write(&file, format!("{KEY_A}\n# mine\nssh-rsa AAAA mine")).expect("edit");
        let keys = vec![KEY_A.to_owned(), KEY_B.to_owned()];
        assert_eq!(install(home.path(), None, &keys).expect("again"), 1);
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            format!("{KEY_A}\n# mine\nssh-rsa AAAA mine\n{KEY_B}\n")
        );
        assert_eq!(install(home.path(), None, &keys).expect("third"), 0);
    }

    #[test]
    fn symlinks_are_not_followed() {
        let home = tempfile::tempdir().expect("dir");
        let elsewhere = tempfile::tempdir().expect("dir");
        let keys = vec![KEY_A.to_owned()];
        std::os::unix::fs::symlink(elsewhere.path(), home.path().join(".ssh")).expect("link");
        let e = install(home.path(), None, &keys).expect_err("a symlinked .ssh");
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).expect("ls").count(), 0);

        std::fs::remove_file(home.path().join(".ssh")).expect("unlink");
        std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
        let target = elsewhere.path().join("victim");
        std::fs::write(&target, "untouched").expect("victim");
        let file = home.path().join(".ssh/authorized_keys");
        std::os::unix::fs::symlink(&target, &file).expect("link");
        let e = install(home.path(), None, &keys).expect_err("a symlinked file");
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "untouched");
    }
}
