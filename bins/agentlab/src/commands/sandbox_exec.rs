//! `agentlab sandbox exec` and `agentlab sandbox shell`: a command or a terminal in a running
//! sandbox through its channel.
//!
//! exec: stdout and stderr arrive separately and go to the CLI's own; stdin is forwarded
//! (end of input closes the remote stdin); Ctrl-C (SIGINT) and SIGTERM are sent to the remote
//! process group; the remote exit code is the CLI's exit code (128 + n for a signal). shell:
//! the local terminal goes to raw mode (restored on every path by a guard), window size
//! changes are forwarded, and the session ends when the remote shell exits.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::signal::unix::{SignalKind, signal};

use agentlab_core::Vmid;
use agentlab_core::api::channel::{ExecRequest, ExecUser, StreamRequest, TtySize};
use agentlab_core::api::frame::{CHUNK, Frame};

use crate::ctx::Ctx;
use crate::exit::Code;
use agentlab_client::SandboxStream;

/// Who runs the command.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum UserArg {
    /// The unprivileged `agent` user.
    Agent,
    /// The sandbox's root.
    Root,
}

impl From<UserArg> for ExecUser {
    fn from(u: UserArg) -> Self {
        match u {
            UserArg::Agent => Self::Agent,
            UserArg::Root => Self::Root,
        }
    }
}

/// Arguments of `agentlab sandbox exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The sandbox.
    pub vmid: Vmid,
    /// Run as this user.
    #[arg(long, value_enum, default_value = "agent")]
    pub user: UserArg,
    /// Working directory (default: the user's home).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Extra environment variable (repeatable).
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// Stop the command (SIGTERM to its group, SIGKILL 5 s later) after this many seconds.
    /// Without it, an explicit `--timeout SECS` limits the command the same way.
    #[arg(long, value_name = "SECS")]
    pub time_limit: Option<u64>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, num_args = 1..)]
    pub cmd: Vec<String>,
}

/// Arguments of `agentlab sandbox shell`.
#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// The sandbox.
    pub vmid: Vmid,
    /// Run as this user.
    #[arg(long, value_enum, default_value = "agent")]
    pub user: UserArg,
    /// The shell (default: bash as a login shell, or sh where there is no bash).
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

fn parse_env(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--env {p:?} is not K=V"))
        })
        .collect()
}

/// Runs `agentlab sandbox exec`.
pub async fn exec(ctx: &Ctx, a: ExecArgs) -> anyhow::Result<Code> {
    let req = ExecRequest {
        argv: a.cmd,
        user: a.user.into(),
        cwd: a.cwd,
        env: parse_env(&a.env)?,
        timeout_secs: a.time_limit.or(ctx.timeout),
        tty: None,
    };
    let stream = ctx
        .client
        .open_stream(a.vmid, StreamRequest::Exec(req))
        .await?;
    relay(stream, false).await
}

/// Runs `agentlab sandbox shell`.
pub async fn shell(ctx: &Ctx, a: ShellArgs) -> anyhow::Result<Code> {
    let TtySize { cols, rows } = term_size();
    let argv = if a.cmd.is_empty() {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "if command -v bash >/dev/null; then exec bash -l; else exec sh -l; fi".to_owned(),
        ]
    } else {
        a.cmd
    };
    let req = ExecRequest {
        argv,
        user: a.user.into(),
        cwd: None,
        env: BTreeMap::from([(
            "TERM".to_owned(),
            std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into()),
        )]),
        timeout_secs: None,
        tty: Some(TtySize { cols, rows }),
    };
    let stream = ctx
        .client
        .open_stream(a.vmid, StreamRequest::Exec(req))
        .await?;
    let _raw = RawMode::enter();
    relay(stream, true).await
}

/// The local terminal's size; 80x24 where there is none or it reports 0 (a new PTY).
fn term_size() -> TtySize {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => TtySize { cols, rows },
        _ => TtySize { cols: 80, rows: 24 },
    }
}

/// Puts the terminal in raw mode while alive (when stdin is a terminal).
struct RawMode(bool);

impl RawMode {
    fn enter() -> Self {
        use std::io::IsTerminal as _;
        Self(std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// Pumps stdin, signals and window sizes in; stdout, stderr and the exit out.
async fn relay(stream: SandboxStream, tty: bool) -> anyhow::Result<Code> {
    let (mut tx, mut rx) = stream.split();
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Frame>(16);
    // stdin → frames (a task: reading a terminal blocks until a key is pressed).
    let stdin_tx = in_tx.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; CHUNK];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stdin_tx.send(Frame::StdinEof).await;
                    return;
                }
                Ok(n) => {
                    if stdin_tx
                        .send(Frame::Stdin(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut winch = signal(SignalKind::window_change()).context("SIGWINCH handler")?;
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    loop {
        tokio::select! {
            f = rx.next() => match f {
                Some(Ok(Frame::Stdout(b))) => { out.write_all(&b).await?; out.flush().await?; }
                Some(Ok(Frame::Stderr(b))) => { err.write_all(&b).await?; err.flush().await?; }
                Some(Ok(Frame::Exit(x))) => {
                    out.flush().await?;
                    if x.timed_out {
                        eprintln!("\r\nagentlab: the command ran past its time limit (--time-limit or --timeout) and was stopped");
                    }
                    return Ok(Code::Remote(u8::try_from(x.code.clamp(0, 255)).unwrap_or(255)));
                }
                Some(Ok(Frame::Error(m))) => bail!("{m}"),
                Some(Ok(Frame::Notice(m))) => eprintln!("agentlab: {m}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("the stream into the sandbox broke off: {e}"),
                None => bail!("the sandbox closed the stream before the command ended (was it stopped or destroyed?)"),
            },
            // A failed send means the sandbox's side already ended: keep reading for the
            // exit it sent.
            Some(f) = in_rx.recv() => { let _ = tx.send(f).await; }
            _ = int.recv() => { let _ = tx.send(Frame::Signal(2)).await; }
            _ = term.recv() => { let _ = tx.send(Frame::Signal(15)).await; }
            _ = winch.recv(), if tty => {
                let _ = tx.send(Frame::Resize(term_size())).await;
            }
        }
    }
}
