//! The channel file: how the job runner hands the channel key to the channel process.
//!
//! The runner reads (and deletes) the bootstrap file; when it carries a `channel_key` the
//! runner writes `{controller_url, vmid, channel_key}` to the channel file (default
//! [`DEFAULT_CHANNEL_FILE`], on the `/run` tmpfs; 0600, owned by the runner's user, which is
//! root in a sandbox, before it drops privileges). The channel process
//! (`agent-runner channel`) waits for that file and keeps the channel up with it. The file is
//! kept for the sandbox's life, so a restarted runner's channel process finds it again.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Duration;

use agentlab_core::{BootstrapData, SecretValue, Vmid};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::connect::ChannelTarget;
use crate::error::GuestError;

/// Default channel file.
pub const DEFAULT_CHANNEL_FILE: &str = "/run/agentlab/channel.json";

/// Writes the channel file from `data` (nothing when it has no channel key). Written to a
/// temporary name (0600) and renamed, so a reader never sees half a file.
pub fn write_channel_file(path: &Path, data: &BootstrapData) -> Result<bool, GuestError> {
    let Some(key) = &data.channel_key else {
        return Ok(false);
    };
    let io = |e| GuestError::io(format!("Cannot write {}", path.display()), e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = json!({
        "controller_url": data.controller_url,
        "vmid": data.vmid,
        "channel_key": key.expose(),
    })
    .to_string();
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    tracing::info!(path = %path.display(), "channel key handed to the channel process");
    Ok(true)
}

/// Parses a channel file; errors never contain the key.
pub fn read_channel_file(path: &Path) -> Result<ChannelTarget, GuestError> {
    let bad = |reason: &str| GuestError::BootstrapFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let bytes = std::fs::read(path)
        .map_err(|e| GuestError::io(format!("Cannot read {}", path.display()), e))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad("not valid JSON"))?;
    let controller_url = v["controller_url"]
        .as_str()
        .ok_or_else(|| bad("field \"controller_url\" must be a string"))?;
    let vmid = v["vmid"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .and_then(|n| Vmid::new(n).ok())
        .ok_or_else(|| bad("field \"vmid\" must be a vmid"))?;
    let key = v["channel_key"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad("field \"channel_key\" must be a non-empty string"))?;
    Ok(ChannelTarget {
        controller_url: controller_url.trim_end_matches('/').to_owned(),
        vmid,
        key: SecretValue::new(key),
    })
}

/// Waits (polling every `poll`) until the channel file exists, then reads it; `None` when
/// cancelled first.
pub async fn wait_channel_file(
    path: &Path,
    poll: Duration,
    cancel: &CancellationToken,
) -> Option<Result<ChannelTarget, GuestError>> {
    let mut announced = false;
    loop {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Some(read_channel_file(path));
        }
        if !announced {
            tracing::info!(path = %path.display(), "waiting for the channel file");
            announced = true;
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = cancel.cancelled() => return None,
        }
    }
}

/// The channel process: waits for the channel file at `path`, then keeps the channel up
/// until `cancel` fires. Errors only for an unreadable channel file.
pub async fn serve_from_file(
    path: &Path,
    config: super::ChannelConfig,
    cancel: CancellationToken,
) -> Result<(), GuestError> {
    let target = match wait_channel_file(path, Duration::from_millis(200), &cancel).await {
        None => return Ok(()),
        Some(t) => t?,
    };
    tracing::info!(sandbox = %target.vmid, url = %target.controller_url, "serving the sandbox channel");
    super::run_channel(
        target,
        std::sync::Arc::new(config),
        super::ChannelBackoff::default(),
        cancel,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_file_round_trips_privately() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/channel.json");
        let mut data = BootstrapData {
            controller_url: "http://10.77.0.1:8844".into(),
            token: SecretValue::new("tok"),
            vmid: Vmid::new(9001).expect("vmid"),
            channel_key: None,
            ssh_public_keys: Vec::new(),
        };
        assert!(!write_channel_file(&path, &data).expect("no key"));
        assert!(!path.exists());
        data.channel_key = Some(SecretValue::new("ck-secret"));
        assert!(write_channel_file(&path, &data).expect("write"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let t = read_channel_file(&path).expect("read");
        assert_eq!(t.controller_url, "http://10.77.0.1:8844");
        assert_eq!(t.vmid.get(), 9001);
        assert_eq!(t.key.expose(), "ck-secret");
        assert!(
            !std::fs::read_to_string(&path)
                .expect("text")
                .contains("tok\"")
        );
        std::fs::write(
            &path,
            br#"{"controller_url":"http://x","vmid":9001,"channel_key":7}"#,
        )
        .expect("write");
        let err = read_channel_file(&path).expect_err("bad").to_string();
        assert!(err.contains("channel_key"), "{err}");
    }
}
