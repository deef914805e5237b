//! The [`Firewall`] trait: the isolation policy for the agent network.
//!
//! The real implementation (`agentlab-net`) renders one nftables table; the fake records calls.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::Vmid;

/// Egress policy for one sandbox, from the profile's `network.mode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Egress {
    /// Full Internet (private, link-local, CGNAT and multicast ranges blocked), masqueraded.
    Nat,
    /// Only these destinations (CIDRs; domains resolved when applied).
    Allowlist {
        /// Allowed networks.
        cidrs: Vec<ipnet::IpNet>,
        /// Allowed domain names.
        domains: Vec<String>,
    },
    /// No egress at all beyond the guest listener.
    Off,
}

/// One sandbox's network identity, as bound by the anti-spoofing rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxNet {
    /// VM id.
    pub vmid: Vmid,
    /// Host-side interface (tap/veth) its traffic enters through.
    pub iface: String,
    /// Its MAC address.
    pub mac: String,
    /// Its address.
    pub ip: IpAddr,
    /// Egress policy.
    pub egress: Egress,
}

/// What the firewall currently enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallState {
    /// Whether the base policy is in place.
    pub base_applied: bool,
    /// Sandboxes currently allowed.
    pub sandboxes: Vec<SandboxNet>,
}

/// Errors of a [`Firewall`].
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The ruleset was refused (message from the tool, never secrets).
    #[error("Ruleset rejected: {0}")]
    Rejected(String),
    /// The firewall tooling is missing or not permitted.
    #[error("Firewall unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Bad input (e.g. invalid MAC).
    #[error("Invalid firewall input: {0}")]
    Invalid(String),
    /// Any other failure.
    #[error("Firewall error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The network isolation policy the engine drives.
#[async_trait]
pub trait Firewall: Send + Sync + fmt::Debug {
    /// Installs or refreshes the base policy (idempotent).
    async fn ensure_base(&self) -> Result<(), FirewallError>;
    /// Lets one sandbox's traffic through, bound to its interface, MAC and IP.
    async fn allow(&self, sandbox: &SandboxNet) -> Result<(), FirewallError>;
    /// Removes one sandbox's entries; a no-op when it has none.
    async fn remove(&self, vmid: Vmid) -> Result<(), FirewallError>;
    /// What is enforced now.
    async fn describe(&self) -> Result<FirewallState, FirewallError>;
    /// Resets the base policy with `sandboxes` allowed (besides those this firewall allowed
    /// already). Implementations that can apply it atomically (nftables) do, so no sandbox is
    /// ever unregistered in between; the default is `ensure_base` followed by `allow` for each.
    async fn restore(&self, sandboxes: &[SandboxNet]) -> Result<(), FirewallError> {
        self.ensure_base().await?;
        for sbx in sandboxes {
            self.allow(sbx).await?;
        }
        Ok(())
    }
    /// Checks that the live policy is still what this firewall installed and, if something
    /// else changed or deleted it, re-installs base and sandboxes at once. Returns whether it
    /// had to repair. The default (a firewall nobody else can change) never repairs.
    async fn enforce(&self) -> Result<bool, FirewallError> {
        Ok(false)
    }
}
