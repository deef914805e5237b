//! The remote control API: the control routes over HTTPS on TCP for CI systems and other
//! machines, every request authenticated by an API token and checked against the route's
//! scope (`control::auth`), rate limited per client address (`control::rate`). Off unless
//! `remote.listen` is set.

pub mod mcp;
pub mod serve;
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use agentlab_core::config::Config;

use crate::control::{self, AppState};

/// Binds `addr`, loads (or generates) the certificate and serves the remote routes until
/// `cancel`, with `metrics` (`GET /metrics`) among its routes; returns the serving task.
pub async fn start(
    cfg: &Config,
    addr: SocketAddr,
    state: AppState,
    metrics: axum::Router,
    cancel: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let tls = tls::load(&cfg.remote, &cfg.data_dir).context("the remote API's certificate")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the remote API on {addr}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(listen = %bound, cert = %tls.cert_path.display(), fingerprint = %tls.fingerprint,
        "remote API listening (HTTPS; clients pin this certificate fingerprint)");
    let app = control::remote_router(state, &cfg.remote, metrics, cancel.clone());
    let opts = serve::ServeOptions {
        handshake_timeout: Duration::from_secs(cfg.remote.handshake_timeout_secs),
        max_connections: cfg.remote.max_connections,
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    Ok(tokio::spawn(serve::serve(
        listener, acceptor, app, opts, cancel,
    )))
}
