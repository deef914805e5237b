//! The sandbox channel, daemon side: the guest agents' yamux connections ([`hub`]), their
//! upgrade on the guest listener ([`guest_route`]) and the control socket's streams into a
//! sandbox ([`stream_route`]). Protocol: [`agentlab_core::api::channel`].

pub mod fallback;
#[cfg(test)]
mod fallback_tests;
pub mod guest_route;
pub mod hub;
pub mod stream_route;
#[cfg(test)]
mod tests;

pub use hub::ChannelHub;
