//! # agentlab-pve
//!
//! Proxmox VE backend for AgentLab: `ProxmoxHypervisor` over the PVE REST API, and a PVE API simulator validated against the official schema.
//!
//! This crate is being filled in; see the README's crate map for status.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
