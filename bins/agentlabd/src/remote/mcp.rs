//! `/mcp` on the remote API: the MCP server over streamable HTTP (`agentlab_mcp::http`).
//!
//! Each request's tools act through an `agentlab_client::Client` whose transport is an
//! in-process HTTP/1.1 connection to the remote routes themselves (a `tokio::io::duplex`
//! pipe, no socket), carrying the caller's own token and address: every API call a tool
//! makes passes the same token check and scope check as a direct request, so a token holding
//! `mcp:use` and `job:read` can read jobs through MCP and nothing more.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt as _;

use agentlab_client::{Client, ConnectFuture, Connector};
use agentlab_mcp::http::McpHttpService;

/// Largest MCP request body (a `write_file` carries its content).
pub const MAX_BODY: usize = 16 << 20;
/// Per-call timeout of the tools' client.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

tokio::task_local! {
    /// The caller of the request being handled: its bearer token and address.
    static CALLER: (Option<String>, SocketAddr);
}

/// State of the `/mcp` route.
#[derive(Clone)]
pub struct McpRoute {
    /// The streamable HTTP service.
    pub service: McpHttpService,
}

impl std::fmt::Debug for McpRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpRoute")
    }
}

/// Opens in-process connections to `app`, served as if from `peer`.
struct InProcess {
    app: Router,
    peer: SocketAddr,
}

impl Connector for InProcess {
    fn connect(&self) -> ConnectFuture<'_> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let peer = self.peer;
        let svc = self
            .app
            .clone()
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), TowerToHyperService::new(svc))
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "in-process MCP connection ended with an error");
            }
        });
        Box::pin(async move { Ok(Box::new(client) as Box<dyn agentlab_client::Io>) })
    }
}

/// Builds the route's service; tool calls go to `api` (the remote routes, auth included).
pub fn route(api: Router, cancel: tokio_util::sync::CancellationToken) -> McpRoute {
    let service = agentlab_mcp::http::service(
        move || {
            let (token, peer) = CALLER
                .try_with(Clone::clone)
                .map_err(|_| std::io::Error::other("no caller for this MCP request"))?;
            Ok(Client::with_connector(
                "agentlabd (in-process)",
                InProcess {
                    app: api.clone(),
                    peer,
                },
                token,
                CLIENT_TIMEOUT,
            ))
        },
        MAX_BODY,
        cancel,
    );
    McpRoute { service }
}

/// The handler of `/mcp` (POST, GET, DELETE): the request is served by the MCP service with
/// the caller's token and address in scope for the tools' client.
pub async fn handle(
    State(route): State<McpRoute>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let resp = CALLER.scope((token, peer), route.service.handle(req)).await;
    resp.map(Body::new)
}
