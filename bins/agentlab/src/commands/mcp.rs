//! `agentlab mcp`: serves the AgentLab tools over MCP on stdin/stdout (see `docs/mcp.md`),
//! talking to agentlabd through the global `--socket`. stdout carries only the protocol;
//! diagnostics go to stderr (`RUST_LOG` sets the level, default `warn`).

use anyhow::Context;

use crate::ctx::Ctx;
use crate::exit::Code;

/// Arguments of `agentlab mcp`.
#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// Without a subcommand: serve MCP on stdin/stdout.
    #[command(subcommand)]
    pub command: Option<McpCommand>,
}

/// Subcommands of `agentlab mcp`.
#[derive(Debug, clap::Subcommand)]
pub enum McpCommand {
    /// Add this agentlab as the `agentlab` MCP server to Claude Code's user configuration
    /// (`~/.claude.json`), printing the change.
    Install(super::mcp_install::InstallArgs),
}

/// Runs `agentlab mcp` until the MCP client closes the session, or `agentlab mcp install`.
pub async fn run(ctx: &Ctx, args: McpArgs) -> anyhow::Result<Code> {
    if let Some(McpCommand::Install(a)) = args.command {
        return super::mcp_install::run(ctx, a);
    }
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
