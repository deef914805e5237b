//! A TCP connection to a port on the sandbox's loopback: [`Frame::Data`] both ways,
//! [`Frame::DataEnd`] closes one direction, and the stream ends when both directions ended.

use agentlab_core::api::channel::ForwardRequest;
use agentlab_core::api::frame::{CHUNK, Frame};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::stream::{FrameSink, FrameStream, send};

/// Connects to `127.0.0.1:req.port` and relays; see the module docs.
pub(crate) async fn run(
    req: ForwardRequest,
    sink: &mut FrameSink,
    frames: FrameStream,
) -> Result<(), String> {
    let tcp = TcpStream::connect(("127.0.0.1", req.port))
        .await
        .map_err(|e| format!("cannot connect to port {} in the sandbox: {e}", req.port))?;
    let _ = tcp.set_nodelay(true);
    send(sink, Frame::Ready).await?;
    let (read, write) = tcp.into_split();
    let up = client_to_port(frames, write);
    let down = port_to_client(read, sink);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    // Both directions must end; a failed one ends the stream (and closes the connection).
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                r?;
                up_done = true;
            }
            r = &mut down, if !down_done => {
                r?;
                down_done = true;
            }
        }
    }
    Ok(())
}

async fn client_to_port(mut frames: FrameStream, mut write: OwnedWriteHalf) -> Result<(), String> {
    loop {
        match frames.next().await {
            None => return Err("client went away".to_owned()),
            Some(Ok(Frame::Data(b))) => write
                .write_all(&b)
                .await
                .map_err(|e| format!("write to the forwarded port: {e}"))?,
            Some(Ok(Frame::DataEnd(_))) => break,
            Some(Ok(other)) => tracing::debug!(frame = ?other, "ignoring an unexpected frame"),
            Some(Err(e)) => return Err(format!("client stream: {e}")),
        }
    }
    let _ = write.shutdown().await;
    Ok(())
}

async fn port_to_client(mut read: OwnedReadHalf, sink: &mut FrameSink) -> Result<(), String> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match read.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => send(sink, Frame::Data(Bytes::copy_from_slice(&buf[..n]))).await?,
            Err(e) => {
                tracing::debug!(error = %e, "forwarded connection read failed");
                break;
            }
        }
    }
    send(sink, Frame::DataEnd(None)).await
}
