//! [`NftRunner`]: the narrow leaf that actually talks to nftables.
//!
//! [`ProcessRunner`] spawns the `nft` binary (optionally inside a network namespace via
//! `ip netns exec`, which the test harness uses); [`RecordingRunner`] records batches for unit
//! tests of the firewall logic.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::NetError;

/// Runs nft batches and queries. A narrow leaf: unit tests mock it with mockall
/// (`MockNftRunner`, under `cfg(test)` or the `mock` feature).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait NftRunner: Send + Sync + fmt::Debug {
    /// Applies `script` atomically (`nft -f -`).
    async fn apply(&self, script: &str) -> Result<(), NetError>;
    /// Runs `nft <args>` and returns its stdout.
    async fn query<'a>(&self, args: &'a [&'a str]) -> Result<String, NetError>;
}

/// Runs the real `nft` binary as a child process (tokio, never blocking an async thread).
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    nft: PathBuf,
    netns: Option<String>,
}

impl ProcessRunner {
    /// Runs `nft` at `nft` in the caller's network namespace.
    pub fn new(nft: impl Into<PathBuf>) -> Self {
        Self {
            nft: nft.into(),
            netns: None,
        }
    }

    /// Runs `nft` inside the named network namespace (`ip netns exec <ns> nft …`).
    pub fn in_netns(nft: impl Into<PathBuf>, netns: impl Into<String>) -> Self {
        Self {
            nft: nft.into(),
            netns: Some(netns.into()),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.nft);
                c
            }
            None => Command::new(&self.nft),
        };
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    fn program(&self) -> String {
        self.nft.display().to_string()
    }
}

#[async_trait]
impl NftRunner for ProcessRunner {
    async fn apply(&self, script: &str) -> Result<(), NetError> {
        let mut child = self
            .command(&["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|source| NetError::Spawn {
                program: self.program(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|source| NetError::Io {
                    context: "writing the nft batch".to_owned(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| NetError::Io {
                context: "waiting for nft".to_owned(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NetError::Rejected(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }

    async fn query<'a>(&self, args: &'a [&'a str]) -> Result<String, NetError> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| NetError::Spawn {
                program: self.program(),
                source,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(NetError::Command {
                program: self.program(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}

/// A fake runner: records every applied batch, answers queries with a fixed reply.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    batches: Mutex<Vec<String>>,
    queries: Mutex<Vec<Vec<String>>>,
    reply: Mutex<Option<String>>,
    reject: Mutex<Option<String>>,
}

impl RecordingRunner {
    /// A runner that accepts everything and answers queries with an error (no table).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the stdout returned by [`NftRunner::query`] (`None`: fail as if the table is absent).
    pub fn set_reply(&self, reply: Option<&str>) {
        *self.reply.lock().unwrap_or_else(PoisonError::into_inner) = reply.map(str::to_owned);
    }

    /// Makes the next batches fail with this message (`None`: accept again).
    pub fn set_reject(&self, message: Option<&str>) {
        *self.reject.lock().unwrap_or_else(PoisonError::into_inner) = message.map(str::to_owned);
    }

    /// The batches applied so far.
    pub fn batches(&self) -> Vec<String> {
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The query argument lists seen so far.
    pub fn queries(&self) -> Vec<Vec<String>> {
        self.queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl NftRunner for RecordingRunner {
    async fn apply(&self, script: &str) -> Result<(), NetError> {
        if let Some(m) = self
            .reject
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(NetError::Rejected(m));
        }
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(script.to_owned());
        Ok(())
    }

    async fn query<'a>(&self, args: &'a [&'a str]) -> Result<String, NetError> {
        self.queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(args.iter().map(|a| (*a).to_owned()).collect());
        self.reply
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| NetError::Command {
                program: "nft".to_owned(),
                message: "No such file or directory".to_owned(),
            })
    }
}
