//! Wire types shared by agentlabd, the `agentlab` CLI and `agent-runner`.
//!
//! `control` holds the control API (Unix socket) bodies and the error envelope; `guest` holds
//! the guest API (TCP listener) bodies.

pub mod control;
pub mod guest;
