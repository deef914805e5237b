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
//!
//! Programs over the client test themselves against a canned daemon on a temporary socket
//! (feature `testing`): answers come back typed, errors as the daemon's envelope.
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use agentlab_client::ClientError;
//! use agentlab_client::testing::{Canned, Reply, fixtures};
//! use agentlab_core::JobState;
//!
//! let daemon = Canned::start(vec![(
//!     "GET /v1/jobs/job-1",
//!     Reply::json(200, &fixtures::job(JobState::Completed)),
//! )])
//! .await;
//! let client = daemon.client();
//! let job = client.show_job(&"job-1".parse().unwrap()).await.unwrap();
//! assert_eq!(job.state, JobState::Completed);
//! // A route the canned daemon does not know answers 404 in the daemon's error envelope.
//! match client.show_job(&"job-2".parse().unwrap()).await {
//!     Err(ClientError::Api(e)) => assert_eq!(e.status, 404),
//!     other => panic!("expected a 404, got {other:?}"),
//! }
//! assert_eq!(daemon.seen(), ["GET /v1/jobs/job-1", "GET /v1/jobs/job-2"]);
//! # }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
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
