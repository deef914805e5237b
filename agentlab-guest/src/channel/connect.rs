//! Dialing the guest listener and serving the yamux connection.
//!
//! [`run_channel`] keeps one channel up until cancelled: `GET {controller_url}/v1/channel`
//! with `Upgrade: agentlab-channel/1`, the vmid header and the channel key as a bearer token;
//! after `101` the upgraded connection carries yamux with this side as the server: every
//! stream the daemon opens is served by [`super::serve_stream`] on its own task, and this side
//! never opens one. A failed or ended connection is dialled again after a delay that doubles
//! from [`ChannelBackoff::initial`] to [`ChannelBackoff::max`] (reset by a connection that
//! came up); a `401`/`403` waits the maximum delay (the sandbox may be being destroyed).

use std::sync::Arc;
use std::time::Duration;

use agentlab_core::api::channel::{CHANNEL_PATH, CHANNEL_PROTOCOL, VMID_HEADER};
use agentlab_core::{SecretValue, Vmid};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::compat::{FuturesAsyncReadCompatExt as _, TokioAsyncReadCompatExt as _};
use tokio_util::sync::CancellationToken;

use super::stream::serve_stream;
use super::user::ChannelConfig;

/// Where the channel goes and the key it presents.
#[derive(Debug, Clone)]
pub struct ChannelTarget {
    /// The guest listener's base URL (`http://10.77.0.1:8844`).
    pub controller_url: String,
    /// This sandbox.
    pub vmid: Vmid,
    /// The channel key (never logged).
    pub key: SecretValue,
}

/// Reconnect delays.
#[derive(Debug, Clone, Copy)]
pub struct ChannelBackoff {
    /// First delay after a failure.
    pub initial: Duration,
    /// Largest delay (also the delay after a refused key).
    pub max: Duration,
}

impl Default for ChannelBackoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

/// Why one dial failed.
#[derive(Debug)]
enum DialError {
    /// The listener refused the key (`401`/`403`).
    Refused(reqwest::StatusCode),
    /// Anything else.
    Other(String),
}

/// Keeps the channel up until `cancel` fires; see the module docs.
pub async fn run_channel(
    target: ChannelTarget,
    config: Arc<ChannelConfig>,
    backoff: ChannelBackoff,
    cancel: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .http1_only()
        // Keystrokes and small frames go out at once (no Nagle delay behind an ACK).
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the channel's HTTP client");
            return;
        }
    };
    let mut delay = backoff.initial;
    loop {
        let dialed = tokio::select! {
            d = dial(&client, &target) => d,
            () = cancel.cancelled() => return,
        };
        match dialed {
            Ok(upgraded) => {
                tracing::info!(sandbox = %target.vmid, "channel connected");
                delay = backoff.initial;
                match serve_connection(upgraded, Arc::clone(&config), &cancel).await {
                    Ok(()) => tracing::warn!(sandbox = %target.vmid, "channel closed"),
                    Err(e) => tracing::warn!(sandbox = %target.vmid, error = %e, "channel failed"),
                }
                if cancel.is_cancelled() {
                    return;
                }
            }
            Err(DialError::Refused(status)) => {
                tracing::warn!(sandbox = %target.vmid, %status, "channel key refused; retrying later");
                delay = backoff.max;
            }
            Err(DialError::Other(e)) => {
                tracing::warn!(sandbox = %target.vmid, error = %e, retry_ms = delay.as_millis(), "cannot open the channel");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return,
        }
        delay = (delay * 2).min(backoff.max);
    }
}

/// One upgrade request.
async fn dial(
    client: &reqwest::Client,
    target: &ChannelTarget,
) -> Result<reqwest::Upgraded, DialError> {
    let url = format!("{}{CHANNEL_PATH}", target.controller_url);
    let resp = client
        .get(&url)
        .header(reqwest::header::CONNECTION, "Upgrade")
        .header(reqwest::header::UPGRADE, CHANNEL_PROTOCOL)
        .header(VMID_HEADER, target.vmid.get().to_string())
        .bearer_auth(target.key.expose())
        .send()
        .await
        .map_err(|e| DialError::Other(format!("{url}: {}", super::stream::chain(&e))))?;
    match resp.status() {
        reqwest::StatusCode::SWITCHING_PROTOCOLS => resp
            .upgrade()
            .await
            .map_err(|e| DialError::Other(format!("{url}: upgrade failed: {e}"))),
        s @ (reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) => {
            Err(DialError::Refused(s))
        }
        s => Err(DialError::Other(format!("{url} answered {s}"))),
    }
}

/// Serves one connection (yamux server) until it ends or `cancel` fires.
pub async fn serve_connection<T>(
    io: T,
    config: Arc<ChannelConfig>,
    cancel: &CancellationToken,
) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn =
        yamux::Connection::new(io.compat(), yamux::Config::default(), yamux::Mode::Server);
    loop {
        let next = futures::future::poll_fn(|cx| conn.poll_next_inbound(cx));
        tokio::select! {
            s = next => match s {
                Some(Ok(stream)) => {
                    tokio::spawn(serve_stream(stream.compat(), Arc::clone(&config)));
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(()),
            },
            () = cancel.cancelled() => {
                let _ = futures::future::poll_fn(|cx| conn.poll_close(cx)).await;
                return Ok(());
            }
        }
    }
}
