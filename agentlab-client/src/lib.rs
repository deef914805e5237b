//! A typed async client for agentlabd's control API: HTTP/1.1 over its Unix socket or over
//! HTTPS to its remote API (API token, pinned certificate; [`Client::remote`]), JSON
//! bodies in the wire types of `agentlab_core::api::control`, NDJSON event streams, raw
//! artifact downloads and upgraded streams into sandboxes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentlab_client::ClientError> {
//! use std::time::Duration;
//!
//! let client = agentlab_client::Client::new("/run/agentlab/agentlabd.sock", Duration::from_secs(30));
//! for p in client.list_profiles().await? {
//!     println!("{}", p.name);
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
#![warn(missing_debug_implementations)]
#![forbid(unsafe_code)]

mod api;
mod client;
mod copy;
mod error;
mod exec;
mod remote;
mod sandbox_stream;
mod stream;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use api::SandboxFilter;
pub use client::{
    Client, ConnectFuture, Connector, Io, NEXT_CURSOR, decode_error, seg, with_query,
};
pub use copy::{ChunkReader, ChunkWriter, CopyIn, CopyOut};
pub use error::{ApiError, ClientError, START_HINT};
pub use exec::{Captured, ExecOutput};
pub use remote::{DEFAULT_PORT, RemoteOptions, Trust, fingerprint_of};
pub use sandbox_stream::SandboxStream;
pub use stream::{Download, LineBuffer, LineStream};
