//! # agentlab-secrets
//!
//! Secret bundles for AgentLab: YAML encrypted with age to x25519 recipients, implementing the `SecretStore` trait.
//!
//! This crate is being filled in; see the README's crate map for status.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
