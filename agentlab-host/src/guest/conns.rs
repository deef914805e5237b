//! The guest listener's accept loop: every connection is served on its own (hyper HTTP/1)
//! and tracked by its peer address, so that
//! - a destroyed sandbox's connections are closed ([`Connections::close_peer`], driven by the
//!   engine's [`agentlab_core::engine::Released`] announcements): a later sandbox that gets
//!   the same address, MAC and ephemeral ports never meets a stale socket of the daemon;
//! - a connection with no request in flight for `idle` is closed, and request headers must
//!   arrive within `idle` (hyper's header timeout);
//! - closing is graceful: a request in flight (a runner's final report) is answered first,
//!   for at most `close_grace`, then the socket is dropped;
//! - a connection upgraded to a sandbox's channel can be ended with a reset instead of a
//!   FIN ([`AbortHandle`]): its peer is usually a guest that is gone (destroyed), and a FIN
//!   to an address that no longer answers is retransmitted for minutes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a closing connection may take to answer its in-flight request.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Open connections of the guest listener, by peer address.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<HashMap<IpAddr, HashMap<u64, CancellationToken>>>,
    next: AtomicU64,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, HashMap<u64, CancellationToken>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, ip: IpAddr) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        self.lock().entry(ip).or_default().insert(id, token.clone());
        (id, token)
    }

    fn unregister(&self, ip: IpAddr, id: u64) {
        let mut open = self.lock();
        if let Some(conns) = open.get_mut(&ip) {
            conns.remove(&id);
            if conns.is_empty() {
                open.remove(&ip);
            }
        }
    }

    /// Asks every connection from `ip` to close (in-flight requests are answered first, for
    /// at most [`CLOSE_GRACE`]); returns how many were asked.
    pub fn close_peer(&self, ip: IpAddr) -> usize {
        let open = self.lock();
        let Some(conns) = open.get(&ip) else { return 0 };
        for token in conns.values() {
            token.cancel();
        }
        conns.len()
    }

    /// Open connections in all.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub fn count_for(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip).map_or(0, HashMap::len)
    }
}

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
struct Activity {
    inflight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            inflight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn begin(&self) {
        self.inflight.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }

    /// How long the connection has had nothing in flight (zero while busy).
    fn idle_for(&self) -> Duration {
        if self.inflight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

/// A second handle on an accepted guest connection's socket, put in every request's
/// extensions: a handler that took the connection over (the channel upgrade) ends it with
/// [`AbortHandle::reset_on_close`] so that closing sends a reset, not a FIN that a gone
/// guest would never acknowledge.
#[derive(Debug, Clone)]
pub struct AbortHandle(Arc<std::net::TcpStream>);

impl AbortHandle {
    /// Makes the socket's last close send a reset (`SO_LINGER` 0). Unsent data is dropped:
    /// call it only when nothing more is owed to the peer.
    pub fn reset_on_close(&self) {
        if let Err(e) = socket2::SockRef::from(&*self.0).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(error = %e, "SO_LINGER not set");
        }
    }
}

/// Splits an accepted stream into itself and an [`AbortHandle`] on the same socket.
pub(crate) fn with_abort_handle(stream: TcpStream) -> std::io::Result<(TcpStream, AbortHandle)> {
    let std = stream.into_std()?;
    let dup = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, AbortHandle(Arc::new(dup))))
}

/// Serves `app` on `listener` until `cancel`, tracking connections in `conns`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    conns: Arc<Connections>,
    idle: Duration,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Small writes (channel frames: keystrokes, echoes) go out at once.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(peer = %peer, error = %e, "TCP_NODELAY not set");
                }
                let (stream, abort) = match with_abort_handle(stream) {
                    Ok(split) => split,
                    Err(e) => {
                        tracing::warn!(peer = %peer, error = %e, "guest listener: socket not duplicated");
                        continue;
                    }
                };
                let (app, conns, cancel) = (app.clone(), Arc::clone(&conns), cancel.clone());
                tokio::spawn(async move {
                    serve_one(stream, abort, peer, app, &conns, idle, cancel).await;
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "guest listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_one(
    stream: TcpStream,
    abort: AbortHandle,
    peer: SocketAddr,
    app: Router,
    conns: &Connections,
    idle: Duration,
    cancel: CancellationToken,
) {
    let (id, token) = conns.register(peer.ip());
    let activity = Arc::new(Activity::new());
    let tracked = Arc::clone(&activity);
    let svc = app
        .map_request(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(abort.clone());
            req
        })
        .map_future(move |fut| {
            let a = Arc::clone(&tracked);
            a.begin();
            async move {
                let r = fut.await;
                a.end();
                r
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(idle);
    let conn = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::pin!(conn);
    let check = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut closing: Option<(Instant, &'static str)> = None;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, error = %e, "guest connection ended with an error");
                }
                break;
            }
            () = token.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some((Instant::now(), "sandbox released"));
            }
            () = cancel.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some((Instant::now(), "shutdown"));
            }
            () = tokio::time::sleep(check) => match closing {
                Some((since, why)) if since.elapsed() > CLOSE_GRACE => {
                    tracing::debug!(peer = %peer, reason = why, "guest connection dropped after the close grace");
                    break;
                }
                Some(_) => {}
                None if activity.idle_for() >= idle => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some((Instant::now(), "idle"));
                }
                None => {}
            },
        }
    }
    if let Some((_, why)) = closing {
        tracing::debug!(peer = %peer, reason = why, "guest connection closed");
    }
    conns.unregister(peer.ip(), id);
}
