//! Streams into a sandbox: `POST /v1/sandboxes/{vmid}/stream` upgraded to
//! [`agentlab_core::api::frame`] frames (see `agentlab_core::api::channel`).

use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

use agentlab_core::Vmid;
use agentlab_core::api::channel::{STREAM_PROTOCOL, StreamRequest};
use agentlab_core::api::frame::{Frame, FrameCodec};

use crate::client::{Client, ClientError, decode_error};

/// A stream into a sandbox, after its request was accepted.
pub type SandboxStream = Framed<TokioIo<hyper::upgrade::Upgraded>, FrameCodec>;

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The daemon refused before the upgrade (no sandbox, agent not connected, …).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The guest refused or failed the request.
    #[error("{0}")]
    Refused(String),
    /// The stream broke off.
    #[error("the stream into the sandbox broke off: {0}")]
    Broken(String),
}

impl Client {
    /// Opens a stream into `vmid` and sends `request`; returns once the guest answered
    /// `Ready`.
    pub async fn open_stream(
        &self,
        vmid: Vmid,
        request: StreamRequest,
    ) -> Result<SandboxStream, StreamError> {
        let path = format!("/v1/sandboxes/{vmid}/stream");
        let stream = UnixStream::connect(self.socket())
            .await
            .map_err(|e| self.unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Http)?;
        tokio::spawn(conn.with_upgrades());
        let req = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header(HOST, "agentlabd")
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, STREAM_PROTOCOL)
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::Protocol {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let resp = self
            .within(sender.send_request(req))
            .await?
            .map_err(ClientError::Http)?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status().as_u16();
            let body = self
                .within(resp.into_body().collect())
                .await?
                .map_err(ClientError::Http)?
                .to_bytes();
            return Err(ClientError::from(decode_error(status, &body)).into());
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| StreamError::Broken(e.to_string()))?;
        let mut framed = Framed::new(TokioIo::new(upgraded), FrameCodec);
        framed
            .send(Frame::Request(request))
            .await
            .map_err(|e| StreamError::Broken(e.to_string()))?;
        match framed.next().await {
            Some(Ok(Frame::Ready)) => Ok(framed),
            Some(Ok(Frame::Error(m))) => Err(StreamError::Refused(m)),
            Some(Ok(other)) => Err(StreamError::Broken(format!(
                "expected Ready, got {other:?}"
            ))),
            Some(Err(e)) => Err(StreamError::Broken(e.to_string())),
            None => Err(StreamError::Broken("closed before the request ran".into())),
        }
    }
}
