//! The sandbox channel, host side: the guest agents' yamux connections ([`hub`]), their
//! upgrade on the guest listener ([`guest_route`]) and the exec fallback through the
//! hypervisor's guest agent ([`fallback`]). The control API's streams into a sandbox are the
//! daemon's (or an embedder's) and reach the guest through [`ChannelHub`]. Protocol:
//! [`agentlab_core::api::channel`].

pub mod fallback;
pub mod guest_route;
pub mod hub;

pub use hub::ChannelHub;
