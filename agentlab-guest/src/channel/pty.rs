//! An exec in a pseudo-terminal (a shell): the process gets a new session with the PTY as its
//! controlling terminal, stdout carries everything the terminal shows, [`Frame::Stdin`] is
//! typed into it, [`Frame::Resize`] resizes it and [`Frame::StdinEof`] types `^D`.
//!
//! PTY reads and writes block, so each side has its own thread. As another user the argv
//! runs through [`ChannelConfig::drop_helper`] (`drop-exec`), which switches users and then
//! executes it in place.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};

use agentlab_core::api::channel::{ExecRequest, TtySize};
use agentlab_core::api::frame::{CHUNK, Frame};
use bytes::Bytes;
use futures::StreamExt as _;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::exec::{Watch, client_signal, exit_info, signal_group};
use super::stream::{FrameSink, FrameStream, send};
use super::user::{ChannelConfig, Identity, resolve};

type Master = Arc<Mutex<Box<dyn MasterPty + Send>>>;

fn pty_size(t: TtySize) -> PtySize {
    PtySize {
        rows: t.rows,
        cols: t.cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// The argv to spawn: `req.argv`, or the helper switching to `who` first.
fn command_line(
    req: &ExecRequest,
    who: &Identity,
    config: &ChannelConfig,
) -> Result<Vec<OsString>, String> {
    if who.is_self() {
        return Ok(req.argv.iter().map(OsString::from).collect());
    }
    let helper = config.drop_helper.as_ref().ok_or_else(|| {
        format!(
            "a terminal as {} needs the agent-runner drop-exec helper",
            who.name
        )
    })?;
    let mut argv: Vec<OsString> = vec![helper.into(), "drop-exec".into()];
    for a in [
        "--uid".to_owned(),
        who.uid.to_string(),
        "--gid".to_owned(),
        who.gid.to_string(),
        "--".to_owned(),
    ] {
        argv.push(a.into());
    }
    argv.extend(req.argv.iter().map(OsString::from));
    Ok(argv)
}

/// Runs `req` in a PTY and streams it; see the module docs.
pub(crate) async fn run(
    req: ExecRequest,
    config: &ChannelConfig,
    sink: &mut FrameSink,
    frames: FrameStream,
) -> Result<(), String> {
    let who = resolve(config, req.user)?;
    let size = req.tty.ok_or("a terminal exec needs a size")?;
    let cwd = who.work_dir(req.cwd.as_deref());
    let pair = native_pty_system()
        .openpty(pty_size(size))
        .map_err(|e| format!("cannot open a pseudo-terminal: {e}"))?;
    let mut cmd = CommandBuilder::from_argv(command_line(&req, &who, config)?);
    cmd.env_clear();
    for (k, v) in who.base_env() {
        cmd.env(k, v);
    }
    cmd.env("TERM", "xterm-256color");
    for (k, v) in &req.env {
        cmd.env(k, v);
    }
    cmd.cwd(&cwd);
    let child = pair.slave.spawn_command(cmd).map_err(|e| {
        format!(
            "cannot run {:?} as {} in {}: {e}",
            req.argv[0],
            who.name,
            cwd.display()
        )
    })?;
    drop(pair.slave);
    // The child leads a new session, so its pid is its process group.
    let pgid = child
        .process_id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
        .ok_or("the process ended before it could be watched")?;
    tracing::info!(argv0 = %req.argv[0], user = %who.name, pid = pgid.as_raw(), "terminal exec started");
    let reader = pair.master.try_clone_reader();
    let writer = pair.master.take_writer();
    let master: Master = Arc::new(Mutex::new(pair.master));
    let (mut reader, writer) = match (reader, writer) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => {
            signal_group(pgid, Signal::SIGKILL);
            return Err(format!("cannot use the pseudo-terminal: {e}"));
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        let mut out_tx = Some(out_tx);
        // Ends with EIO once no process has the terminal open; output nobody takes any more
        // (the exec was answered) is dropped.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(tx) = &out_tx
                && tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err()
            {
                out_tx = None;
            }
        }
    });
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
    std::thread::spawn(move || type_input(writer, in_rx));
    let mut wait = tokio::task::spawn_blocking(move || wait_child(child));
    // The stream is read and written by this task only (see `exec.rs`: a second task polling
    // the yamux stream could take the writer's wake-up).
    let mut frames = frames;
    let result = async {
        send(sink, Frame::Ready).await?;
        let deadline = req
            .timeout_secs
            .map(|s| Instant::now() + std::time::Duration::from_secs(s));
        let mut watch = Watch::new(deadline, config);
        let mut status = None;
        let mut output_open = true;
        // Input waiting for room in the terminal writer's queue; frames are not read meanwhile.
        let mut pending: Option<Bytes> = None;
        loop {
            tokio::select! {
                biased;
                out = out_rx.recv(), if output_open => match out {
                    Some(b) => send(sink, Frame::Stdout(b)).await?,
                    None if status.is_some() => break,
                    None => output_open = false,
                },
                s = &mut wait, if status.is_none() => {
                    let s = s.map_err(|e| format!("cannot wait for the process: {e}"))??;
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
                permit = in_tx.reserve(), if pending.is_some() => match permit {
                    Ok(p) => p.send(pending.take().unwrap_or_default()),
                    Err(_) => pending = None,
                },
                frame = frames.next(), if pending.is_none() => match frame {
                    Some(Ok(f)) => pending = client_frame(f, &master, pgid),
                    Some(Err(_)) | None => return Err("client went away".to_owned()),
                },
            }
        }
        let status = status.ok_or("the process was not waited for")?;
        send(sink, Frame::Exit(exit_info(status, watch.timed_out))).await
    }
    .await;
    if result.is_err() {
        signal_group(pgid, Signal::SIGHUP);
        signal_group(pgid, Signal::SIGKILL);
    }
    drop(in_tx);
    drop(master);
    result
}

/// Waits for the child with the std type, which keeps the signal number.
fn wait_child(
    child: Box<dyn portable_pty::Child + Send + Sync>,
) -> Result<std::process::ExitStatus, String> {
    use std::os::unix::process::ExitStatusExt as _;
    let child: Box<dyn portable_pty::Child> = child;
    match child.downcast::<std::process::Child>() {
        Ok(mut c) => c
            .wait()
            .map_err(|e| format!("cannot wait for the process: {e}")),
        Err(mut other) => {
            let s = other
                .wait()
                .map_err(|e| format!("cannot wait for the process: {e}"))?;
            let code = i32::try_from(s.exit_code()).unwrap_or(255) & 0xff;
            Ok(std::process::ExitStatus::from_raw(code << 8))
        }
    }
}

/// Writes typed input into the terminal until the channel closes.
fn type_input(mut writer: Box<dyn std::io::Write + Send>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(b) = rx.blocking_recv() {
        if writer.write_all(&b).and_then(|()| writer.flush()).is_err() {
            break;
        }
    }
}

/// Applies one client frame: resizes and signals at once; input (and `^D` for its end) is
/// returned for the terminal writer.
fn client_frame(frame: Frame, master: &Master, pgid: Pid) -> Option<Bytes> {
    match frame {
        Frame::Stdin(b) => Some(b),
        Frame::StdinEof => Some(Bytes::from_static(b"\x04")),
        Frame::Resize(t) => {
            let resized = match master.lock() {
                Ok(m) => m.resize(pty_size(t)).map_err(|e| e.to_string()),
                Err(_) => Err("terminal lock poisoned".to_owned()),
            };
            if let Err(e) = resized {
                tracing::warn!(error = %e, "cannot resize the terminal");
            }
            None
        }
        Frame::Signal(n) => {
            client_signal(pgid, n);
            None
        }
        other => {
            tracing::debug!(frame = ?other, "ignoring an unexpected frame");
            None
        }
    }
}
