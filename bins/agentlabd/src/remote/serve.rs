//! The remote API's accept loop: TLS (with a handshake deadline), HTTP/1.1 with upgrades
//! (exec and shell streams work remotely), at most `max_connections` at once, the peer's
//! address as `ConnectInfo` (the rate limiter's key), shutdown on cancel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How long a request's head may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests get after shutdown begins.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serving parameters.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Most connections at once.
    pub max_connections: usize,
}

/// Serves `app` over TLS on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    opts: ServeOptions,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "remote API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, app, cancel) = (acceptor.clone(), app.clone(), cancel.clone());
        let handshake = opts.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "remote API: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "remote API: TLS handshake timed out");
                    return;
                }
            };
            serve_one(TokioIo::new(tls), peer, app, cancel).await;
        });
    }
}

async fn serve_one<I>(io: TokioIo<I>, peer: SocketAddr, app: Router, cancel: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = app.map_request(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder
        .serve_connection(io, TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "remote connection ended with an error");
            }
            return;
        }
        () = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    if tokio::time::timeout(CLOSE_GRACE, conn).await.is_err() {
        tracing::debug!(peer = %peer, "remote connection dropped after the close grace");
    }
}
