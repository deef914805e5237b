//! `remote:` the control API on TCP with TLS for other machines (off by default), and the
//! request rates both control APIs allow.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::validate::Violation;
use crate::yaml::ErrorKind;

/// `remote:` the remote control API. Off unless `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Address and port to serve HTTPS on, e.g. `0.0.0.0:8845`; absent = off (the default).
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain of the operator's certificate; with `tls_key`. Absent: a
    /// self-signed certificate is generated on first start under `<data_dir>/remote/`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Names and addresses the generated certificate is valid for (default: the host name,
    /// `localhost`, `127.0.0.1`, `::1` and the listen address when it is not a wildcard).
    pub tls_names: Vec<String>,
    /// Requests per second one client address may make, sustained (default 10).
    pub rate_per_sec: u32,
    /// Requests one client address may make at once above the sustained rate (default 40).
    pub burst: u32,
    /// Longest TLS handshake in seconds before the connection is dropped (default 10).
    pub handshake_timeout_secs: u64,
    /// Most connections served at once; more wait in the kernel's backlog (default 256).
    pub max_connections: usize,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            rate_per_sec: 10,
            burst: 40,
            handshake_timeout_secs: 10,
            max_connections: 256,
        }
    }
}

fn invalid(field: &'static str, reason: &str) -> Violation {
    Violation {
        kind: ErrorKind::Invalid,
        field,
        reason: reason.to_owned(),
    }
}

/// Checks the `remote:` section.
pub(super) fn validate_remote(r: &RemoteConfig) -> Result<(), Violation> {
    if r.tls_cert.is_some() != r.tls_key.is_some() {
        return Err(invalid(
            "remote.tls_cert",
            "tls_cert and tls_key go together (give both, or neither for a generated certificate)",
        ));
    }
    for (path, field) in [
        (&r.tls_cert, "remote.tls_cert"),
        (&r.tls_key, "remote.tls_key"),
    ] {
        if let Some(p) = path
            && !p.is_absolute()
        {
            return Err(invalid(field, "must be an absolute path"));
        }
    }
    for (value, field) in [
        (u64::from(r.rate_per_sec), "remote.rate_per_sec"),
        (u64::from(r.burst), "remote.burst"),
        (r.handshake_timeout_secs, "remote.handshake_timeout_secs"),
        (r.max_connections as u64, "remote.max_connections"),
    ] {
        if value == 0 {
            return Err(invalid(field, "must be at least 1"));
        }
    }
    if r.tls_names.iter().any(|n| n.trim().is_empty()) {
        return Err(invalid("remote.tls_names", "names must not be empty"));
    }
    Ok(())
}
