//! One inbound stream: read the [`Frame::Request`], validate it, run it
//! (`exec`, `pty`, `copy`, `forward`), and answer
//! [`Frame::Error`] on any failure.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use agentlab_core::api::channel::StreamRequest;
use agentlab_core::api::frame::{Frame, FrameCodec, FrameError};
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use super::user::ChannelConfig;
use super::{copy, exec, forward, pty};

/// Frames to the client.
pub(crate) type FrameSink = Pin<Box<dyn Sink<Frame, Error = FrameError> + Send>>;
/// Frames from the client.
pub(crate) type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, FrameError>> + Send>>;

/// Serves one stream until its request is done; never panics on client misbehaviour.
pub async fn serve_stream<S>(io: S, config: Arc<ChannelConfig>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (sink, frames) = Framed::new(io, FrameCodec).split();
    let mut sink: FrameSink = Box::pin(sink);
    let mut frames: FrameStream = Box::pin(frames);
    let request = match frames.next().await {
        Some(Ok(Frame::Request(r))) => r,
        Some(Ok(_)) => {
            fail(&mut sink, "the first frame must be a request".to_owned()).await;
            return;
        }
        Some(Err(e)) => {
            fail(&mut sink, format!("bad request: {e}")).await;
            return;
        }
        None => return,
    };
    if let Err(msg) = request.validate() {
        fail(&mut sink, msg).await;
        return;
    }
    let kind = request.kind();
    let started = Instant::now();
    let result = match request {
        StreamRequest::Exec(e) if e.tty.is_some() => pty::run(e, &config, &mut sink, frames).await,
        StreamRequest::Exec(e) => exec::run(e, &config, &mut sink, frames).await,
        StreamRequest::CopyIn(c) => copy::copy_in(c, &config, &mut sink, frames).await,
        StreamRequest::CopyOut(c) => copy::copy_out(c, &config, &mut sink).await,
        StreamRequest::Forward(f) => forward::run(f, &mut sink, frames).await,
    };
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(()) => tracing::info!(kind, duration_ms = ms, "channel stream done"),
        Err(msg) => {
            tracing::info!(kind, duration_ms = ms, error = %msg, "channel stream failed");
            fail(&mut sink, msg).await;
        }
    }
    let _ = sink.close().await;
}

/// Sends `Frame::Error(msg)` (best effort: the client may be gone).
async fn fail(sink: &mut FrameSink, msg: String) {
    let _ = sink.send(Frame::Error(msg)).await;
    let _ = sink.close().await;
}

/// Sends one frame; a failure means the client is gone.
pub(crate) async fn send(sink: &mut FrameSink, frame: Frame) -> Result<(), String> {
    sink.send(frame)
        .await
        .map_err(|e| format!("client stream closed: {e}"))
}

/// An error and the chain of its sources, `: `-joined.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
