//! The sandbox channel, daemon side: the control socket's streams into a sandbox
//! ([`stream_route`]); the guest agents' connections, their upgrade and the exec fallback are
//! the host library's ([`agentlab_host::channel`]). Protocol: [`agentlab_core::api::channel`].

pub use agentlab_host::channel::{ChannelHub, fallback, guest_route};
#[cfg(test)]
mod fallback_tests;
pub mod stream_route;
#[cfg(test)]
mod tests;
