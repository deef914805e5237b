//! [`ChannelHub`]: one yamux connection per sandbox whose guest agent is connected, and
//! opening streams on it.
//!
//! Each connection is owned by a driver task ([`ChannelHub::serve`]) that polls yamux and
//! hands out outbound streams on request. Streams the guest opens are reset at once: the
//! channel only carries what the daemon asks for, so a sandbox cannot reach anything on the
//! host through it. A reconnect replaces the earlier connection; releasing the sandbox
//! (destroy) or the daemon's shutdown ends it.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use agentlab_core::Vmid;
use futures::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A stream into a sandbox (tokio I/O).
pub type ChannelStream = tokio_util::compat::Compat<yamux::Stream>;

type Opener = oneshot::Sender<Result<yamux::Stream, String>>;

/// Why no stream could be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The sandbox's guest agent has no channel open (not booted yet, stopped, or the agent
    /// is not running).
    #[error("the sandbox's guest agent is not connected (is the sandbox running?)")]
    NotConnected,
    /// The connection failed while opening the stream.
    #[error("the sandbox's channel failed: {0}")]
    Failed(String),
    /// Opening took too long.
    #[error("the sandbox's guest agent did not accept a stream within {0:?}")]
    Timeout(Duration),
}

struct Entry {
    generation: u64,
    opener: mpsc::Sender<Opener>,
    cancel: CancellationToken,
}

/// The connected guest agents.
#[derive(Default)]
pub struct ChannelHub {
    entries: Mutex<HashMap<Vmid, Entry>>,
    generation: AtomicU64,
    streams: AtomicU64,
}

impl std::fmt::Debug for ChannelHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("ChannelHub").field("connected", &n).finish()
    }
}

/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

impl ChannelHub {
    /// Whether `vmid`'s guest agent is connected.
    pub fn is_connected(&self, vmid: Vmid) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&vmid)
    }

    /// A new stream id (for events).
    pub fn next_stream_id(&self) -> u64 {
        self.streams.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ends `vmid`'s connection, if any (the sandbox was released).
    pub fn release(&self, vmid: Vmid) -> bool {
        let entry = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&vmid);
        entry.map(|e| e.cancel.cancel()).is_some()
    }

    /// Opens a stream into `vmid`.
    pub async fn open(&self, vmid: Vmid) -> Result<ChannelStream, HubError> {
        use tokio_util::compat::FuturesAsyncReadCompatExt as _;
        let opener = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&vmid)
            .map(|e| e.opener.clone())
            .ok_or(HubError::NotConnected)?;
        let (tx, rx) = oneshot::channel();
        opener.send(tx).await.map_err(|_| HubError::NotConnected)?;
        match tokio::time::timeout(OPEN_TIMEOUT, rx).await {
            Err(_) => Err(HubError::Timeout(OPEN_TIMEOUT)),
            Ok(Err(_)) => Err(HubError::NotConnected),
            Ok(Ok(Err(e))) => Err(HubError::Failed(e)),
            Ok(Ok(Ok(s))) => Ok(s.compat()),
        }
    }

    /// Drives `io` (an upgraded connection from `vmid`'s guest agent) as this sandbox's
    /// channel until it ends, `cancel` fires, or the sandbox is released or reconnects.
    /// Returns why it ended.
    pub async fn serve<T>(&self, vmid: Vmid, io: T, cancel: CancellationToken) -> String
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(16);
        let mine = cancel.child_token();
        let old = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                vmid,
                Entry {
                    generation,
                    opener: tx,
                    cancel: mine.clone(),
                },
            );
        if let Some(old) = old {
            old.cancel.cancel();
        }
        let conn = yamux::Connection::new(io, yamux::Config::default(), yamux::Mode::Client);
        let why = tokio::select! {
            r = drive(vmid, conn, rx) => r,
            () = mine.cancelled() => "closed by the daemon (sandbox released, reconnected or shutdown)".to_owned(),
        };
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&vmid).is_some_and(|e| e.generation == generation) {
            map.remove(&vmid);
        }
        why
    }
}

/// Polls the connection: hands out outbound streams and resets inbound ones.
async fn drive<T>(
    vmid: Vmid,
    mut conn: yamux::Connection<T>,
    mut open_rx: mpsc::Receiver<Opener>,
) -> String
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut waiting: VecDeque<Opener> = VecDeque::new();
    let mut openers_gone = false;
    poll_fn(|cx| {
        loop {
            while !openers_gone {
                match open_rx.poll_recv(cx) {
                    Poll::Ready(Some(tx)) => waiting.push_back(tx),
                    Poll::Ready(None) => openers_gone = true,
                    Poll::Pending => break,
                }
            }
            while !waiting.is_empty() {
                match conn.poll_new_outbound(cx) {
                    Poll::Ready(Ok(stream)) => {
                        if let Some(tx) = waiting.pop_front() {
                            let _ = tx.send(Ok(stream));
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        for tx in waiting.drain(..) {
                            let _ = tx.send(Err(e.to_string()));
                        }
                        return Poll::Ready(format!("connection error: {e}"));
                    }
                    Poll::Pending => break,
                }
            }
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    tracing::warn!(sandbox = %vmid, "the guest opened a stream on its channel; reset");
                    drop(stream);
                }
                Poll::Ready(Some(Err(e))) => {
                    for tx in waiting.drain(..) {
                        let _ = tx.send(Err(e.to_string()));
                    }
                    return Poll::Ready(format!("connection error: {e}"));
                }
                Poll::Ready(None) => return Poll::Ready("the guest closed the connection".to_owned()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}
