//! Log streaming: every line is redacted, appended to the runner log file and shipped to the
//! controller in batches (every `batch_lines` lines or every flush interval).
//!
//! Agent output goes through one [`LineRedactor`] per stream, which holds back just enough
//! text to catch secret values split across lines; held lines are released when the stream
//! has been idle for a moment (so a lone line shows up live). The price: a value split across
//! lines *with a pause in between* may have its first part shown. Runner messages are
//! redacted whole.
//! Shipping is best effort: a batch that cannot be delivered after a few retries is dropped
//! (and counted) — the full log still reaches the host in the artifact bundle.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use agentlab_core::api::guest::{LogBatch, LogLine, LogStream};
use agentlab_core::redact::{LineRedactor, Redactor};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{Backoff, RunnerClient};
use crate::error::GuestError;

const LOG_BACKOFF: Backoff = Backoff {
    attempts: 3,
    initial: Duration::from_millis(200),
    max: Duration::from_secs(2),
};
/// Lines of stderr kept for error messages.
const TAIL_LINES: usize = 20;

/// Sends log lines to the shipper. Cheap to clone; the shipper ends when every handle is gone.
#[derive(Debug, Clone)]
pub struct LogHandle {
    tx: mpsc::Sender<LogLine>,
    redactor: Redactor,
}

impl LogHandle {
    /// The redactor used for every line.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Logs a runner message (redacted; may span several lines).
    pub async fn runner(&self, msg: &str) {
        let redacted = self.redactor.redact(msg);
        for line in redacted.lines() {
            self.send(LogStream::Runner, line.to_owned()).await;
        }
    }

    /// A line-redacting writer for one output stream of a child process.
    pub fn stream(&self, stream: LogStream) -> StreamLogger {
        StreamLogger {
            handle: self.clone(),
            stream,
            redactor: self.redactor.line_redactor(),
            tail: VecDeque::new(),
        }
    }

    async fn send(&self, stream: LogStream, line: String) {
        // The shipper only stops after every handle is dropped, so this cannot fail while
        // `self` exists; ignore the impossible error.
        let _ = self.tx.send(LogLine { stream, line }).await;
    }
}

/// Redacts one stream's lines (across line boundaries) and forwards them.
#[derive(Debug)]
pub struct StreamLogger {
    handle: LogHandle,
    stream: LogStream,
    redactor: LineRedactor,
    tail: VecDeque<String>,
}

impl StreamLogger {
    /// Pushes one raw line (without its newline).
    pub async fn push(&mut self, raw: &str) {
        let ready = self.redactor.push_line(raw);
        self.emit(ready).await;
    }

    /// Emits held-back lines now (called when the stream goes idle, so a lone line is not
    /// delayed); they stay as context for redacting a value continued on later lines.
    pub async fn flush(&mut self) {
        let ready = self.redactor.flush();
        self.emit(ready).await;
    }

    /// Flushes held-back lines; returns the last redacted lines (for error messages).
    pub async fn finish(mut self) -> Vec<String> {
        let ready = self.redactor.finish();
        self.emit(ready).await;
        self.tail.into_iter().collect()
    }

    async fn emit(&mut self, lines: Vec<String>) {
        for line in lines {
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line.clone());
            self.handle.send(self.stream, line).await;
        }
    }
}

/// What the shipper did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipStats {
    /// Lines written to the log file.
    pub lines: u64,
    /// Lines that could not be delivered to the controller.
    pub dropped: u64,
}

/// The background task writing the log file and posting batches.
#[derive(Debug)]
pub struct LogShipper {
    join: JoinHandle<ShipStats>,
}

impl LogShipper {
    /// Starts the shipper. `client` is `None` when nothing should be posted.
    pub async fn spawn(
        client: Option<RunnerClient>,
        file: &Path,
        redactor: Redactor,
        batch_lines: usize,
        flush_interval: Duration,
    ) -> Result<(LogHandle, Self), GuestError> {
        let out = tokio::fs::File::create(file)
            .await
            .map_err(|e| GuestError::io(format!("Cannot create {}", file.display()), e))?;
        let (tx, rx) = mpsc::channel(4096);
        let join = tokio::spawn(ship(rx, client, out, batch_lines.max(1), flush_interval));
        Ok((LogHandle { tx, redactor }, Self { join }))
    }

    /// Waits until every handle is dropped and every line is written and posted.
    pub async fn finish(self) -> ShipStats {
        self.join.await.unwrap_or_default()
    }
}

async fn ship(
    mut rx: mpsc::Receiver<LogLine>,
    mut client: Option<RunnerClient>,
    file: tokio::fs::File,
    batch_lines: usize,
    flush_interval: Duration,
) -> ShipStats {
    let mut out = tokio::io::BufWriter::new(file);
    let mut stats = ShipStats::default();
    let mut batch = LogBatch::default();
    let mut ticker = tokio::time::interval(flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(line) = msg else { break };
                let prefix = match line.stream {
                    LogStream::Stdout => "[stdout] ",
                    LogStream::Stderr => "[stderr] ",
                    LogStream::Runner => "[runner] ",
                };
                let text = format!("{prefix}{}\n", line.line);
                if let Err(e) = out.write_all(text.as_bytes()).await {
                    tracing::warn!(error = %e, "cannot write runner log");
                }
                stats.lines += 1;
                batch.lines.push(line);
                if batch.lines.len() >= batch_lines {
                    post(&mut client, &mut batch, &mut stats).await;
                }
            }
            _ = ticker.tick() => {
                if !batch.lines.is_empty() {
                    let _ = out.flush().await;
                    post(&mut client, &mut batch, &mut stats).await;
                }
            }
        }
    }
    post(&mut client, &mut batch, &mut stats).await;
    if let Err(e) = out.flush().await {
        tracing::warn!(error = %e, "cannot flush runner log");
    }
    stats
}

async fn post(client: &mut Option<RunnerClient>, batch: &mut LogBatch, stats: &mut ShipStats) {
    if batch.lines.is_empty() {
        return;
    }
    let taken = std::mem::take(batch);
    let Some(c) = client.as_ref() else { return };
    if let Err(e) = c.logs(&taken, LOG_BACKOFF).await {
        stats.dropped += taken.lines.len() as u64;
        tracing::warn!(error = %e, lines = taken.lines.len(), "log batch not delivered");
        if matches!(e, GuestError::Protocol { .. }) {
            // 4xx (e.g. 401): retrying will not help; keep writing the file only.
            *client = None;
        }
    }
}
