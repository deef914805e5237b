//! The sandbox channel: how the daemon reaches into a running sandbox.
//!
//! The guest agent (`agent-runner`) dials the guest listener — the one address a sandbox may
//! reach — with `GET` [`CHANNEL_PATH`], `Upgrade:` [`CHANNEL_PROTOCOL`], its vmid in
//! [`VMID_HEADER`] and its channel key as a bearer token (see [`crate::channel_key`]). After
//! `101 Switching Protocols` the connection carries [yamux]; the daemon opens one yamux stream
//! per exec, shell, copy or forward, and the guest never opens any (the daemon resets streams
//! a guest opens, so a sandbox cannot reach anything on the host through its channel).
//!
//! The control socket offers the same streams to clients: `POST
//! /v1/sandboxes/{vmid}/stream` with `Upgrade:` [`STREAM_PROTOCOL`]; after the `101` both
//! sides speak [`crate::api::frame`], the client's first frame being a [`StreamRequest`].
//!
//! [yamux]: https://github.com/hashicorp/yamux/blob/master/spec.md

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Path of the channel upgrade on the guest listener.
pub const CHANNEL_PATH: &str = "/v1/channel";
/// `Upgrade` token of the guest channel (yamux follows the `101`).
pub const CHANNEL_PROTOCOL: &str = "agentlab-channel/1";
/// `Upgrade` token of a control-socket stream ([`crate::api::frame`] follows the `101`).
pub const STREAM_PROTOCOL: &str = "agentlab-stream/1";
/// Header carrying the sandbox's vmid on the channel upgrade.
pub const VMID_HEADER: &str = "x-agentlab-vmid";
/// Most arguments an exec may have.
pub const MAX_ARGS: usize = 4096;

/// Who runs an exec or owns copied files inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecUser {
    /// The unprivileged `agent` user (uid 1000), as jobs run.
    #[default]
    Agent,
    /// The sandbox's root (on `local`, mapped to an unprivileged host id like every id).
    Root,
}

impl ExecUser {
    /// `agent` or `root`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Root => "root",
        }
    }
}

/// A terminal size (a shell, or an exec with a PTY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// Run a command in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments (`argv[0]` looked up in `PATH`).
    pub argv: Vec<String>,
    /// Who runs it.
    #[serde(default)]
    pub user: ExecUser,
    /// Working directory (default: the user's home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Kill the process group (SIGTERM, then SIGKILL 5 s later) after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Run in a pseudo-terminal of this size (stdout carries the terminal's output; there is
    /// no separate stderr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
}

/// Copy a tar stream into the sandbox, unpacked under `path` (a directory, created if
/// missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyInRequest {
    /// Absolute destination directory inside the sandbox.
    pub path: String,
    /// Owner of the written files.
    #[serde(default)]
    pub user: ExecUser,
}

/// Copy `path` (a file or a directory) out of the sandbox as a tar stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyOutRequest {
    /// Absolute path inside the sandbox.
    pub path: String,
    /// Who reads it.
    #[serde(default)]
    pub user: ExecUser,
}

/// Connect to a TCP port on the sandbox's loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    /// Port inside the sandbox (on 127.0.0.1).
    pub port: u16,
}

/// The first frame of every stream: what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamRequest {
    /// Run a command (or a shell, with `tty`).
    Exec(ExecRequest),
    /// Copy into the sandbox.
    CopyIn(CopyInRequest),
    /// Copy out of the sandbox.
    CopyOut(CopyOutRequest),
    /// A TCP connection to a port in the sandbox.
    Forward(ForwardRequest),
}

impl StreamRequest {
    /// `exec`, `shell`, `copy_in`, `copy_out` or `forward` (the event names use it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exec(e) if e.tty.is_some() => "shell",
            Self::Exec(_) => "exec",
            Self::CopyIn(_) => "copy_in",
            Self::CopyOut(_) => "copy_out",
            Self::Forward(_) => "forward",
        }
    }

    /// Checks the fields; the error says which field and why.
    pub fn validate(&self) -> Result<(), String> {
        let abs = |p: &str, what: &str| {
            if p.starts_with('/') && !p.contains('\0') {
                Ok(())
            } else {
                Err(format!("{what} must be an absolute path, got {p:?}"))
            }
        };
        match self {
            Self::Exec(e) => {
                if e.argv.is_empty() || e.argv[0].is_empty() {
                    return Err("argv must name a program".into());
                }
                if e.argv.len() > MAX_ARGS {
                    return Err(format!("argv has more than {MAX_ARGS} arguments"));
                }
                if e.argv.iter().any(|a| a.contains('\0')) {
                    return Err("argv must not contain NUL bytes".into());
                }
                for k in e.env.keys() {
                    let ok = !k.is_empty()
                        && k.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric())
                        && !k.as_bytes()[0].is_ascii_digit();
                    if !ok {
                        return Err(format!("env name {k:?} is not a valid variable name"));
                    }
                }
                if e.env.values().any(|v| v.contains('\0')) {
                    return Err("env values must not contain NUL bytes".into());
                }
                if let Some(cwd) = &e.cwd {
                    abs(cwd, "cwd")?;
                }
                if e.timeout_secs == Some(0) {
                    return Err("timeout_secs must be at least 1".into());
                }
                if let Some(t) = e.tty
                    && (t.cols == 0 || t.rows == 0)
                {
                    return Err("tty size must be at least 1x1".into());
                }
                Ok(())
            }
            Self::CopyIn(c) => abs(&c.path, "path"),
            Self::CopyOut(c) => abs(&c.path, "path"),
            Self::Forward(f) if f.port == 0 => Err("port must be 1-65535".into()),
            Self::Forward(_) => Ok(()),
        }
    }
}

/// How an exec ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code; for a signal, 128 + the signal number (as shells report it).
    pub code: i32,
    /// The signal that ended it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Ended by its `timeout_secs`.
    #[serde(default)]
    pub timed_out: bool,
}

/// The end of a data stream (a copy): how many bytes and their SHA-256, so the receiver
/// checks it got exactly what was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Bytes sent.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of those bytes.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(argv: &[&str]) -> ExecRequest {
        ExecRequest {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            user: ExecUser::Agent,
            cwd: None,
            env: BTreeMap::new(),
            timeout_secs: None,
            tty: None,
        }
    }

    #[test]
    fn requests_round_trip_and_validate() {
        let r = StreamRequest::Exec(exec(&["ls", "-l"]));
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(json, r#"{"kind":"exec","argv":["ls","-l"],"user":"agent"}"#);
        assert_eq!(
            serde_json::from_str::<StreamRequest>(&json).expect("parse"),
            r
        );
        r.validate().expect("valid");
        assert!(StreamRequest::Exec(exec(&[])).validate().is_err());
        let mut bad = exec(&["env"]);
        bad.env.insert("1X".into(), "v".into());
        assert!(
            StreamRequest::Exec(bad)
                .validate()
                .unwrap_err()
                .contains("1X")
        );
        let mut rel = exec(&["pwd"]);
        rel.cwd = Some("tmp".into());
        assert!(StreamRequest::Exec(rel).validate().is_err());
        assert!(
            StreamRequest::Forward(ForwardRequest { port: 0 })
                .validate()
                .is_err()
        );
        assert!(
            StreamRequest::CopyOut(CopyOutRequest {
                path: "etc".into(),
                user: ExecUser::Root
            })
            .validate()
            .is_err()
        );
        assert!(
            serde_json::from_str::<StreamRequest>(r#"{"kind":"exec","argv":["x"],"evil":1}"#)
                .is_err()
        );
    }
}
