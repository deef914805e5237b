//! Frames of a sandbox stream (see [`crate::api::channel`]): `[type: u8][length: u32 BE]
//! [payload]`, at most [`MAX_PAYLOAD`] bytes of payload. [`FrameCodec`] reads and writes
//! them with `tokio_util::codec`.
//!
//! Client → guest: [`Frame::Request`] first, then `Stdin`/`StdinEof`/`Signal`/`Resize`
//! (exec), `Data`/`DataEnd` (copy in, forward). Guest → client: [`Frame::Ready`] once the
//! request runs, or [`Frame::Error`] (which ends the stream); then `Stdout`/`Stderr`/`Exit`
//! (exec), `Data`/`DataEnd` (copy out, forward) and `Exit` (copy in: code 0 once unpacked and
//! checked).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::channel::{DataSummary, ExitInfo, StreamRequest, TtySize};

/// Largest payload of one frame (1 MiB).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Size of the chunks writers cut data into (64 KiB).
pub const CHUNK: usize = 64 * 1024;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// What to do (first client frame).
    Request(StreamRequest),
    /// The request was accepted and runs.
    Ready,
    /// The request failed; the stream ends.
    Error(String),
    /// Bytes for the process's stdin.
    Stdin(Bytes),
    /// The process's stdin is closed.
    StdinEof,
    /// Bytes the process wrote to stdout (or its terminal).
    Stdout(Bytes),
    /// Bytes the process wrote to stderr.
    Stderr(Bytes),
    /// Send this signal to the process group.
    Signal(i32),
    /// The terminal was resized.
    Resize(TtySize),
    /// The process ended (or, for a copy in, the files are written).
    Exit(ExitInfo),
    /// Payload bytes of a copy or a forwarded connection.
    Data(Bytes),
    /// No more data from this side (with a summary for copies).
    DataEnd(Option<DataSummary>),
    /// A note for the person at the client (e.g. that the exec ran through the hypervisor's
    /// guest agent); not part of the command's output.
    Notice(String),
}

impl Frame {
    fn tag(&self) -> u8 {
        match self {
            Self::Request(_) => 1,
            Self::Ready => 2,
            Self::Error(_) => 3,
            Self::Stdin(_) => 4,
            Self::StdinEof => 5,
            Self::Stdout(_) => 6,
            Self::Stderr(_) => 7,
            Self::Signal(_) => 8,
            Self::Resize(_) => 9,
            Self::Exit(_) => 10,
            Self::Data(_) => 11,
            Self::DataEnd(_) => 12,
            Self::Notice(_) => 13,
        }
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed.
    #[error("stream I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A frame was larger than [`MAX_PAYLOAD`].
    #[error("frame of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    /// Unknown type byte or a malformed payload.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// `tokio_util` codec for [`Frame`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

fn json<T: serde::de::DeserializeOwned>(b: &[u8], what: &str) -> Result<T, FrameError> {
    serde_json::from_slice(b).map_err(|e| FrameError::Malformed(format!("{what}: {e}")))
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 5 {
            return Ok(None);
        }
        let tag = src[0];
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        if src.len() < 5 + len {
            src.reserve(5 + len - src.len());
            return Ok(None);
        }
        src.advance(5);
        let p = src.split_to(len).freeze();
        let frame = match tag {
            1 => Frame::Request(json(&p, "request")?),
            2 => Frame::Ready,
            3 => Frame::Error(String::from_utf8_lossy(&p).into_owned()),
            4 => Frame::Stdin(p),
            5 => Frame::StdinEof,
            6 => Frame::Stdout(p),
            7 => Frame::Stderr(p),
            8 if p.len() == 4 => Frame::Signal(i32::from_be_bytes([p[0], p[1], p[2], p[3]])),
            9 if p.len() == 4 => Frame::Resize(TtySize {
                cols: u16::from_be_bytes([p[0], p[1]]),
                rows: u16::from_be_bytes([p[2], p[3]]),
            }),
            10 => Frame::Exit(json::<ExitInfo>(&p, "exit")?),
            11 => Frame::Data(p),
            12 if p.is_empty() => Frame::DataEnd(None),
            12 => Frame::DataEnd(Some(json(&p, "data end")?)),
            13 => Frame::Notice(String::from_utf8_lossy(&p).into_owned()),
            t => return Err(FrameError::Malformed(format!("type {t} ({len} bytes)"))),
        };
        Ok(Some(frame))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let to_json = |v: &dyn erased::Json| v.to_vec();
        let payload: Bytes = match &frame {
            Frame::Request(r) => to_json(r)?.into(),
            Frame::Exit(e) => to_json(e)?.into(),
            Frame::DataEnd(Some(s)) => to_json(s)?.into(),
            Frame::Error(m) | Frame::Notice(m) => Bytes::copy_from_slice(m.as_bytes()),
            Frame::Stdin(b) | Frame::Stdout(b) | Frame::Stderr(b) | Frame::Data(b) => b.clone(),
            Frame::Signal(s) => Bytes::copy_from_slice(&s.to_be_bytes()),
            Frame::Resize(t) => {
                let mut b = BytesMut::with_capacity(4);
                b.put_u16(t.cols);
                b.put_u16(t.rows);
                b.freeze()
            }
            Frame::Ready | Frame::StdinEof | Frame::DataEnd(None) => Bytes::new(),
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(payload.len()));
        }
        dst.reserve(5 + payload.len());
        dst.put_u8(frame.tag());
        dst.put_u32(payload.len() as u32);
        dst.put_slice(&payload);
        Ok(())
    }
}

mod erased {
    /// Serializes any of the JSON payloads.
    pub(super) trait Json {
        fn to_vec(&self) -> Result<Vec<u8>, super::FrameError>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Result<Vec<u8>, super::FrameError> {
            serde_json::to_vec(self).map_err(|e| super::FrameError::Malformed(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::channel::{ExecUser, ForwardRequest};

    #[test]
    fn every_frame_round_trips_even_when_split() {
        let frames = vec![
            Frame::Request(StreamRequest::Forward(ForwardRequest { port: 8080 })),
            Frame::Ready,
            Frame::Error("no such file".into()),
            Frame::Stdin(Bytes::from_static(b"in")),
            Frame::StdinEof,
            Frame::Stdout(Bytes::from(vec![7u8; CHUNK])),
            Frame::Stderr(Bytes::from_static(b"err")),
            Frame::Signal(2),
            Frame::Resize(TtySize {
                cols: 120,
                rows: 40,
            }),
            Frame::Exit(ExitInfo {
                code: 130,
                signal: Some(2),
                timed_out: false,
            }),
            Frame::Data(Bytes::from_static(b"data")),
            Frame::DataEnd(None),
            Frame::DataEnd(Some(DataSummary {
                bytes: 4,
                sha256: "ab".into(),
            })),
            Frame::Notice("ran through the guest agent".into()),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            FrameCodec.encode(f.clone(), &mut buf).expect("encode");
        }
        // Feed one byte at a time: the decoder waits for whole frames.
        let all = buf.freeze();
        let mut src = BytesMut::new();
        let mut out = Vec::new();
        for b in all.iter() {
            src.put_u8(*b);
            while let Some(f) = FrameCodec.decode(&mut src).expect("decode") {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
        let _ = ExecUser::Root;
    }

    #[test]
    fn oversized_and_unknown_frames_are_errors() {
        let mut src = BytesMut::new();
        src.put_u8(11);
        src.put_u32((MAX_PAYLOAD + 1) as u32);
        assert!(matches!(
            FrameCodec.decode(&mut src),
            Err(FrameError::TooLarge(_))
        ));
        let mut src = BytesMut::new();
        src.put_u8(99);
        src.put_u32(0);
        assert!(matches!(
            FrameCodec.decode(&mut src),
            Err(FrameError::Malformed(_))
        ));
        let mut src = BytesMut::new();
        src.put_u8(1);
        src.put_u32(2);
        src.put_slice(b"{}");
        assert!(FrameCodec.decode(&mut src).is_err());
        let too_big = Frame::Data(Bytes::from(vec![0u8; MAX_PAYLOAD + 1]));
        assert!(FrameCodec.encode(too_big, &mut BytesMut::new()).is_err());
    }
}
