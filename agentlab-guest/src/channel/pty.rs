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
use tokio_util::sync::CancellationToken;

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
        // Ends with EIO once no process has the terminal open.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0
                || out_tx
                    .blocking_send(Bytes::copy_from_slice(&buf[..n]))
                    .is_err()
            {
                break;
            }
        }
    });
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
    std::thread::spawn(move || type_input(writer, in_rx));
    let mut wait = tokio::task::spawn_blocking(move || wait_child(child));
    let gone = CancellationToken::new();
    let input = tokio::spawn(client_input(
        frames,
        in_tx,
        Arc::clone(&master),
        pgid,
        gone.clone(),
    ));
    let result = async {
        send(sink, Frame::Ready).await?;
        let deadline = req
            .timeout_secs
            .map(|s| Instant::now() + std::time::Duration::from_secs(s));
        let mut watch = Watch::new(deadline, config);
        let mut status = None;
        let mut output_open = true;
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
                    watch.linger_until = Some(Instant::now() + config.output_linger);
                }
                () = watch.next(), if status.is_none() || watch.linger_until.is_some() => {
                    if status.is_some() {
                        break;
                    }
                    watch.fire(pgid);
                }
                () = gone.cancelled() => return Err("client went away".to_owned()),
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
    input.abort();
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

/// Applies the client's frames: input, `^D` at its end, resizes, signals. Cancels `gone`
/// when the client's side of the stream ends.
async fn client_input(
    mut frames: FrameStream,
    input: mpsc::Sender<Bytes>,
    master: Master,
    pgid: Pid,
    gone: CancellationToken,
) {
    while let Some(Ok(frame)) = frames.next().await {
        match frame {
            Frame::Stdin(b) => {
                let _ = input.send(b).await;
            }
            Frame::StdinEof => {
                let _ = input.send(Bytes::from_static(b"\x04")).await;
            }
            Frame::Resize(t) => {
                let resized = match master.lock() {
                    Ok(m) => m.resize(pty_size(t)).map_err(|e| e.to_string()),
                    Err(_) => Err("terminal lock poisoned".to_owned()),
                };
                if let Err(e) = resized {
                    tracing::warn!(error = %e, "cannot resize the terminal");
                }
            }
            Frame::Signal(n) => client_signal(pgid, n),
            other => tracing::debug!(frame = ?other, "ignoring an unexpected frame"),
        }
    }
    gone.cancel();
}
