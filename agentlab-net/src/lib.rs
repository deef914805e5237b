//! # agentlab-net
//!
//! Network isolation for AgentLab sandboxes. AgentLab owns two nftables tables named `agentlab`
//! (by default): `table inet agentlab` (routing policy: egress, host input, NAT) and
//! `table bridge agentlab` (layer 2: anti-spoofing and sandbox ↔ sandbox isolation). Nothing
//! else on the host is touched.
//!
//! - [`render`]: pure config → ruleset text (golden-tested).
//! - [`NftFirewall`]: implements [`agentlab_core::Firewall`] by piping atomic batches into `nft -f -`
//!   through an [`NftRunner`].
//! - [`bridge`]: bridge setup helpers for plain Linux hosts.
//! - [`probe`] and [`check`]: the TCP probe used by the test harness and `agentlab net check`.
//!
//! See `docs/network.md` for the policy in prose.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod batch;
pub mod bridge;
pub mod check;
mod config;
mod daemon_config;
mod error;
mod firewall;
#[cfg(test)]
mod mock_tests;
pub mod netns;
pub mod plan;
pub mod probe;
pub mod render;
mod resolve;
mod runner;
mod validate;

pub use config::{NetConfig, TailnetConfig};
pub use error::NetError;
pub use firewall::NftFirewall;
pub use resolve::{DomainResolver, SystemResolver, resolve_allowlist};
/// A mockall mock of [`NftRunner`] for other crates' tests (feature `mock`).
#[cfg(feature = "mock")]
pub use runner::MockNftRunner;
pub use runner::{NftRunner, ProcessRunner, RecordingRunner};
pub use validate::{validate_iface, validate_mac, validate_sandbox};
