//! The QEMU guest agent over the sandbox's `qga.sock` with the `qapi` crate. Every session
//! starts with `guest-sync` on a random id (a stale answer of an earlier session fails the sync
//! and the session is retried), and every call has a timeout: a guest agent that is not up yet
//! never answers.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use qapi::futures::{QapiService, QgaStreamTokio};
use qapi::qga;
use tokio::io::WriteHalf;
use tokio::net::UnixStream;

use crate::error::QemuError;

type Service = QapiService<QgaStreamTokio<WriteHalf<UnixStream>>>;

fn err(vmid: u32, message: impl std::fmt::Display) -> QemuError {
    QemuError::Protocol {
        channel: "guest agent",
        vmid,
        message: message.to_string(),
    }
}

/// A synced guest-agent session.
pub(crate) struct Qga {
    svc: Service,
    events: tokio::task::JoinHandle<()>,
    vmid: u32,
}

impl Drop for Qga {
    fn drop(&mut self) {
        self.events.abort();
    }
}

async fn call<T>(
    vmid: u32,
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, qapi::ExecuteError>>,
) -> Result<T, QemuError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| err(vmid, "no answer"))?
        .map_err(|e| err(vmid, e))
}

impl Qga {
    /// Connects and syncs within `limit`.
    pub async fn connect(sock: &Path, vmid: u32, limit: Duration) -> Result<Self, QemuError> {
        let stream = tokio::time::timeout(limit, QgaStreamTokio::open_uds(sock))
            .await
            .map_err(|_| err(vmid, "connect timed out"))?
            .map_err(|e| err(vmid, e))?;
        let (svc, events) = stream.spawn_tokio();
        let me = Self { svc, events, vmid };
        let id = i32::from(rand_u16()) + 1;
        call(vmid, limit, me.svc.guest_sync(id)).await?;
        Ok(me)
    }

    /// Writes `content` to `path` in the guest (created or truncated).
    pub async fn write_file(&self, path: &str, content: &[u8]) -> Result<(), QemuError> {
        let t = Duration::from_secs(10);
        let handle = call(
            self.vmid,
            t,
            self.svc.execute(qga::guest_file_open {
                path: path.to_owned(),
                mode: Some("w".to_owned()),
            }),
        )
        .await?;
        let written = call(
            self.vmid,
            t,
            self.svc.execute(qga::guest_file_write {
                handle,
                buf_b64: content.to_vec(),
                count: None,
            }),
        )
        .await;
        let closed = call(
            self.vmid,
            t,
            self.svc.execute(qga::guest_file_close { handle }),
        )
        .await;
        let w = written?;
        closed?;
        if usize::try_from(w.count).ok() != Some(content.len()) {
            return Err(err(
                self.vmid,
                format!("short write to {path}: {} of {}", w.count, content.len()),
            ));
        }
        Ok(())
    }

    /// Every address of every interface except loopback.
    pub async fn addresses(&self) -> Result<Vec<IpAddr>, QemuError> {
        let ifaces = call(
            self.vmid,
            Duration::from_secs(10),
            self.svc.execute(qga::guest_network_get_interfaces {}),
        )
        .await?;
        Ok(ifaces
            .into_iter()
            .filter(|i| i.name != "lo")
            .flat_map(|i| i.ip_addresses.unwrap_or_default())
            .filter_map(|a| a.ip_address.parse().ok())
            .collect())
    }

    /// Starts `argv` with `input` as its whole stdin, capturing stdout and stderr
    /// (`guest-exec`); returns the guest pid. The error is the agent's own message.
    pub async fn exec(&self, argv: &[String], input: Option<&[u8]>) -> Result<i64, QemuError> {
        let (path, args) = argv
            .split_first()
            .ok_or_else(|| err(self.vmid, "empty command"))?;
        let started = call(
            self.vmid,
            Duration::from_secs(10),
            self.svc.execute(qga::guest_exec {
                path: path.clone(),
                arg: Some(args.to_vec()),
                env: None,
                input_data: input.map(<[u8]>::to_vec),
                capture_output: Some(qga::GuestExecCaptureOutput::flag(true)),
            }),
        )
        .await?;
        Ok(started.pid)
    }

    /// The state of a `guest-exec` process (`guest-exec-status`; an exited one is reported
    /// once, then forgotten by the agent).
    pub async fn exec_status(&self, pid: i64) -> Result<qga::GuestExecStatus, QemuError> {
        call(
            self.vmid,
            Duration::from_secs(10),
            self.svc.execute(qga::guest_exec_status { pid }),
        )
        .await
    }

    /// Asks the guest to power off (`guest-shutdown` has no answer; sent, not awaited).
    pub async fn shutdown(&self) {
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            self.svc.execute(qga::guest_shutdown {
                mode: Some(qga::GuestShutdownMode::Powerdown),
            }),
        )
        .await;
    }
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u16::try_from((nanos ^ std::process::id()) & 0x7fff).unwrap_or(1)
}
