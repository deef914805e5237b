//! The guest side of the sandbox channel (see [`agentlab_core::api::channel`]).
//!
//! [`run_channel`] ([`connect`]) keeps an authenticated yamux connection to the guest listener
//! and serves every stream the daemon opens with [`serve_stream`] ([`stream`]): an exec
//! (`exec`, or `pty` with a terminal), a copy in or out (`copy`) or a TCP forward
//! (`forward`). [`user`] decides who a request runs as; [`handoff`] is the file through
//! which the job runner hands the channel key to the channel process.

pub mod connect;
mod copy;
mod exec;
mod forward;
pub mod handoff;
mod pty;
pub mod stream;
pub mod user;

pub use connect::{ChannelBackoff, ChannelTarget, run_channel, serve_connection};
pub use handoff::{
    DEFAULT_CHANNEL_FILE, read_channel_file, serve_from_file, wait_channel_file, write_channel_file,
};
pub use stream::serve_stream;
pub use user::{ChannelConfig, Identity};
