//! [`AgentLabMcp`]: the MCP server handler over an [`agentlab_client::Client`], and
//! [`serve_stdio`], which serves it on stdin/stdout until the client disconnects.

use agentlab_client::Client;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, tool_handler};

use crate::error::McpError;

/// What the server tells a client about itself at initialization.
const INSTRUCTIONS: &str = "AgentLab runs AI coding agents in ephemeral, network-isolated \
     sandboxes managed by agentlabd. Use list_profiles to see what can be run, run_job to run \
     an agent on a repository (wait=true to get the result), job_status / job_logs / \
     list_artifacts / read_artifact to inspect a job, the *_sandbox tools to manage \
     sandboxes directly, and exec / read_file / write_file to work inside a READY sandbox. Failed calls return isError results starting with the daemon's error \
     code.";

/// The AgentLab MCP server: one tool per control-API operation, all answered through the
/// daemon client it was built with.
#[derive(Debug, Clone)]
pub struct AgentLabMcp {
    pub(crate) client: Client,
    tool_router: ToolRouter<Self>,
}

impl AgentLabMcp {
    /// A server answering tool calls through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            tool_router: Self::tool_router(),
        }
    }

    /// The names of the tools the server offers.
    pub fn tool_names(&self) -> Vec<String> {
        self.tool_router
            .list_all()
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AgentLabMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("agentlab", env!("CARGO_PKG_VERSION")).with_title("AgentLab"),
            )
            .with_instructions(INSTRUCTIONS)
    }
}

/// Serves the AgentLab tools over MCP on stdin/stdout until the client closes the session.
/// Nothing else may write to stdout meanwhile; log to stderr.
pub async fn serve_stdio(client: Client) -> Result<(), McpError> {
    let service = AgentLabMcp::new(client)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Initialize(e.to_string()))?;
    let reason = service
        .waiting()
        .await
        .map_err(|e| McpError::Task(e.to_string()))?;
    tracing::debug!(?reason, "MCP session ended");
    Ok(())
}
