//! Running child processes: in their own process group, output streamed line by line to the
//! log, under a timeout enforced with SIGTERM, then SIGKILL after a grace period, always to
//! the whole group (the same happens when the runner is asked to stop). When the main process exits, whatever it left behind in its group is
//! killed too, so no stray process keeps the output pipes (or the sandbox) busy.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use agentlab_core::api::guest::LogStream;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::GuestError;
use crate::logs::{LogHandle, StreamLogger};

/// Longest line passed on; longer output is split.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Idle time after which held-back lines are released.
const IDLE_FLUSH: Duration = Duration::from_millis(300);
/// How long to keep reading output after the process group is gone.
const PIPE_DRAIN_WAIT: Duration = Duration::from_secs(5);
/// Exit code reported for a timed-out process (as `timeout(1)` does).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEnd {
    /// Exited with this code (signals map to 128 + signal number).
    Exited(i32),
    /// Killed by the runner after the timeout.
    TimedOut,
    /// Stopped because the runner itself was asked to stop.
    Cancelled,
}

impl ProcessEnd {
    /// The exit code to report (124 for a timeout).
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(c) => c,
            Self::TimedOut => TIMEOUT_EXIT_CODE,
            Self::Cancelled => 128 + Signal::SIGTERM as i32,
        }
    }

    /// True when the process exited 0.
    pub fn success(self) -> bool {
        self == Self::Exited(0)
    }
}

/// Result of [`run_streamed`].
#[derive(Debug, Clone)]
pub struct StreamedRun {
    /// How it ended.
    pub end: ProcessEnd,
    /// Last redacted stderr lines.
    pub stderr_tail: Vec<String>,
}

/// Timeout, kill grace and the runner's stop signal.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Wait between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Cancelled when the runner is asked to stop; the process is then stopped like on timeout.
    pub cancel: CancellationToken,
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn signal_group(pgid: Option<Pid>, sig: Signal) {
    if let Some(pgid) = pgid {
        // ESRCH just means the group is already gone.
        let _ = killpg(pgid, sig);
    }
}

/// Spawns `cmd` in a new process group, streams its stdout/stderr to `logs`, enforces `limits`.
pub async fn run_streamed(
    mut cmd: Command,
    what: &str,
    limits: &Limits,
    logs: &LogHandle,
) -> Result<StreamedRun, GuestError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| GuestError::io(format!("Cannot start {what}"), e))?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(pump(s, logs.stream(LogStream::Stdout))));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, logs.stream(LogStream::Stderr))));
    let wait_err = |e| GuestError::io(format!("Cannot wait for {what}"), e);
    let end = tokio::select! {
        status = tokio::time::timeout(limits.timeout, child.wait()) => match status {
            Ok(status) => Some(ProcessEnd::Exited(exit_code(status.map_err(wait_err)?))),
            Err(_) => {
                tracing::warn!(what, timeout_secs = limits.timeout.as_secs(), "timeout, stopping");
                None
            }
        },
        () = limits.cancel.cancelled() => {
            tracing::warn!(what, "runner stopping, stopping the process");
            Some(ProcessEnd::Cancelled)
        }
    };
    let end = match end {
        Some(ProcessEnd::Exited(code)) => ProcessEnd::Exited(code),
        other => {
            signal_group(pgid, Signal::SIGTERM);
            if tokio::time::timeout(limits.grace, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(what, "still running after grace, sending SIGKILL");
                signal_group(pgid, Signal::SIGKILL);
                child.wait().await.map_err(wait_err)?;
            }
            other.unwrap_or(ProcessEnd::TimedOut)
        }
    };
    // Anything the process left behind in its group goes too.
    signal_group(pgid, Signal::SIGKILL);
    if let Some(out) = out {
        join_pump(out).await;
    }
    let stderr_tail = match err {
        Some(err) => join_pump(err).await,
        None => Vec::new(),
    };
    Ok(StreamedRun { end, stderr_tail })
}

/// Waits for a pump task, giving up (and aborting it) if a process outside the group still
/// holds the pipe open.
async fn join_pump(mut handle: JoinHandle<Vec<String>>) -> Vec<String> {
    match tokio::time::timeout(PIPE_DRAIN_WAIT, &mut handle).await {
        Ok(tail) => tail.unwrap_or_default(),
        Err(_) => {
            tracing::warn!("output pipe still open after the process group ended; not waiting");
            handle.abort();
            Vec::new()
        }
    }
}

async fn pump(reader: impl AsyncRead + Unpin, mut logger: StreamLogger) -> Vec<String> {
    let mut reader = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match tokio::time::timeout(IDLE_FLUSH, reader.fill_buf()).await {
            Err(_) => {
                logger.flush().await;
                continue;
            }
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read child output");
                break;
            }
        };
        if buf.is_empty() {
            break;
        }
        let (used, complete) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let end = if complete { used - 1 } else { used };
        line.extend_from_slice(&buf[..end]);
        reader.consume(used);
        if complete || line.len() >= MAX_LINE_BYTES {
            emit(&mut logger, &mut line).await;
        }
    }
    if !line.is_empty() {
        emit(&mut logger, &mut line).await;
    }
    logger.finish().await
}

async fn emit(logger: &mut StreamLogger, line: &mut Vec<u8>) {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = String::from_utf8_lossy(line);
    logger.push(&text).await;
    line.clear();
}

/// Runs `cmd` to completion with output captured (for short git queries), under `timeout`.
pub async fn output(
    mut cmd: Command,
    what: &str,
    timeout: Duration,
) -> Result<(i32, Vec<u8>, Vec<u8>), GuestError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            GuestError::io(
                format!("{what} timed out"),
                std::io::ErrorKind::TimedOut.into(),
            )
        })?
        .map_err(|e| GuestError::io(format!("Cannot run {what}"), e))?;
    Ok((exit_code(out.status), out.stdout, out.stderr))
}
