//! The orchestration engine: [`Lab`] provisions and tears down sandboxes, runs jobs, enforces
//! leases and deadlines, manages workspaces and reconciles after restarts. It is embeddable:
//! the daemon is only one user of it.

mod actions;
mod activity;
mod after_report;
pub mod alloc;
mod bootstrap;
mod channel;
mod destroy;
pub mod error;
mod firewall_watch;
mod follow;
mod half_made;
mod job_events;
mod jobs;
mod lab;
mod nodes;
pub mod notify;
mod profile_set;
mod provision;
mod quotas;
mod reconcile;
mod released;
mod retention;
pub mod spec;
mod teardown;
mod tick;
mod workspaces;

pub use after_report::AfterReport;
pub use channel::{ChannelRefusal, StreamRecord, StreamVia};
pub use error::{EngineError, chain};
pub use follow::FollowItem;
pub use jobs::{BootstrapGrant, GuestReport, JobRequest};
pub use lab::{Lab, LabDeps, LabSettings};
pub use notify::Change;
pub use profile_set::diff_profiles;
pub use provision::SandboxRequest;
pub use released::Released;
pub use retention::{PruneReport, RetentionPolicy};
