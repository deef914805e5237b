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
//!
//! The runner's first step on its own: find the bootstrap file among the configured
//! candidates and parse it. Parse errors name the file but never echo field values, so the
//! token cannot end up in a journal:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agentlab_guest::{GuestError, RunnerConfig, bootstrap};
//!
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("bootstrap.json");
//! std::fs::write(
//!     &file,
//!     r#"{"controller_url":"http://10.77.0.1:8844/","token":"tok-123456","vmid":9001}"#,
//! )?;
//! let cfg = RunnerConfig {
//!     bootstrap_paths: vec![dir.path().join("absent.json"), file.clone()],
//!     ..RunnerConfig::default()
//! };
//! let (found, data) =
//!     bootstrap::wait_for_file(&cfg.bootstrap_paths, cfg.bootstrap_wait, cfg.bootstrap_poll)
//!         .await?;
//! assert_eq!(found, file);
//! assert_eq!(data.controller_url, "http://10.77.0.1:8844");
//! assert_eq!(data.vmid.get(), 9001);
//!
//! let err = bootstrap::parse(&file, br#"{"token":"tok-123456","vmid":9001}"#).unwrap_err();
//! assert!(matches!(err, GuestError::BootstrapFile { .. }));
//! assert!(err.to_string().contains("controller_url"));
//! assert!(!err.to_string().contains("tok-123456"));
//! # Ok(()) }
//! ```
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
