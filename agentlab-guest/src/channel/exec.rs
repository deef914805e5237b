//! An exec without a terminal: the process runs in its own process group with piped stdin,
//! stdout and stderr.
//!
//! Client frames are read by their own task (stdin writes may wait for the process; signals
//! go straight to the group), output is read by one task per pipe, and the stream's loop
//! forwards output with backpressure, watches the process, the timeout and the client. The
//! [`Frame::Exit`] goes out after the output: once the process ended, output is read until
//! both pipes close or [`ChannelConfig::output_linger`] passed; what background processes
//! write there later is read and dropped.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};

use agentlab_core::api::channel::{ExecRequest, ExitInfo};
use agentlab_core::api::frame::{CHUNK, Frame};
use bytes::Bytes;
use futures::StreamExt as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::stream::{FrameSink, FrameStream, send};
use super::user::{ChannelConfig, resolve};

/// Runs `req` (no terminal) and streams it; see the module docs.
pub(crate) async fn run(
    req: ExecRequest,
    config: &ChannelConfig,
    sink: &mut FrameSink,
    frames: FrameStream,
) -> Result<(), String> {
    let who = resolve(config, req.user)?;
    let cwd = who.work_dir(req.cwd.as_deref());
    let mut cmd = tokio::process::Command::new(&req.argv[0]);
    cmd.args(&req.argv[1..])
        .env_clear()
        .envs(who.base_env())
        .envs(&req.env)
        .current_dir(&cwd)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !who.is_self() {
        // std drops the supplementary groups when root switches the uid.
        cmd.uid(who.uid).gid(who.gid);
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot run {:?} as {} in {}: {e}",
            req.argv[0],
            who.name,
            cwd.display()
        )
    })?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
        .ok_or("the process ended before it could be watched")?;
    tracing::info!(argv0 = %req.argv[0], user = %who.name, pid = pgid.as_raw(), "exec started");
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(4);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, Frame::Stdout, out_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, Frame::Stderr, out_tx));
    }
    // The stream is read and written by this task only: a yamux stream parks one waker for
    // its command channel, and a second task polling it (reads send window updates through
    // the same channel) could take the writer's wake-up and stall the output for good.
    // Stdin goes to the process through a task of its own, so a process that does not read
    // its stdin never blocks this loop.
    let mut frames = frames;
    let (stdin_tx, stdin_rx) = mpsc::channel::<Option<Bytes>>(16);
    let input = tokio::spawn(stdin_writer(child.stdin.take(), stdin_rx));
    let result = async {
        send(sink, Frame::Ready).await?;
        let deadline = req
            .timeout_secs
            .map(|s| Instant::now() + std::time::Duration::from_secs(s));
        let mut watch = Watch::new(deadline, config);
        let wait = child.wait();
        tokio::pin!(wait);
        let mut status: Option<ExitStatus> = None;
        let mut output_open = true;
        // A stdin item waiting for room in the writer's queue; frames are not read meanwhile.
        let mut pending: Option<Option<Bytes>> = None;
        loop {
            tokio::select! {
                biased;
                frame = out_rx.recv(), if output_open => match frame {
                    Some(f) => send(sink, f).await?,
                    None if status.is_some() => break,
                    None => output_open = false,
                },
                s = &mut wait, if status.is_none() => {
                    let s = s.map_err(|e| format!("cannot wait for the process: {e}"))?;
                    status = Some(s);
                    if !output_open {
                        break;
                    }
                    watch.ended(config.output_linger);
                }
                () = watch.next(), if status.is_none() || watch.linger_until.is_some() => {
                    if status.is_some() {
                        break;
                    }
                    watch.fire(pgid);
                }
                permit = stdin_tx.reserve(), if pending.is_some() => match permit {
                    Ok(p) => p.send(pending.take().flatten()),
                    // The writer is gone (the process closed its stdin): input is dropped.
                    Err(_) => pending = None,
                },
                frame = frames.next(), if pending.is_none() => match frame {
                    Some(Ok(Frame::Stdin(b))) => pending = Some(Some(b)),
                    Some(Ok(Frame::StdinEof)) => pending = Some(None),
                    Some(Ok(Frame::Signal(n))) => client_signal(pgid, n),
                    Some(Ok(other)) => tracing::debug!(frame = ?other, "ignoring an unexpected frame"),
                    Some(Err(_)) | None => return Err("client went away".to_owned()),
                },
            }
        }
        let status = status.ok_or("the process was not waited for")?;
        send(sink, Frame::Exit(exit_info(status, watch.timed_out))).await
    }
    .await;
    if result.is_err() {
        signal_group(pgid, Signal::SIGKILL);
    }
    input.abort();
    // The pumps end by themselves when the pipes close (after a kill, or when background
    // processes that hold them exit).
    result
}

/// Timeout, kill grace and output linger deadlines of one exec.
#[derive(Debug)]
pub(crate) struct Watch {
    deadline: Option<Instant>,
    kill_at: Option<Instant>,
    grace: std::time::Duration,
    /// Set once the process ended: stop reading output then.
    pub(crate) linger_until: Option<Instant>,
    /// The timeout fired.
    pub(crate) timed_out: bool,
}

impl Watch {
    pub(crate) fn new(deadline: Option<Instant>, config: &ChannelConfig) -> Self {
        Self {
            deadline,
            kill_at: None,
            grace: config.kill_grace,
            linger_until: None,
            timed_out: false,
        }
    }

    /// The process ended: from now on only the output linger counts.
    pub(crate) fn ended(&mut self, linger: std::time::Duration) {
        self.deadline = None;
        self.kill_at = None;
        self.linger_until = Some(Instant::now() + linger);
    }

    /// Resolves at the next deadline (never when there is none).
    pub(crate) async fn next(&self) {
        let next = [self.linger_until, self.kill_at, self.deadline]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Acts on the deadline that passed: SIGTERM at the timeout, SIGKILL after the grace.
    pub(crate) fn fire(&mut self, pgid: Pid) {
        let now = Instant::now();
        if self.kill_at.is_some_and(|k| k <= now) {
            tracing::warn!(
                pid = pgid.as_raw(),
                "exec still running after the grace; SIGKILL"
            );
            signal_group(pgid, Signal::SIGKILL);
            self.kill_at = None;
        } else if self.deadline.is_some_and(|d| d <= now) {
            tracing::warn!(pid = pgid.as_raw(), "exec timed out; SIGTERM");
            signal_group(pgid, Signal::SIGTERM);
            self.timed_out = true;
            self.deadline = None;
            self.kill_at = Some(now + self.grace);
        }
    }
}

/// Sends `sig` to the process group `pgid` (already gone is fine).
pub(crate) fn signal_group(pgid: Pid, sig: Signal) {
    if let Err(e) = killpg(pgid, sig)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid = pgid.as_raw(), signal = %sig, error = %e, "cannot signal the process group");
    }
}

/// A client's signal number as a [`Signal`] sent to the group.
pub(crate) fn client_signal(pgid: Pid, n: i32) {
    match Signal::try_from(n) {
        Ok(sig) => signal_group(pgid, sig),
        Err(_) => tracing::warn!(signal = n, "ignoring an unknown signal number"),
    }
}

/// Exit code (128 + signal for a signal), signal and timeout flag.
pub(crate) fn exit_info(status: ExitStatus, timed_out: bool) -> ExitInfo {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitInfo {
            code,
            signal: None,
            timed_out,
        },
        (None, sig) => ExitInfo {
            code: 128 + sig.unwrap_or(0),
            signal: sig,
            timed_out,
        },
    }
}

/// Reads one pipe into frames of at most [`CHUNK`] bytes. Once nobody takes them (the exec
/// was answered), reads and drops the rest until the pipe closes, so a background process
/// that still writes there does not get `EPIPE`.
async fn pump<R: AsyncRead + Unpin>(mut r: R, wrap: fn(Bytes) -> Frame, tx: mpsc::Sender<Frame>) {
    let mut buf = vec![0u8; CHUNK];
    let mut tx = Some(tx);
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(t) = &tx
                    && t.send(wrap(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                {
                    tx = None;
                }
            }
        }
    }
}

/// Writes the client's stdin to the process (`None`: close it). Once the process closed its
/// stdin, later input is dropped.
async fn stdin_writer(mut stdin: Option<ChildStdin>, mut rx: mpsc::Receiver<Option<Bytes>>) {
    while let Some(item) = rx.recv().await {
        match item {
            Some(b) => {
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&b).await.is_err()
                {
                    stdin = None;
                }
            }
            None => stdin = None,
        }
    }
}
