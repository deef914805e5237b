//! Copies into and out of a running sandbox over its stream (`copy_in` / `copy_out`): the
//! data is a tar stream cut into `Data` frames, ended by `DataEnd` with its size and SHA-256,
//! which the receiving side checks. [`ChunkWriter`] and [`ChunkReader`] bridge the blocking
//! `tar` crate on a blocking thread to the async stream.

use futures::{SinkExt as _, StreamExt as _};
use hyper::body::Bytes;
use sha2::{Digest as _, Sha256};

use agentlab_core::Vmid;
use agentlab_core::api::channel::{CopyInRequest, CopyOutRequest, DataSummary, StreamRequest};
use agentlab_core::api::frame::{CHUNK, Frame};

use crate::client::Client;
use crate::error::ClientError;
use crate::sandbox_stream::SandboxStream;

fn broken(e: impl std::fmt::Display) -> ClientError {
    ClientError::StreamBroken(e.to_string())
}

/// A copy into a sandbox in progress: send the tar stream's bytes with [`CopyIn::send`],
/// then [`CopyIn::finish`]. Dropping it unfinished abandons the copy (the sandbox's side
/// sees the client go away and reports an error; files unpacked so far stay).
#[derive(Debug)]
pub struct CopyIn {
    stream: SandboxStream,
    hash: Sha256,
    bytes: u64,
}

impl CopyIn {
    /// Sends the next bytes of the tar stream.
    pub async fn send(&mut self, chunk: Bytes) -> Result<(), ClientError> {
        self.hash.update(&chunk);
        self.bytes += chunk.len() as u64;
        self.stream.send(Frame::Data(chunk)).await.map_err(broken)
    }

    /// Ends the tar stream and waits until the sandbox confirms it unpacked and checked it;
    /// returns what was sent.
    pub async fn finish(mut self) -> Result<DataSummary, ClientError> {
        let summary = DataSummary {
            bytes: self.bytes,
            sha256: hex::encode(self.hash.finalize()),
        };
        self.stream
            .send(Frame::DataEnd(Some(summary.clone())))
            .await
            .map_err(broken)?;
        match self.stream.next().await {
            Some(Ok(Frame::Exit(x))) if x.code == 0 => Ok(summary),
            Some(Ok(Frame::Exit(x))) => Err(ClientError::StreamRefused(format!(
                "the copy failed in the sandbox (code {})",
                x.code
            ))),
            Some(Ok(Frame::Error(m))) => Err(ClientError::StreamRefused(m)),
            Some(Ok(other)) => Err(broken(format!(
                "the sandbox did not confirm the copy: {other:?}"
            ))),
            Some(Err(e)) => Err(broken(e)),
            None => Err(broken("closed before the sandbox confirmed the copy")),
        }
    }
}

/// A copy out of a sandbox in progress: the tar stream's bytes, chunk by chunk.
#[derive(Debug)]
pub struct CopyOut {
    stream: SandboxStream,
    hash: Sha256,
    bytes: u64,
    ended: bool,
}

impl CopyOut {
    /// The next bytes of the tar stream; `None` at its end, once its size and SHA-256 were
    /// checked against the sandbox's summary (a mismatch is [`ClientError::StreamBroken`]).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            match self.stream.next().await {
                Some(Ok(Frame::Data(b))) => {
                    self.hash.update(&b);
                    self.bytes += b.len() as u64;
                    return Ok(Some(b));
                }
                Some(Ok(Frame::DataEnd(s))) => {
                    self.ended = true;
                    let sha256 = hex::encode(self.hash.clone().finalize());
                    return match s {
                        Some(s) if s.bytes == self.bytes && s.sha256 == sha256 => Ok(None),
                        Some(s) => Err(broken(format!(
                            "the copy arrived damaged: {} bytes with sha256 {sha256}, the sandbox sent {} bytes with sha256 {}",
                            self.bytes, s.bytes, s.sha256
                        ))),
                        None => Err(broken("the copy ended without its checksum")),
                    };
                }
                Some(Ok(Frame::Error(m))) => return Err(ClientError::StreamRefused(m)),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(broken(e)),
                None => {
                    return Err(broken(
                        "the sandbox closed the stream before the copy ended",
                    ));
                }
            }
        }
    }

    /// Bytes received so far and their SHA-256 (the whole stream's after the end).
    pub fn summary(&self) -> DataSummary {
        DataSummary {
            bytes: self.bytes,
            sha256: hex::encode(self.hash.clone().finalize()),
        }
    }
}

impl Client {
    /// Starts a copy into `vmid`: a tar stream unpacked under `req.path` (a directory,
    /// created if missing), files owned by `req.user`.
    pub async fn copy_in(&self, vmid: Vmid, req: CopyInRequest) -> Result<CopyIn, ClientError> {
        let stream = self.open_stream(vmid, StreamRequest::CopyIn(req)).await?;
        Ok(CopyIn {
            stream,
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    /// Starts a copy of `req.path` (a file, or a directory with its tree) out of `vmid`, as a
    /// tar stream with one top entry named after the path's last component.
    pub async fn copy_out(&self, vmid: Vmid, req: CopyOutRequest) -> Result<CopyOut, ClientError> {
        let stream = self.open_stream(vmid, StreamRequest::CopyOut(req)).await?;
        Ok(CopyOut {
            stream,
            hash: Sha256::new(),
            bytes: 0,
            ended: false,
        })
    }
}

/// A blocking `Write` that hands [`CHUNK`]-sized chunks to an async channel (for a tar
/// builder on a blocking thread); a closed channel is `BrokenPipe`. Call `flush` at the end.
#[derive(Debug)]
pub struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// A writer sending to `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stream closed"))
    }
}

/// A blocking `Read` fed by an async channel of chunks (for a tar reader on a blocking
/// thread); the channel's end is the end of the data.
#[derive(Debug)]
pub struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChunkReader {
    /// A reader receiving from `rx`.
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Self {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
