//! `agentlab mcp`: serves the AgentLab tools over MCP on stdin/stdout (see `docs/mcp.md`),
//! talking to agentlabd through the global `--socket`. stdout carries only the protocol;
//! diagnostics go to stderr (`RUST_LOG` sets the level, default `warn`).

use anyhow::Context;

use crate::ctx::Ctx;
use crate::exit::Code;

/// Arguments of `agentlab mcp`.
#[derive(Debug, clap::Args)]
pub struct McpArgs {}

/// Runs `agentlab mcp` until the MCP client closes the session.
pub async fn run(ctx: &Ctx, _args: McpArgs) -> anyhow::Result<Code> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Only fails when a subscriber is already set, which then keeps logging.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    agentlab_mcp::serve_stdio(ctx.client.clone())
        .await
        .context("MCP server failed")?;
    Ok(Code::Ok)
}
