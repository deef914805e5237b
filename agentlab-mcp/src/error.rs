//! The crate's error: why the MCP server could not start or stopped abnormally. Failed tool
//! calls are not errors here; they are tool results with `isError: true` (see `render`).

/// Why serving MCP failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The MCP session could not be initialized with the client.
    #[error("Cannot start the MCP session: {0}")]
    Initialize(String),
    /// The server task ended abnormally.
    #[error("The MCP server task failed: {0}")]
    Task(String),
}
