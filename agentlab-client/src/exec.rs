//! A non-interactive exec whose output is collected: [`Client::exec_captured`].

use futures::{SinkExt as _, StreamExt as _};
use hyper::body::Bytes;

use agentlab_core::Vmid;
use agentlab_core::api::channel::{ExecRequest, ExitInfo, StreamRequest};
use agentlab_core::api::frame::{CHUNK, Frame};

use crate::client::Client;
use crate::error::ClientError;

/// Output of one stream (stdout or stderr), kept up to a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes, at most the limit.
    pub data: Vec<u8>,
    /// Every byte the command wrote to the stream.
    pub total: u64,
}

impl Captured {
    fn push(&mut self, b: &[u8], limit: usize) {
        self.total += b.len() as u64;
        let room = limit.saturating_sub(self.data.len());
        self.data.extend_from_slice(&b[..b.len().min(room)]);
    }

    /// Whether bytes were left out.
    pub fn truncated(&self) -> bool {
        self.total > self.data.len() as u64
    }
}

/// How a captured exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code, signal and whether its time limit stopped it.
    pub exit: ExitInfo,
    /// What it wrote to stdout.
    pub stdout: Captured,
    /// What it wrote to stderr.
    pub stderr: Captured,
    /// Notes from the daemon (such as that it ran through the hypervisor's guest agent).
    pub notices: Vec<String>,
}

impl Client {
    /// Runs `req` (which must not ask for a terminal) in `vmid`, feeding it `stdin` and then
    /// the end of input, and collects stdout and stderr, each kept up to `limit` bytes (the
    /// rest is read and counted, so the command never blocks on a full pipe). Returns when the
    /// command ended; a non-zero exit is a normal [`ExecOutput`]. An error frame from the
    /// sandbox is [`ClientError::StreamRefused`].
    pub async fn exec_captured(
        &self,
        vmid: Vmid,
        req: ExecRequest,
        stdin: Bytes,
        limit: usize,
    ) -> Result<ExecOutput, ClientError> {
        let broken = |e: String| ClientError::StreamBroken(e);
        let stream = self.open_stream(vmid, StreamRequest::Exec(req)).await?;
        let (mut tx, mut rx) = stream.split();
        // stdin in chunks, then its end; a task, so output is read meanwhile.
        let feeder = tokio::spawn(async move {
            let mut rest = stdin;
            while !rest.is_empty() {
                let chunk = rest.split_to(rest.len().min(CHUNK));
                if tx.send(Frame::Stdin(chunk)).await.is_err() {
                    return tx;
                }
            }
            let _ = tx.send(Frame::StdinEof).await;
            tx
        });
        let mut out = ExecOutput {
            exit: ExitInfo {
                code: -1,
                signal: None,
                timed_out: false,
            },
            stdout: Captured::default(),
            stderr: Captured::default(),
            notices: Vec::new(),
        };
        let result = loop {
            match rx.next().await {
                Some(Ok(Frame::Stdout(b))) => out.stdout.push(&b, limit),
                Some(Ok(Frame::Stderr(b))) => out.stderr.push(&b, limit),
                Some(Ok(Frame::Notice(m))) => out.notices.push(m),
                Some(Ok(Frame::Exit(x))) => {
                    out.exit = x;
                    break Ok(out);
                }
                Some(Ok(Frame::Error(m))) => break Err(ClientError::StreamRefused(m)),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(broken(e.to_string())),
                None => {
                    break Err(broken(
                        "the sandbox closed the stream before the command ended (was it stopped or destroyed?)"
                            .into(),
                    ));
                }
            }
        };
        feeder.abort();
        result
    }
}
