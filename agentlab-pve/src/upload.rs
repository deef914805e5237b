//! `POST /nodes/{node}/storage/{storage}/upload`: a file streamed as `multipart/form-data`
//! (the way pveproxy takes uploads), with progress.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use body_stream::chunk_stream;
use reqwest::header::AUTHORIZATION;
use serde_json::Value;

use crate::client::{Api, seg};
use crate::error::PveError;

/// Called with `(bytes sent, total bytes)` while uploading.
pub type UploadProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

mod body_stream {
    //! Reading a file as a stream of chunks (no extra dependencies).
    use tokio::io::AsyncReadExt as _;

    use super::UploadProgress;

    /// The multipart body: `head`, the file in 1 MiB chunks (reporting progress), `tail`.
    pub fn chunk_stream(
        file: tokio::fs::File,
        head: Vec<u8>,
        tail: Vec<u8>,
        total: u64,
        progress: UploadProgress,
    ) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
        enum St {
            Head(tokio::fs::File, Vec<u8>, Vec<u8>),
            Body(tokio::fs::File, Vec<u8>, u64),
            Done,
        }
        futures::stream::unfold(St::Head(file, head, tail), move |st| {
            let progress = progress.clone();
            async move {
                match st {
                    St::Head(f, head, tail) => Some((Ok(head), St::Body(f, tail, 0))),
                    St::Body(mut f, tail, sent) => {
                        let mut buf = vec![0u8; 1 << 20];
                        match f.read(&mut buf).await {
                            Ok(0) => {
                                progress(sent, total);
                                Some((Ok(tail), St::Done))
                            }
                            Ok(n) => {
                                buf.truncate(n);
                                let sent = sent + n as u64;
                                progress(sent, total);
                                Some((Ok(buf), St::Body(f, tail, sent)))
                            }
                            Err(e) => Some((Err(e), St::Done)),
                        }
                    }
                    St::Done => None,
                }
            }
        })
    }
}

/// One file upload.
#[derive(Clone)]
pub struct Upload<'a> {
    /// Node.
    pub node: &'a str,
    /// Storage.
    pub storage: &'a str,
    /// Content type (`import`, `iso`, `vztmpl`).
    pub content: &'a str,
    /// File name on the storage.
    pub filename: &'a str,
    /// Local file.
    pub path: &'a Path,
    /// sha256 (hex) PVE verifies.
    pub sha256: Option<&'a str>,
    /// Progress callback.
    pub progress: UploadProgress,
}

impl std::fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("node", &self.node)
            .field("storage", &self.storage)
            .field("filename", &self.filename)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Uploads a file; returns the task's UPID.
    pub async fn upload(&self, u: Upload<'_>) -> Result<Value, PveError> {
        let Upload {
            node,
            storage,
            content,
            filename,
            path,
            sha256,
            progress,
        } = u;
        let call = format!("POST /nodes/{node}/storage/{storage}/upload");
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| PveError::Setup(format!("{}: {e}", path.display())))?;
        let total = file
            .metadata()
            .await
            .map_err(|e| PveError::Setup(format!("{}: {e}", path.display())))?
            .len();
        let boundary = format!("agentlab{:016x}", rand::random::<u64>());
        let mut head = String::new();
        let mut field = |k: &str, v: &str| {
            head.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        };
        field("content", content);
        if let Some(sum) = sha256 {
            field("checksum-algorithm", "sha256");
            field("checksum", sum);
        }
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        let length = head.len() as u64 + total + tail.len() as u64;
        let stream = chunk_stream(file, head.into_bytes(), tail, total, progress);
        let url = format!(
            "{}/nodes/{}/storage/{}/upload",
            self.base,
            seg(node),
            seg(storage)
        );
        let resp = self
            .http
            .post(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("content-length", length)
            .timeout(Duration::from_secs(6 * 3600))
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| PveError::Connection {
                call: call.clone(),
                detail: e.to_string(),
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return body.get("data").cloned().ok_or(PveError::Decode {
                call,
                detail: "no `data` in answer".into(),
            });
        }
        let mut message = body
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| status.to_string(), |m| m.trim_end().to_owned());
        if let Some(errors) = body.get("errors").and_then(Value::as_object) {
            let list: Vec<String> = errors
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default().trim_end()))
                .collect();
            message = format!("{message} ({})", list.join("; "));
        }
        Err(PveError::Api {
            call,
            status: status.as_u16(),
            message,
        })
    }
}
