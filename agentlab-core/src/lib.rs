//! # agentlab-core
//!
//! The heart of AgentLab: the domain model and state machine, the backend traits
//! ([`Hypervisor`], [`Firewall`], [`SecretStore`], [`StateStore`], [`Clock`]), profiles and
//! daemon configuration, the orchestration engine, the wire types shared by daemon, CLI and
//! guest ([`api`]), the SQLite state store (`sqlite`), recording fakes (`fake`) and the
//! conformance kit every backend must pass (`testkit`).
//!
//! Other Rust programs embed AgentLab by building a [`engine::Lab`] from trait objects.
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
