//! A yamux client over an in-memory pipe, playing the daemon's side of the channel.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use agentlab_core::api::channel::{ExecRequest, ExecUser, ExitInfo, StreamRequest, TtySize};
use agentlab_core::api::frame::{Frame, FrameCodec};
use agentlab_guest::channel::{ChannelConfig, serve_connection};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _, TokioAsyncReadCompatExt as _};
use tokio_util::sync::CancellationToken;

pub type Chan = Framed<Compat<yamux::Stream>, FrameCodec>;

/// Opens streams on a yamux client connection.
#[derive(Clone)]
pub struct Client {
    open: mpsc::Sender<oneshot::Sender<yamux::Stream>>,
}

impl Client {
    /// Drives a yamux client on `io`.
    pub fn new<T: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: T) -> Self {
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<yamux::Stream>>(16);
        tokio::spawn(async move {
            let mut conn =
                yamux::Connection::new(io.compat(), yamux::Config::default(), yamux::Mode::Client);
            let mut pending = VecDeque::new();
            futures::future::poll_fn(|cx| {
                while let Poll::Ready(Some(req)) = rx.poll_recv(cx) {
                    pending.push_back(req);
                }
                while !pending.is_empty() {
                    match conn.poll_new_outbound(cx) {
                        Poll::Ready(Ok(s)) => {
                            if let Some(req) = pending.pop_front() {
                                let _ = req.send(s);
                            }
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => break,
                    }
                }
                loop {
                    match conn.poll_next_inbound(cx) {
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(_) => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
            .await;
        });
        Self { open: tx }
    }

    /// A new stream, framed.
    pub async fn open(&self) -> Chan {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.expect("connection task");
        Framed::new(rx.await.expect("stream").compat(), FrameCodec)
    }

    /// Opens a stream and sends `req`; returns the stream after `Ready`, or the error text.
    pub async fn request(&self, req: StreamRequest) -> Result<Chan, String> {
        let mut chan = self.open().await;
        chan.send(Frame::Request(req)).await.expect("send request");
        match chan.next().await {
            Some(Ok(Frame::Ready)) => Ok(chan),
            Some(Ok(Frame::Error(e))) => Err(e),
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

/// A guest serving one end of an in-memory pipe, and a client on the other.
pub fn guest(config: ChannelConfig) -> (Client, CancellationToken) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let _ = serve_connection(b, Arc::new(config), &c).await;
    });
    (Client::new(a), cancel)
}

/// Config with a passwd file naming `agent` as uid/gid 1000 with home `/tmp`.
pub fn config(dir: &std::path::Path) -> ChannelConfig {
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "agent:x:1000:1000::/tmp:/bin/sh\n").expect("passwd");
    ChannelConfig {
        passwd,
        kill_grace: Duration::from_secs(1),
        ..ChannelConfig::default()
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn exec_req(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        user: ExecUser::Agent,
        cwd: None,
        env: BTreeMap::new(),
        timeout_secs: None,
        tty: None,
    }
}

pub fn tty(cols: u16, rows: u16) -> Option<TtySize> {
    Some(TtySize { cols, rows })
}

/// What an exec produced.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: Option<ExitInfo>,
}

impl Output {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.exit.expect("exit").code
    }
}

/// Reads frames until `Exit` (which must be the last) or the stream ends.
pub async fn collect(chan: &mut Chan) -> Output {
    let mut out = Output::default();
    while let Some(f) = chan.next().await {
        match f.expect("frame") {
            Frame::Stdout(b) => {
                assert!(out.exit.is_none(), "output after exit");
                out.stdout.extend_from_slice(&b);
            }
            Frame::Stderr(b) => {
                assert!(out.exit.is_none(), "output after exit");
                out.stderr.extend_from_slice(&b);
            }
            Frame::Exit(e) => out.exit = Some(e),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    out
}

/// Runs `req` with stdin closed at once.
pub async fn run(client: &Client, req: ExecRequest) -> Output {
    let mut chan = client
        .request(StreamRequest::Exec(req))
        .await
        .expect("exec accepted");
    chan.send(Frame::StdinEof).await.expect("eof");
    collect(&mut chan).await
}

/// A temp dir the agent user (uid 1000 when root) may write into.
pub fn agent_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    if is_root() {
        std::os::unix::fs::chown(dir.path(), Some(1000), Some(1000)).expect("chown");
    }
    dir
}

pub fn p(dir: &tempfile::TempDir, rel: &str) -> PathBuf {
    dir.path().join(rel)
}
