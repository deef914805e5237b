//! Tool results: API objects as pretty JSON text, and failures as results with
//! `isError: true` whose text starts with a stable code (the daemon's error code, e.g.
//! `profile_not_found: …`), so the calling model sees why and the session goes on.

use agentlab_client::ClientError;
use agentlab_core::{JobId, Vmid};
use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;

/// A successful result carrying `value` as pretty-printed JSON.
pub fn json<T: Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_string_pretty(value) {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(e) => failure("internal", &format!("Cannot encode the answer: {e}")),
    }
}

/// A successful plain-text result.
pub fn text(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A tool error `code: message`.
pub fn failure(code: &str, message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("{code}: {message}"))])
}

/// The tool error for a failed daemon call: the API's own code and message when the daemon
/// answered with an error, else a code naming what went wrong on the way.
pub fn client_failure(e: &ClientError) -> CallToolResult {
    let code = match e {
        ClientError::Api(api) => return failure(&api.code, &api.message),
        ClientError::Unreachable { .. } => "agentlabd_unreachable",
        ClientError::Timeout { .. } => "agentlabd_timeout",
        ClientError::Http(_) => "connection_broken",
        ClientError::Protocol { .. } => "bad_response",
        ClientError::StreamRefused(_) | ClientError::StreamBroken(_) => "stream_failed",
        ClientError::Tls { .. } | ClientError::CertificateChanged { .. } => "tls_failed",
        ClientError::Config(_) => "client_config",
    };
    failure(code, &chain(e))
}

/// An error and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Parses a job id given to a tool; the error is the tool result to return.
pub fn job_id(raw: &str) -> Result<JobId, CallToolResult> {
    raw.trim()
        .parse()
        .map_err(|e: agentlab_core::IdError| failure("invalid_job_id", &e.to_string()))
}

/// Checks a VMID given to a tool; the error is the tool result to return.
pub fn vmid(raw: u32) -> Result<Vmid, CallToolResult> {
    Vmid::new(raw).map_err(|e| failure("invalid_vmid", &e.to_string()))
}
