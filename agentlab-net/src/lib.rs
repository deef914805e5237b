//! # agentlab-net
//!
//! Network isolation for AgentLab sandboxes. AgentLab owns two nftables tables named `agentlab`
//! (by default): `table inet agentlab` (routing policy: egress, host input, NAT) and
//! `table bridge agentlab` (layer 2: anti-spoofing and sandbox ↔ sandbox isolation). Nothing
//! else on the host is touched.
//!
//! - [`render`]: pure config → ruleset text (golden-tested).
//! - [`NftFirewall`]: implements [`agentlab_core::Firewall`] by piping atomic batches into
//!   `nft -f -` through an [`NftRunner`].
//! - [`bridge`]: bridge setup helpers for plain Linux hosts.
//! - [`probe`] and [`check`]: the TCP probe used by the test harness and `agentlab net check`.
//!
//! See `docs/network.md` for the policy in prose.
//!
//! The firewall with a [`RecordingRunner`] in place of `nft`: nothing touches the host, and the
//! batches it would pipe into `nft -f -` are kept for inspection.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use agentlab_core::{Egress, Firewall, SandboxNet, Vmid};
//! use agentlab_net::{NetConfig, NftFirewall, RecordingRunner};
//!
//! let runner = Arc::new(RecordingRunner::new());
//! let fw = NftFirewall::with_runner(NetConfig::default(), runner.clone())?;
//! fw.ensure_base().await?;
//! fw.allow(&SandboxNet {
//!     vmid: Vmid::new(101)?,
//!     iface: "tap101i0".into(),
//!     mac: "02:00:00:00:01:01".into(),
//!     ip: "10.77.0.11".parse()?,
//!     egress: Egress::Nat,
//! })
//! .await?;
//!
//! let batches = runner.batches();
//! assert_eq!(batches.len(), 2);
//! // The base ruleset defines both tables in one atomic batch.
//! assert!(batches[0].contains("table inet agentlab {"));
//! assert!(batches[0].contains("table bridge agentlab {"));
//! // Allowing a sandbox adds its elements only, e.g. the port → MAC binding (anti-spoofing).
//! assert!(batches[1]
//!     .contains(r#"add element bridge agentlab port_mac { "tap101i0" . 02:00:00:00:01:01 }"#));
//! # Ok(()) }
//! ```
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
