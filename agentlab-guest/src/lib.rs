//! # agentlab-guest
//!
//! The guest side of AgentLab: the logic of `agent-runner` (bootstrap fetch, clone, agent run, log redaction, artifacts).
//!
//! This crate is being filled in; see the README's crate map for status.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
