//! The MCP server over streamable HTTP (feature `http`): a tower service a web server mounts
//! at a path (agentlabd serves it at `/mcp` on its remote API).
//!
//! The service is stateless (no MCP sessions: every HTTP request is answered on its own), so
//! each request gets a fresh [`AgentLabMcp`] from `make_client`, called on the task that
//! handles the request: the embedder can give every request a client acting with that
//! request's own credentials (agentlabd does, so each tool call is held to the caller's
//! token scopes).

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use agentlab_client::Client;

use crate::server::AgentLabMcp;

/// The streamable HTTP service type.
pub type McpHttpService = StreamableHttpService<AgentLabMcp, NeverSessionManager>;

/// A streamable HTTP MCP service whose every request is answered by a server over the client
/// `make_client` returns (an `Err` answers that request with a 500). Requests must fit in
/// `max_body_bytes`. Cancelling `cancel` ends in-flight streams.
///
/// The `Host` header is not restricted (the embedder authenticates callers; DNS rebinding
/// cannot forge an `Authorization` header).
pub fn service(
    make_client: impl Fn() -> std::io::Result<Client> + Send + Sync + 'static,
    max_body_bytes: usize,
    cancel: CancellationToken,
) -> McpHttpService {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts()
        .with_max_request_body_bytes(max_body_bytes)
        .with_cancellation_token(cancel);
    let make = Arc::new(make_client);
    StreamableHttpService::new(
        move || make().map(AgentLabMcp::new),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
