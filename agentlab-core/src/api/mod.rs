//! Wire types shared by agentlabd, the `agentlab` CLI and `agent-runner`.
//!
//! `admin` holds operator answers (profile and config reload); `channel` and `frame` are the sandbox channel (exec, shell, copy, forward); `control` holds the control API (Unix socket) bodies and the error envelope; `guest` holds
//! the guest API (TCP listener) bodies; `validate` checks control bodies against the
//! daemon's `limits:`.

pub mod admin;
pub mod channel;
pub mod control;
pub mod frame;
pub mod guest;
pub mod validate;
