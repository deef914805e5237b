//! An MCP (Model Context Protocol) server for AgentLab, built on the official Rust SDK
//! (`rmcp`), over stdio ([`serve_stdio`]) and over streamable HTTP (feature `http`: the
//! `http` module, served by agentlabd's remote API at `/mcp`). It exposes the daemon's
//! profiles, sandboxes (with commands and file reads and writes inside them), jobs and
//! artifacts as tools, each answered through an [`agentlab_client::Client`]; a failed call is
//! a tool result with `isError: true` whose text starts with the daemon's error code.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentlab_mcp::McpError> {
//! use std::time::Duration;
//!
//! let client = agentlab_client::Client::new("/run/agentlab/agentlabd.sock", Duration::from_secs(30));
//! agentlab_mcp::serve_stdio(client).await
//! # }
//! ```

#![warn(missing_docs)]
#![warn(missing_debug_implementations)]
#![forbid(unsafe_code)]

mod artifact;
mod bundle;
mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod params;
mod render;
mod sandbox_io;
mod server;
mod tools;
mod wait;

pub use error::McpError;
pub use sandbox_io::{DEFAULT_EXEC_TIMEOUT_SECS, OUTPUT_MAX};
pub use server::{AgentLabMcp, serve_stdio};
