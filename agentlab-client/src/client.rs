//! HTTP/1.1 over agentlabd's Unix socket: the transport under the typed methods of `api`.
//!
//! [`Client`] sends one request per connection (callers make a handful of calls at a time, so
//! pooling buys nothing and failures stay independent), decodes JSON bodies into the wire types
//! of `agentlab_core::api`, and turns the daemon's error envelope into an [`ApiError`].
//! `--timeout` bounds connecting, the response head and reading a non-streamed body; followed
//! event streams ([`LineStream`]) are unbounded because a quiet job may print nothing for
//! minutes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentlab_core::api::control::ErrorBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::error::{ApiError, ClientError};
use crate::remote::{Remote, RemoteOptions};
use crate::stream::{Download, LineStream};

/// Characters escaped in a path segment (everything but unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where the daemon is.
#[derive(Debug, Clone)]
enum Target {
    /// Its Unix socket (full access for the socket's group).
    Socket(PathBuf),
    /// Its remote API (HTTPS, API token).
    Remote(Arc<Remote>),
    /// A caller-provided transport (see [`Client::with_connector`]).
    Custom(Arc<Custom>),
}

/// A byte stream to the daemon: a Unix socket, TLS over TCP, or a [`Connector`]'s stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The future of [`Connector::connect`].
pub type ConnectFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Io>>> + Send + 'a>>;

/// Opens byte streams to a daemon speaking the control API's HTTP/1.1: for transports the
/// crate does not know (an in-process server, a tunnel). One stream per request.
pub trait Connector: Send + Sync {
    /// Opens one stream.
    fn connect(&self) -> ConnectFuture<'_>;
}

/// A custom target: its connector, a name for messages and an optional token.
struct Custom {
    name: String,
    connector: Box<dyn Connector>,
    bearer: Option<String>,
}

impl std::fmt::Debug for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custom")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A client for agentlabd's control API, on its Unix socket or its remote endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    timeout: Duration,
}

impl Client {
    /// A client for `socket` with a per-request `timeout`.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            target: Target::Socket(socket.into()),
            timeout,
        }
    }

    /// A client for a remote agentlabd (HTTPS with an API token), with a per-request
    /// `timeout`. Fails on an unusable URL, CA file or token; nothing is sent yet.
    pub fn remote(opts: &RemoteOptions, timeout: Duration) -> Result<Self, ClientError> {
        Ok(Self {
            target: Target::Remote(Arc::new(Remote::new(opts)?)),
            timeout,
        })
    }

    /// A client over `connector` (`name` appears in error messages), sending `token` as a
    /// bearer token when given.
    pub fn with_connector(
        name: impl Into<String>,
        connector: impl Connector + 'static,
        token: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            target: Target::Custom(Arc::new(Custom {
                name: name.into(),
                connector: Box::new(connector),
                bearer: token.map(|t| format!("Bearer {t}")),
            })),
            timeout,
        }
    }

    /// The socket path, for a client of the Unix socket.
    pub fn socket(&self) -> Option<&Path> {
        match &self.target {
            Target::Socket(p) => Some(p),
            Target::Remote(_) | Target::Custom(_) => None,
        }
    }

    /// The socket path or the endpoint URL, for messages.
    pub fn target(&self) -> String {
        match &self.target {
            Target::Socket(p) => p.display().to_string(),
            Target::Remote(r) => r.url.clone(),
            Target::Custom(c) => c.name.clone(),
        }
    }

    /// The certificate fingerprint this client pinned on first use, and the file it wrote
    /// it to (a caller tells its user once).
    pub fn pinned_on_first_use(&self) -> Option<(String, PathBuf)> {
        match &self.target {
            Target::Remote(r) => r
                .pins
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pinned
                .clone(),
            Target::Socket(_) | Target::Custom(_) => None,
        }
    }

    /// Opens a connection to the daemon.
    pub(crate) async fn connect(&self) -> Result<Box<dyn Io>, ClientError> {
        match &self.target {
            Target::Custom(c) => c
                .connector
                .connect()
                .await
                .map_err(|e| self.unreachable(&e)),
            Target::Socket(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| self.unreachable(&e))?;
                Ok(Box::new(stream))
            }
            Target::Remote(r) => {
                let tcp = TcpStream::connect(&r.authority)
                    .await
                    .map_err(|e| self.unreachable(&e))?;
                let _ = tcp.set_nodelay(true);
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&r.tls));
                match connector.connect(r.server_name.clone(), tcp).await {
                    Ok(tls) => Ok(Box::new(tls)),
                    Err(e) => {
                        let mismatch = r
                            .pins
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .mismatch
                            .take();
                        Err(match mismatch {
                            Some((pinned, presented, known_file)) => {
                                ClientError::CertificateChanged {
                                    endpoint: r.url.clone(),
                                    pinned,
                                    presented,
                                    known_file,
                                }
                            }
                            None => ClientError::Tls {
                                endpoint: r.url.clone(),
                                reason: e.to_string(),
                            },
                        })
                    }
                }
            }
        }
    }

    /// Adds the Host header, and the token on the remote endpoint.
    pub(crate) fn headers(
        &self,
        req: hyper::http::request::Builder,
    ) -> hyper::http::request::Builder {
        match &self.target {
            Target::Socket(_) => req.header(HOST, "agentlabd"),
            Target::Remote(r) => {
                let req = req.header(HOST, r.authority.as_str());
                match &r.bearer {
                    Some(b) => req.header(AUTHORIZATION, b.as_str()),
                    None => req,
                }
            }
            Target::Custom(c) => {
                let req = req.header(HOST, "agentlabd");
                match &c.bearer {
                    Some(b) => req.header(AUTHORIZATION, b.as_str()),
                    None => req,
                }
            }
        }
    }

    /// `GET path`, decoding the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None).await
    }

    /// `GET path` of a list route, following the `x-next-cursor` header page after page
    /// (passed back as `cursor_param`) until the last page or until `max` items.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        cursor_param: &str,
        max: Option<usize>,
    ) -> Result<Vec<T>, ClientError> {
        self.get_pages(path, path, cursor_param, max).await
    }

    /// Like [`Client::get_all`], but the pages after the first are read from `then` plus the
    /// cursor (`events?tail=N` goes on as `events?after=…`).
    pub async fn get_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        then: &str,
        cursor_param: &str,
        max: Option<usize>,
    ) -> Result<Vec<T>, ClientError> {
        let mut items: Vec<T> = Vec::new();
        let mut url = path.to_owned();
        loop {
            let resp = self.send(Method::GET, &url, None).await?;
            let next = resp
                .headers()
                .get(NEXT_CURSOR)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = self.read_body(resp.into_body()).await?;
            let page: Vec<T> = serde_json::from_slice(&bytes)
                .map_err(|e| protocol(&url, format!("invalid JSON: {e}")))?;
            items.extend(page);
            if let Some(max) = max
                && items.len() >= max
            {
                items.truncate(max);
                return Ok(items);
            }
            let Some(next) = next else {
                return Ok(items);
            };
            let sep = if then.contains('?') { '&' } else { '?' };
            let cursor = with_query("", &[(cursor_param, Some(next))]);
            url = format!("{then}{sep}{}", cursor.trim_start_matches('?'));
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| protocol(path, e.to_string()))?;
        self.json(Method::POST, path, Some((bytes.into(), "application/json")))
            .await
    }

    /// `POST path` without a body.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::POST, path, None).await
    }

    /// `POST path` with a raw text body (YAML).
    pub async fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        text: String,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, path, Some((text.into(), "application/yaml")))
            .await
    }

    /// `DELETE path`, decoding the JSON answer.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::DELETE, path, None).await
    }

    /// `DELETE path` for routes answering `204 No Content`.
    pub async fn delete_no_content(&self, path: &str) -> Result<(), ClientError> {
        let resp = self.send(Method::DELETE, path, None).await?;
        self.read_body(resp.into_body()).await.map(drop)
    }

    /// `GET path` for a raw body read chunk by chunk (artifact downloads).
    pub async fn download(&self, path: &str) -> Result<Download, ClientError> {
        let resp = self.send(Method::GET, path, None).await?;
        let (parts, body) = resp.into_parts();
        Ok(Download::new(parts.headers, body, self.clone(), path))
    }

    /// `GET path` for an NDJSON stream (`follow=true` event routes).
    pub async fn stream_lines(&self, path: &str) -> Result<LineStream, ClientError> {
        let resp = self.send(Method::GET, path, None).await?;
        Ok(LineStream::new(resp.into_body(), path))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, body).await?;
        let bytes = self.read_body(resp.into_body()).await?;
        serde_json::from_slice(&bytes).map_err(|e| protocol(path, format!("invalid JSON: {e}")))
    }

    /// Connects, sends, and returns the response when its status is a success; an error
    /// status becomes [`ClientError::Api`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut req = self.headers(Request::builder().method(method).uri(path));
        if let Some((_, content_type)) = &body {
            req = req.header(CONTENT_TYPE, *content_type);
        }
        let req = req
            .body(Full::new(body.map(|(b, _)| b).unwrap_or_default()))
            .map_err(|e| protocol(path, e.to_string()))?;
        let resp = self.within(self.exchange(req)).await??;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = self
            .within(resp.into_body().collect())
            .await?
            .map_err(ClientError::Http)?;
        Err(decode_error(status, &bytes.to_bytes()).into())
    }

    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, ClientError> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "control connection ended with an error");
            }
        });
        sender.send_request(req).await.map_err(ClientError::Http)
    }

    /// The error for a failed connect.
    fn unreachable(&self, e: &std::io::Error) -> ClientError {
        let reason = match &self.target {
            Target::Socket(path) => unreachable_reason(e, path),
            Target::Remote(_) | Target::Custom(_) => e.to_string(),
        };
        ClientError::Unreachable {
            target: self.target(),
            reason,
        }
    }

    async fn read_body(&self, body: Incoming) -> Result<Bytes, ClientError> {
        let collected = self.within(body.collect()).await?;
        Ok(collected.map_err(ClientError::Http)?.to_bytes())
    }

    pub(crate) async fn within<F: Future>(&self, fut: F) -> Result<F::Output, ClientError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                target: self.target(),
                secs: self.timeout.as_secs(),
            })
    }
}

/// Response header of list routes naming the next page's cursor.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// Percent-encodes one path segment (a workspace name, artifact name, …).
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Appends a query string built from the pairs whose value is `Some`.
pub fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{q}")
    }
}

/// Decodes an error response body: the envelope when it is one, else a synthesized
/// `http_<status>` error carrying the body text.
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    if let Ok(envelope) = serde_json::from_slice::<ErrorBody>(body) {
        return api_error(status, envelope);
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    let message = if text.is_empty() {
        format!("HTTP {status} {reason}")
    } else {
        text
    };
    ApiError {
        status,
        code: format!("http_{status}"),
        message,
        details: serde_json::Value::Null,
    }
}

pub(crate) fn api_error(status: u16, body: ErrorBody) -> ApiError {
    let ErrorBody { error } = body;
    ApiError {
        status,
        code: error.code,
        message: error.message,
        details: error.details,
    }
}

fn unreachable_reason(e: &std::io::Error, socket: &Path) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        PermissionDenied => {
            use std::os::unix::fs::MetadataExt as _;
            let group = std::fs::metadata(socket)
                .ok()
                .map(|m| m.gid())
                .map(|gid| group_name(gid).unwrap_or_else(|| gid.to_string()));
            match group {
                Some(g) => format!(
                    "{} (the socket belongs to group {g}: run as root, or join the group with \
                     `sudo usermod -aG {g} $USER` and log in again)",
                    crate::error::PERMISSION_DENIED
                ),
                None => format!(
                    "{} (run as root or join the socket's group)",
                    crate::error::PERMISSION_DENIED
                ),
            }
        }
        NotFound => "no socket file there (is agentlabd running?)".to_owned(),
        ConnectionRefused => {
            "nothing is listening on the socket (agentlabd is not running)".to_owned()
        }
        _ => e.to_string(),
    }
}

/// The name of group `gid` in `/etc/group`.
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == gid).then(|| name.to_owned())
    })
}

pub(crate) fn protocol(path: &str, reason: String) -> ClientError {
    ClientError::Protocol {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
