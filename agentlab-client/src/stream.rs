//! Streamed response bodies: [`Download`] (raw bytes chunk by chunk, each read bounded by the
//! client's timeout) and [`LineStream`] (NDJSON, unbounded, `{}` keep-alives skipped), with the
//! [`LineBuffer`] that splits arbitrary chunks into lines.

use agentlab_core::api::control::ErrorBody;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::client::{Client, api_error, protocol};
use crate::error::ClientError;

/// A raw response body being downloaded; each chunk read is bounded by the client's timeout.
#[derive(Debug)]
pub struct Download {
    /// Response headers (`x-sha256`, `content-length`).
    pub headers: HeaderMap,
    body: Incoming,
    client: Client,
    path: String,
}

impl Download {
    pub(crate) fn new(headers: HeaderMap, body: Incoming, client: Client, path: &str) -> Self {
        Self {
            headers,
            body,
            client,
            path: path.to_owned(),
        }
    }

    /// The value of a header as text, when present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next chunk of data, `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let Some(frame) = self.client.within(self.body.frame()).await? else {
                return Ok(None);
            };
            let frame = frame.map_err(ClientError::Http)?;
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
            tracing::trace!(path = %self.path, "skipping a non-data frame");
        }
    }
}

/// An NDJSON response read line by line.
#[derive(Debug)]
pub struct LineStream {
    body: Incoming,
    buf: LineBuffer,
    done: bool,
    path: String,
}

impl LineStream {
    pub(crate) fn new(body: Incoming, path: &str) -> Self {
        Self {
            body,
            buf: LineBuffer::default(),
            done: false,
            path: path.to_owned(),
        }
    }

    /// The next line without its line ending, `None` when the stream ended.
    pub async fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(line) = self.buf.pop_line() {
                return Ok(Some(line));
            }
            if self.done {
                return Ok(self.buf.take_rest());
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(e)) => return Err(ClientError::Http(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push(&data);
                    }
                }
            }
        }
    }

    /// The next JSON value, skipping blank lines and `{}` keep-alives; an error envelope sent
    /// in the stream becomes [`ClientError::Api`].
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ClientError> {
        while let Some(line) = self.next_line().await? {
            let line = line.trim();
            if line.is_empty() || line == "{}" {
                continue;
            }
            if let Ok(body) = serde_json::from_str::<ErrorBody>(line) {
                return Err(api_error(500, body).into());
            }
            return serde_json::from_str(line)
                .map(Some)
                .map_err(|e| protocol(&self.path, format!("invalid JSON line: {e}")));
        }
        Ok(None)
    }
}

/// Splits a byte stream into lines; chunk boundaries may fall anywhere, even inside a UTF-8
/// character.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete line (without `\n` / `\r\n`), if one is buffered.
    pub fn pop_line(&mut self) -> Option<String> {
        let pos = self.buf.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    /// Whatever is left after the stream ended (a last line without `\n`), if not empty.
    pub fn take_rest(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.is_empty()).then(|| String::from_utf8_lossy(&rest).into_owned())
    }
}
