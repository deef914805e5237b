//! # agentlab-net
//!
//! Network isolation for AgentLab sandboxes: one nftables table (`inet agentlab`) implementing the `Firewall` trait.
//!
//! This crate is being filled in; see the README's crate map for status.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
