//! Streams into a sandbox: `POST /v1/sandboxes/{vmid}/stream` upgraded to
//! [`agentlab_core::api::frame`] frames (see `agentlab_core::api::channel`).

use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, UPGRADE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::codec::Framed;

use agentlab_core::Vmid;
use agentlab_core::api::channel::{STREAM_PROTOCOL, StreamRequest};
use agentlab_core::api::frame::{Frame, FrameCodec};

use crate::client::{Client, decode_error};
use crate::error::ClientError;

/// A stream into a sandbox, after its request was accepted.
pub type SandboxStream = Framed<TokioIo<hyper::upgrade::Upgraded>, FrameCodec>;

impl Client {
    /// Opens a stream into `vmid` and sends `request`; returns once the guest answered
    /// `Ready`. A refusal by the guest is [`ClientError::StreamRefused`], a stream that broke
    /// off before that [`ClientError::StreamBroken`].
    pub async fn open_stream(
        &self,
        vmid: Vmid,
        request: StreamRequest,
    ) -> Result<SandboxStream, ClientError> {
        let path = format!("/v1/sandboxes/{vmid}/stream");
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Http)?;
        tokio::spawn(conn.with_upgrades());
        let req = self
            .headers(Request::builder().method(Method::POST).uri(&path))
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
            return Err(decode_error(status, &body).into());
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| ClientError::StreamBroken(e.to_string()))?;
        let mut framed = Framed::new(TokioIo::new(upgraded), FrameCodec);
        framed
            .send(Frame::Request(request))
            .await
            .map_err(|e| ClientError::StreamBroken(e.to_string()))?;
        match framed.next().await {
            Some(Ok(Frame::Ready)) => Ok(framed),
            Some(Ok(Frame::Error(m))) => Err(ClientError::StreamRefused(m)),
            Some(Ok(other)) => Err(ClientError::StreamBroken(format!(
                "expected Ready, got {other:?}"
            ))),
            Some(Err(e)) => Err(ClientError::StreamBroken(e.to_string())),
            None => Err(ClientError::StreamBroken(
                "closed before the request ran".into(),
            )),
        }
    }
}
