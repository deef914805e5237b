//! HTTP calls to the controller's guest listener: the bootstrap fetch (with retry and
//! exponential backoff, honouring `Retry-After`) and the runner routes (status, logs,
//! artifact upload) authenticated with the per-job runner token.

use std::path::Path;
use std::time::Duration;

use agentlab_core::api::guest::{
    ArtifactReceipt, BOOTSTRAP_ABANDON_PATH, BOOTSTRAP_FETCH_PATH, BootstrapAbandonRequest,
    BootstrapFetchRequest, BootstrapPayload, ErrorBody, LogBatch, StatusReport,
};
use agentlab_core::{BootstrapData, SecretValue};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue, RETRY_AFTER};

use crate::error::GuestError;

/// Retry policy for controller calls.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts in total.
    pub attempts: u32,
    /// First delay.
    pub initial: Duration,
    /// Largest delay (also caps `Retry-After`).
    pub max: Duration,
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

fn http_client(timeout: Option<Duration>) -> Result<reqwest::Client, GuestError> {
    let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().map_err(|e| GuestError::Protocol {
        url: String::new(),
        reason: format!("cannot build HTTP client: {e}"),
    })
}

/// A failed attempt: `retry_after` set when retrying makes sense.
enum Attempt {
    Retry(String, Option<Duration>),
    Fatal(GuestError),
}

/// `POST {controller_url}/v1/bootstrap/fetch` with retries. 403 → [`GuestError::Forbidden`]
/// (final); 409 `no_job` → `Ok(None)`; network errors, 5xx and 429 are retried.
pub async fn fetch_payload(
    data: &BootstrapData,
    backoff: Backoff,
) -> Result<Option<BootstrapPayload>, GuestError> {
    let url = format!("{}{BOOTSTRAP_FETCH_PATH}", data.controller_url);
    let http = http_client(Some(Duration::from_secs(30)))?;
    let body = BootstrapFetchRequest {
        token: data.token.clone(),
        vmid: data.vmid,
    };
    let mut last = String::new();
    for attempt in 1..=backoff.attempts.max(1) {
        let outcome = match http.post(&url).json(&body).send().await {
            Err(e) => Attempt::Retry(describe(&e), None),
            Ok(resp) => match resp.status() {
                StatusCode::OK => match resp.bytes().await {
                    Ok(bytes) => return parse_payload(&url, &bytes).map(Some),
                    Err(e) => Attempt::Retry(describe(&e), None),
                },
                StatusCode::FORBIDDEN => return Err(GuestError::Forbidden),
                StatusCode::CONFLICT => return Ok(None),
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(&resp);
                    Attempt::Retry("rate limited (429)".to_owned(), wait)
                }
                s if s.is_server_error() => Attempt::Retry(error_text(resp).await, None),
                _ => Attempt::Fatal(GuestError::Protocol {
                    url: url.clone(),
                    reason: error_text(resp).await,
                }),
            },
        };
        match outcome {
            Attempt::Fatal(e) => return Err(e),
            Attempt::Retry(reason, retry_after) => {
                last = reason;
                if attempt < backoff.attempts {
                    let wait = retry_after
                        .unwrap_or_else(|| backoff.delay(attempt))
                        .min(backoff.max);
                    tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, reason = %last, "bootstrap fetch failed, retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    Err(GuestError::Unreachable {
        url,
        attempts: backoff.attempts.max(1),
        reason: last,
    })
}

/// Parses the payload; the error names the position only (values may be secrets).
fn parse_payload(url: &str, bytes: &[u8]) -> Result<BootstrapPayload, GuestError> {
    serde_json::from_slice(bytes).map_err(|e| GuestError::Protocol {
        url: url.to_owned(),
        reason: format!(
            "bad payload ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    match resp.json::<ErrorBody>().await {
        Ok(b) => format!("{status}: {} ({})", b.error.message, b.error.code),
        Err(_) => status.to_string(),
    }
}

/// Client for the runner routes, authenticated with the runner token.
#[derive(Debug, Clone)]
pub struct RunnerClient {
    http: reqwest::Client,
    upload_http: reqwest::Client,
    auth: HeaderValue,
    status_url: String,
    logs_url: String,
    artifacts_url: String,
}

impl RunnerClient {
    /// Builds the client from the payload's URLs and token.
    pub fn new(payload: &BootstrapPayload) -> Result<Self, GuestError> {
        let mut auth = bearer(&payload.runner_token)?;
        auth.set_sensitive(true);
        Ok(Self {
            http: http_client(Some(Duration::from_secs(30)))?,
            upload_http: http_client(None)?,
            auth,
            status_url: payload.status_url.clone(),
            logs_url: payload.logs_url.clone(),
            artifacts_url: payload.artifacts_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends a status report, retrying per `backoff` (401 and other 4xx are final).
    pub async fn status(&self, report: &StatusReport, backoff: Backoff) -> Result<(), GuestError> {
        self.post_json(&self.status_url, report, backoff).await
    }

    /// Sends a log batch, retrying per `backoff`.
    pub async fn logs(&self, batch: &LogBatch, backoff: Backoff) -> Result<(), GuestError> {
        self.post_json(&self.logs_url, batch, backoff).await
    }

    async fn post_json<T: serde::Serialize + Sync>(
        &self,
        url: &str,
        body: &T,
        backoff: Backoff,
    ) -> Result<(), GuestError> {
        let mut last = String::new();
        for attempt in 1..=backoff.attempts.max(1) {
            let req = self
                .http
                .post(url)
                .header(AUTHORIZATION, self.auth.clone())
                .json(body);
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) if resp.status().is_client_error() => {
                    return Err(GuestError::Protocol {
                        url: url.to_owned(),
                        reason: error_text(resp).await,
                    });
                }
                Ok(resp) => last = error_text(resp).await,
                Err(e) => last = describe(&e),
            }
            if attempt < backoff.attempts {
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
        Err(GuestError::Unreachable {
            url: url.to_owned(),
            attempts: backoff.attempts.max(1),
            reason: last,
        })
    }

    /// Streams `path` to `PUT {artifacts_url}/{name}`, retrying per `backoff` when the
    /// controller cannot be reached, drops the connection or answers 5xx/429 (the daemon
    /// accepts the same name and content again, so a retry after a lost answer is harmless).
    /// Other 4xx answers (401, 409 `job_ended`, 413) are final.
    pub async fn upload(
        &self,
        name: &str,
        path: &Path,
        backoff: Backoff,
    ) -> Result<ArtifactReceipt, GuestError> {
        let url = format!("{}/{name}", self.artifacts_url);
        let mut last = String::new();
        for attempt in 1..=backoff.attempts.max(1) {
            let wait = match self.upload_once(&url, path).await? {
                Ok(receipt) => return Ok(receipt),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason, retry_after)) => {
                    last = reason;
                    retry_after
                }
            };
            if attempt < backoff.attempts {
                let wait = wait
                    .unwrap_or_else(|| backoff.delay(attempt))
                    .min(backoff.max);
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, reason = %last, "artifact upload failed, retrying");
                tokio::time::sleep(wait).await;
            }
        }
        Err(GuestError::Unreachable {
            url,
            attempts: backoff.attempts.max(1),
            reason: last,
        })
    }

    /// One upload attempt; the outer error is local (the file cannot be read).
    async fn upload_once(
        &self,
        url: &str,
        path: &Path,
    ) -> Result<Result<ArtifactReceipt, Attempt>, GuestError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| GuestError::io(format!("Cannot open {}", path.display()), e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| GuestError::io(format!("Cannot stat {}", path.display()), e))?
            .len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let sent = self
            .upload_http
            .put(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Ok(Err(Attempt::Retry(describe(&e), None))),
        };
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(&resp);
            return Ok(Err(Attempt::Retry(error_text(resp).await, wait)));
        }
        if status.is_server_error() {
            return Ok(Err(Attempt::Retry(error_text(resp).await, None)));
        }
        if !status.is_success() {
            return Ok(Err(Attempt::Fatal(GuestError::Protocol {
                url: url.to_owned(),
                reason: error_text(resp).await,
            })));
        }
        Ok(match resp.json().await {
            Ok(r) => Ok(r),
            Err(e) => Err(Attempt::Retry(
                format!("bad receipt: {}", describe(&e)),
                None,
            )),
        })
    }
}

/// `POST {controller_url}/v1/bootstrap/abandon`: tells the controller the runner gives up its
/// fetch (one attempt, short timeout; best effort). `reason` must not contain secrets.
pub async fn abandon(data: &BootstrapData, reason: &str) -> Result<(), GuestError> {
    let url = format!("{}{BOOTSTRAP_ABANDON_PATH}", data.controller_url);
    let http = http_client(Some(Duration::from_secs(10)))?;
    let body = BootstrapAbandonRequest {
        token: data.token.clone(),
        vmid: data.vmid,
        reason: reason.to_owned(),
    };
    let resp = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| GuestError::Unreachable {
            url: url.clone(),
            attempts: 1,
            reason: describe(&e),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(GuestError::Protocol {
            url,
            reason: error_text(resp).await,
        })
    }
}

fn bearer(token: &SecretValue) -> Result<HeaderValue, GuestError> {
    HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| GuestError::Protocol {
        url: String::new(),
        reason: "runner token contains characters not allowed in a header".to_owned(),
    })
}
