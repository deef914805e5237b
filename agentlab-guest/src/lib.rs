//! # agentlab-guest
//!
//! The guest side of AgentLab: the logic behind the `agent-runner` binary.
//!
//! [`run`] does one job from start to end: waits for the bootstrap file ([`bootstrap`]),
//! fetches the payload with the single-use token ([`client`]), installs the secrets on a tmpfs
//! ([`secrets_dir`]), clones the repository onto the work branch ([`git`]), runs the agent
//! under the job timeout ([`agent`], [`process`]) while streaming redacted logs ([`logs`]),
//! pushes the job branch back and opens a pull request when the job asks for it ([`forge`]),
//! bundles and uploads the artifacts ([`artifacts`]) and sends the final status report.
//!
//! The wire types are in [`agentlab_core::api::guest`]; the protocol is described there and in
//! `docs/guest-runner.md`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod artifacts;
pub mod bootstrap;
pub mod channel;
pub mod client;
pub mod config;
pub mod error;
pub mod forge;
pub mod git;
mod git_sanitize;
pub mod logs;
mod outcome;
pub mod privdrop;
pub mod process;
mod push;
pub mod runner;
pub mod secrets_dir;
pub mod ssh_keys;
mod steps;

pub use config::RunnerConfig;
pub use error::GuestError;
pub use runner::{RunOutcome, run, run_until_stopped};
