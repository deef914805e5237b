//! # agentlab-core
//!
//! The heart of AgentLab: the domain model and state machine, the backend traits
//! ([`Hypervisor`], [`Firewall`], [`SecretStore`], [`StateStore`], [`Clock`]), profiles and
//! daemon configuration, the orchestration engine, the wire types shared by daemon, CLI and
//! guest ([`api`]), the SQLite state store (`sqlite`), recording fakes (`fake`) and the
//! conformance kit every backend must pass (`testkit`).
//!
//! Other Rust programs embed AgentLab by building an [`engine::Lab`] from trait objects — the
//! real backends (`agentlab-pve`, `agentlab-local`, `agentlab-qemu`, `agentlab-net`,
//! `agentlab-secrets`, the SQLite store) or your own. To run jobs end to end without writing
//! that wiring (guest listener, artifact store, background work), use `agentlab-host`'s `Host`;
//! `docs/embedding.md` walks from `cargo add` to a finished job.
//!
//! The engine on the recording fakes (feature `fake`), as a test of your own code would use it:
//!
//! ```
//! # #[cfg(feature = "fake")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use agentlab_core::engine::{Lab, LabDeps, LabSettings, SandboxRequest};
//! use agentlab_core::fake::{
//!     FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
//! };
//! use agentlab_core::profile::Profiles;
//! use agentlab_core::{EventQuery, SandboxState};
//!
//! let deps = LabDeps {
//!     hypervisor: Arc::new(FakeHypervisor::new()),
//!     firewall: Arc::new(FakeFirewall::new()),
//!     secrets: Arc::new(MemorySecretStore::new()),
//!     store: Arc::new(MemoryStore::new()),
//!     clock: Arc::new(ManualClock::at_epoch()),
//! };
//! let profiles = Profiles::from_yaml_str(
//!     "name: small\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
//!      agent:\n  command: \"true\"\n",
//!     "small.yaml",
//! )?;
//! let lab = Lab::new(deps, LabSettings::default(), profiles);
//! lab.reconcile().await?;
//!
//! let sb = lab
//!     .create_sandbox(SandboxRequest {
//!         profile: "small".into(),
//!         ..SandboxRequest::default()
//!     })
//!     .await?;
//! let gone = lab.destroy_sandbox(sb.vmid).await?;
//! assert_eq!(gone.state, SandboxState::Destroyed);
//! // Every step was recorded as an event.
//! let events = lab
//!     .events(&EventQuery {
//!         sandbox: Some(sb.vmid),
//!         ..EventQuery::default()
//!     })
//!     .await?;
//! assert!(events.len() >= 2);
//! lab.shutdown().await;
//! # Ok(()) }
//! # #[cfg(not(feature = "fake"))]
//! # fn main() {}
//! ```
//!
//! Cargo features: `sqlite` (default: `sqlite::SqliteStore`, rusqlite with a bundled SQLite;
//! leave it out with `default-features = false` when you bring your own [`StateStore`]),
//! `fake` (the `fake` and `testkit` modules), `failpoints` (crash-test fail points, see
//! [`failpoint`]) and `tls` (`tls_pin`, certificate pinning on rustls). See
//! `docs/publishing.md`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod api_token;
pub mod backup;
pub mod channel_key;
pub mod config;
pub mod engine;
pub mod event;
pub mod failpoint;
#[cfg(feature = "fake")]
pub mod fake;
pub mod firewall;
pub mod guest_exec;
pub mod hypervisor;
pub mod ids;
pub mod model;
pub mod profile;
pub mod quota;
pub mod redact;
pub mod secrets;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod ssh_key;
pub mod state;
pub mod store;
pub mod store_page;
#[cfg(feature = "fake")]
pub mod testkit;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls_pin;
pub mod token;
pub mod yaml;

pub use event::{Event, EventKind, EventQuery, NewEvent};
pub use firewall::{Egress, Firewall, FirewallError, FirewallState, SandboxNet};
pub use hypervisor::{
    BootstrapData, Hypervisor, HypervisorError, ManagedVm, NetAttachment, PowerState, ProcessUsage,
    Resources, VmHandle, VmSpec, VmUsage, VolumeId,
};
pub use ids::{IdError, JobId, Vmid, WorkspaceId};
pub use model::{Artifact, BootstrapToken, Job, JobOutcome, Lease, Sandbox, Workspace};
pub use secrets::{
    GitCredentials, SecretBundle, SecretFile, SecretStore, SecretStoreError, SecretValue,
};
pub use state::{JobState, SandboxState};
pub use store::{
    JobCursor, JobFilter, JobPage, PrunedJobs, RunnerTokenIssue, SandboxFilter, StateCounts,
    StateStore, StateStoreError, TokenCheck, TokenStatus,
};
pub use time::{Clock, SystemClock, Timestamp};
