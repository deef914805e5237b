//! The control socket: parent dir 0750, socket 0660 with an optional group, and a stale
//! socket file replaced only when nothing answers on it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use tokio::net::{UnixListener, UnixStream};

/// Binds the control socket at `path`.
pub async fn bind(path: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating socket directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .with_context(|| format!("setting mode 0750 on {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!("another agentlabd is already serving {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
        tracing::info!(socket = %path.display(), "replaced stale socket file");
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting mode 0660 on {}", path.display()))?;
    if let Some(g) = group {
        let gid = gid_of(g).with_context(|| format!("socket_group {g:?}"))?;
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("chown {} to group {g}", path.display()))?;
    }
    Ok(listener)
}

/// Who is on the other end of a control connection (`SO_PEERCRED`), for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The client's uid.
    pub uid: Option<u32>,
    /// The client's pid.
    pub pid: Option<i32>,
}

impl std::fmt::Display for PeerCred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.uid, self.pid) {
            (Some(u), Some(p)) => write!(f, "uid {u} (pid {p})"),
            (Some(u), None) => write!(f, "uid {u}"),
            _ => f.write_str("unknown client"),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, UnixListener>>
    for PeerCred
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        let cred = stream.io().peer_cred().ok();
        Self {
            uid: cred.map(|c| c.uid()),
            pid: cred.and_then(|c| c.pid()),
        }
    }
}

/// Looks a group up in `/etc/group` (or accepts a numeric gid).
fn gid_of(group: &str) -> anyhow::Result<u32> {
    if let Ok(n) = group.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string("/etc/group").context("reading /etc/group")?;
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split(':');
            let name = parts.next()?;
            let gid = parts.nth(1)?;
            (name == group).then(|| gid.parse().ok()).flatten()
        })
        .next()
        .with_context(|| format!("no group named {group}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/agentlabd.sock");
        let l1 = bind(&path, None).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o750);
        let err = bind(&path, None).await.unwrap_err();
        assert!(err.to_string().contains("already serving"), "{err}");
        drop(l1);
        bind(&path, Some("0")).await.unwrap();
    }
}
