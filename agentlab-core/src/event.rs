//! Events: the append-only record of everything that happened to sandboxes and jobs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, Vmid};
use crate::time::Timestamp;

/// What an event records. Stored and sent as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A sandbox was requested.
    SandboxRequested,
    /// A provisioning step finished (payload: step, call, duration_ms).
    ProvisionStep,
    /// A provisioning step failed (payload: step, call, error).
    ProvisionFailed,
    /// The sandbox changed state (payload: from, to).
    StateChanged,
    /// The lease was renewed (payload: expires_at).
    LeaseRenewed,
    /// The lease expired.
    LeaseExpired,
    /// The sandbox was stopped, started or destroyed by request.
    SandboxAction,
    /// Teardown of what AgentLab created (payload: what, result).
    Teardown,
    /// One attempt to finish a destroy (payload: attempt, ok, error, retry_in_secs).
    DestroyAttempt,
    /// A job was created.
    JobQueued,
    /// The guest reported progress (payload: step).
    JobStep,
    /// One or more lines of agent output (message holds the lines).
    JobLog,
    /// The job ended (payload: state, exit_code, …).
    JobFinished,
    /// The job deadline passed.
    JobTimeout,
    /// An artifact was stored (payload: name, size, sha256).
    ArtifactStored,
    /// A workspace was created, attached, detached, moved or deleted.
    Workspace,
    /// Startup reconciliation changed something.
    Reconciled,
    /// Something degraded but not fatal.
    Warning,
    /// AgentLab's network policy was changed outside the daemon and re-applied.
    FirewallRepaired,
    /// A bootstrap fetch was refused (payload: reason `used`/`expired`/`unknown`/`wrong_address`,
    /// peer).
    BootstrapRefused,
    /// The runner gave up its bootstrap fetch and said so (payload: reason).
    BootstrapAbandoned,
    /// The sandbox's hypervisor node went offline; the sandbox is LOST (payload: node).
    SandboxLost,
    /// The sandbox's guest agent opened its channel (payload: peer).
    ChannelConnected,
    /// The sandbox's guest agent's channel ended (payload: reason).
    ChannelDisconnected,
    /// A channel upgrade was refused (payload: reason `unknown`/`gone`/`wrong_key`/
    /// `wrong_address`, peer).
    ChannelRefused,
    /// An exec, shell, copy or forward began (payload: id, kind, user, program or path or
    /// port, client; never the data).
    StreamOpened,
    /// It ended (payload: id, kind, exit_code, error, duration_ms, bytes_in, bytes_out).
    StreamClosed,
    /// An API token of the remote API was created or revoked (payload: action, id, name,
    /// scopes, profiles, expires_at; never the token).
    ApiToken,
    /// A request was refused by a quota (payload: limit, value, used, requested, profile).
    QuotaExceeded,
    /// A filesystem the daemon writes to crossed the usage threshold, or fell back below it
    /// (payload: path, used_percent, threshold_percent, above).
    DiskUsage,
    /// A retention pass deleted old events and finished jobs (payload: events, jobs,
    /// job_events, events_before, jobs_before).
    RetentionPruned,
}

impl EventKind {
    /// The snake_case name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        use EventKind::*;
        match self {
            SandboxRequested => "sandbox_requested",
            ProvisionStep => "provision_step",
            ProvisionFailed => "provision_failed",
            StateChanged => "state_changed",
            LeaseRenewed => "lease_renewed",
            LeaseExpired => "lease_expired",
            SandboxAction => "sandbox_action",
            Teardown => "teardown",
            DestroyAttempt => "destroy_attempt",
            JobQueued => "job_queued",
            JobStep => "job_step",
            JobLog => "job_log",
            JobFinished => "job_finished",
            JobTimeout => "job_timeout",
            ArtifactStored => "artifact_stored",
            Workspace => "workspace",
            Reconciled => "reconciled",
            Warning => "warning",
            FirewallRepaired => "firewall_repaired",
            BootstrapRefused => "bootstrap_refused",
            BootstrapAbandoned => "bootstrap_abandoned",
            SandboxLost => "sandbox_lost",
            ChannelConnected => "channel_connected",
            ChannelDisconnected => "channel_disconnected",
            ChannelRefused => "channel_refused",
            StreamOpened => "stream_opened",
            StreamClosed => "stream_closed",
            ApiToken => "api_token",
            QuotaExceeded => "quota_exceeded",
            DiskUsage => "disk_usage",
            RetentionPruned => "retention_pruned",
        }
    }

    /// Parses a name produced by [`EventKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic id assigned by the store; later events have larger ids.
    pub id: i64,
    /// When it happened.
    pub ts: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// Sandbox it concerns.
    pub sandbox: Option<Vmid>,
    /// Job it concerns.
    pub job: Option<JobId>,
    /// Human-readable line.
    pub message: String,
    /// Structured details.
    pub payload: serde_json::Value,
}

/// An event to append; the store assigns the id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When it happened.
    pub ts: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// Sandbox it concerns.
    pub sandbox: Option<Vmid>,
    /// Job it concerns.
    pub job: Option<JobId>,
    /// Human-readable line.
    pub message: String,
    /// Structured details (`null` when none).
    pub payload: serde_json::Value,
}

impl NewEvent {
    /// An event with no subject and a `null` payload.
    pub fn new(ts: Timestamp, kind: EventKind, message: impl Into<String>) -> Self {
        Self {
            ts,
            kind,
            sandbox: None,
            job: None,
            message: message.into(),
            payload: serde_json::Value::Null,
        }
    }

    /// Sets the sandbox.
    pub fn sandbox(mut self, vmid: Vmid) -> Self {
        self.sandbox = Some(vmid);
        self
    }

    /// Sets the sandbox when known.
    pub fn sandbox_opt(mut self, vmid: Option<Vmid>) -> Self {
        self.sandbox = vmid;
        self
    }

    /// Sets the job.
    pub fn job(mut self, job: Option<JobId>) -> Self {
        self.job = job;
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }
}

/// Which events to read. Results are always in ascending id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events of this sandbox.
    pub sandbox: Option<Vmid>,
    /// Only events of this job.
    pub job: Option<JobId>,
    /// Only events with an id greater than this.
    pub after: Option<i64>,
    /// Only the last N matching events.
    pub tail: Option<u32>,
    /// At most this many events (from the start of the match, after `after`).
    pub limit: Option<u32>,
    /// Only these kinds (all when empty).
    pub kinds: Vec<EventKind>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in [
            EventKind::ProvisionFailed,
            EventKind::JobLog,
            EventKind::Warning,
        ] {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(EventKind::parse("bogus"), None);
    }
}
