//! Waiting for and parsing the bootstrap file (`agentlab_core::BootstrapData` as JSON).
//!
//! Backends deliver the file differently (cloud-init, virtiofs, a local write), so the runner
//! polls the candidate paths until one exists. Backends must write it atomically (write to a
//! temporary name, then rename). Parse errors name the path and the problem but never echo
//! field values, so the token cannot end up in a journal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentlab_core::{BootstrapData, SecretValue, Vmid};
use serde_json::Value;

use crate::error::GuestError;

/// Polls `paths` (in order) until one exists, then parses it.
pub async fn wait_for_file(
    paths: &[PathBuf],
    max_wait: Duration,
    poll: Duration,
) -> Result<(PathBuf, BootstrapData), GuestError> {
    let start = Instant::now();
    let mut announced = false;
    loop {
        for path in paths {
            if tokio::fs::try_exists(path).await.unwrap_or(false) {
                let text = tokio::fs::read(path)
                    .await
                    .map_err(|e| GuestError::io(format!("Cannot read {}", path.display()), e))?;
                return parse(path, &text).map(|d| (path.clone(), d));
            }
        }
        if start.elapsed() >= max_wait {
            return Err(GuestError::BootstrapMissing {
                waited_secs: start.elapsed().as_secs(),
                paths: join_paths(paths),
            });
        }
        if !announced {
            tracing::info!(paths = %join_paths(paths), "waiting for bootstrap file");
            announced = true;
        }
        tokio::time::sleep(poll).await;
    }
}

/// Removes the delivered bootstrap file after it was read (best effort: a backend may deliver
/// it read-only, e.g. a bind mount; then it stays only as long as the sandbox).
pub fn remove_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "bootstrap file removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the bootstrap file");
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses bootstrap JSON; errors name `path` and never include field values.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<BootstrapData, GuestError> {
    let bad = |reason: String| GuestError::BootstrapFile {
        path: path.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "not valid JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(bad("expected a JSON object".to_owned()));
    };
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "controller_url" | "token" | "vmid" | "channel_key" | "ssh_public_keys"
        ) {
            return Err(bad(format!("unknown field {key:?}")));
        }
    }
    let field = |name: &str| {
        map.get(name)
            .ok_or_else(|| bad(format!("missing field {name:?}")))
    };
    let controller_url = field("controller_url")?
        .as_str()
        .ok_or_else(|| bad("field \"controller_url\" must be a string".to_owned()))?;
    if !(controller_url.starts_with("http://") || controller_url.starts_with("https://")) {
        return Err(bad(
            "field \"controller_url\" must start with http:// or https://".to_owned(),
        ));
    }
    let token = field("token")?
        .as_str()
        .ok_or_else(|| bad("field \"token\" must be a string".to_owned()))?;
    if token.is_empty() {
        return Err(bad("field \"token\" is empty".to_owned()));
    }
    let vmid = field("vmid")?
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .and_then(|v| Vmid::new(v).ok())
        .ok_or_else(|| bad("field \"vmid\" must be a number in 100..=999999999".to_owned()))?;
    let channel_key = match map.get("channel_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() => Some(SecretValue::new(k.as_str())),
        Some(_) => {
            return Err(bad(
                "field \"channel_key\" must be a non-empty string".to_owned()
            ));
        }
    };
    let ssh_public_keys = match map.get("ssh_public_keys") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(keys)) => {
            let mut out = Vec::with_capacity(keys.len());
            for (i, k) in keys.iter().enumerate() {
                let k = k.as_str().ok_or_else(|| {
                    bad(format!("field \"ssh_public_keys\"[{i}] must be a string"))
                })?;
                agentlab_core::ssh_key::validate(k)
                    .map_err(|why| bad(format!("field \"ssh_public_keys\"[{i}]: {why}")))?;
                out.push(k.to_owned());
            }
            out
        }
        Some(_) => {
            return Err(bad(
                "field \"ssh_public_keys\" must be a list of strings".to_owned()
            ));
        }
    };
    Ok(BootstrapData {
        channel_key,
        ssh_public_keys,
        controller_url: controller_url.trim_end_matches('/').to_owned(),
        token: SecretValue::new(token),
        vmid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_file() {
        let d = parse(
            Path::new("/b.json"),
            br#"{"controller_url":"http://10.77.0.1:8844/","token":"tok-123456","vmid":9001}"#,
        )
        .unwrap();
        assert_eq!(d.controller_url, "http://10.77.0.1:8844");
        assert_eq!(d.token.expose(), "tok-123456");
        assert_eq!(d.vmid.get(), 9001);
        assert!(d.channel_key.is_none());
        let d = parse(
            Path::new("/b.json"),
            br#"{"controller_url":"http://x","token":"t","vmid":9001,"channel_key":"ck-1"}"#,
        )
        .unwrap();
        assert_eq!(
            d.channel_key.as_ref().map(SecretValue::expose),
            Some("ck-1")
        );
        let err = parse(
            Path::new("/b.json"),
            br#"{"controller_url":"http://x","token":"t","vmid":9001,"channel_key":7}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("channel_key"), "{err}");
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF64o0VDodINATLXFtw+CbG17MoDthD4kkGmh7vKoGB+ a@h";
        let text = format!(
            r#"{{"controller_url":"http://x","token":"t","vmid":9001,"ssh_public_keys":["{key}"]}}"#
        );
        let d = parse(Path::new("/b.json"), text.as_bytes()).unwrap();
        assert_eq!(d.ssh_public_keys, vec![key.to_owned()]);
        for bad in [r#""k""#, r#"[7]"#, r#"["command=x ssh-ed25519 AAAA"]"#] {
            let text = format!(
                r#"{{"controller_url":"http://x","token":"t","vmid":9001,"ssh_public_keys":{bad}}}"#
            );
            let err = parse(Path::new("/b.json"), text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains("ssh_public_keys"), "{bad}: {err}");
        }
    }

    #[test]
    fn errors_name_path_and_never_echo_values() {
        let cases: [&[u8]; 5] = [
            b"{not json",
            br#"{"controller_url":"http://x","token":12345678,"vmid":9001}"#,
            br#"{"controller_url":"http://x","token":"tok-secret-value","vmid":"abc"}"#,
            br#"{"controller_url":"ftp://x","token":"tok-secret-value","vmid":9001}"#,
            br#"{"controller_url":"http://x","vmid":9001}"#,
        ];
        for case in cases {
            let msg = parse(Path::new("/run/b.json"), case)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("/run/b.json"), "{msg}");
            assert!(
                !msg.contains("12345678") && !msg.contains("tok-secret"),
                "{msg}"
            );
        }
    }
}
