//! Persistent records: [`Sandbox`], [`Job`], [`Workspace`], [`Lease`], [`Artifact`] and
//! [`BootstrapToken`]. These are what the [`crate::StateStore`] keeps and what the control API
//! returns.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, Vmid, WorkspaceId};
use crate::state::{JobState, SandboxState};
use crate::time::Timestamp;

/// How long a sandbox may live and whether it may be extended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// When the lease ends; the sandbox is shut down and destroyed then.
    pub expires_at: Timestamp,
    /// Keep the sandbox after its job ends (until the lease ends).
    pub keepalive: bool,
    /// Whether `lease renew` may extend it.
    pub renewable: bool,
    /// The lease length used for creation and renewals, in minutes.
    pub ttl_minutes: u32,
}

/// One sandbox: a VM cloned from a profile's template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// VM id, also the sandbox id.
    pub vmid: Vmid,
    /// Human-readable name (`agentlab-<vmid>` unless given).
    pub name: String,
    /// Profile it was created from.
    pub profile: String,
    /// Current lifecycle state.
    pub state: SandboxState,
    /// Hypervisor node it runs on, once known.
    pub node: Option<String>,
    /// Address assigned on the agent network.
    pub ip: Option<IpAddr>,
    /// MAC address assigned on the agent network.
    pub mac: Option<String>,
    /// Host-side interface (tap/veth) the sandbox's traffic enters through.
    pub iface: Option<String>,
    /// True once *this daemon's* clone succeeded; only then may AgentLab destroy the VM.
    pub vm_created: bool,
    /// The job this sandbox was created for.
    pub job: Option<JobId>,
    /// Attached workspace.
    pub workspace: Option<WorkspaceId>,
    /// Lease.
    pub lease: Lease,
    /// Cause of the last failure, if any (never contains secrets).
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
}

/// Outcome details a guest sends with its final report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// Exit code of the agent (124 means it was killed by the timeout).
    pub exit_code: Option<i32>,
    /// Wall time of the run in milliseconds.
    pub duration_ms: Option<u64>,
    /// Commit the work branch points at after the run.
    pub commit: Option<String>,
    /// Short summary written by the runner or agent.
    pub summary: Option<String>,
    /// Step that failed (`bootstrap`, `clone`, `agent`, …), for failures.
    pub failed_step: Option<String>,
    /// Error text for failures (redacted by the runner).
    pub error: Option<String>,
}

/// A job: one agent run against one repository in one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: JobId,
    /// Repository URL to clone.
    pub repo: String,
    /// Branch, tag or commit to check out; the default branch when `None`.
    pub git_ref: Option<String>,
    /// The task given to the agent.
    pub task: String,
    /// Profile name.
    pub profile: String,
    /// Agent command or preset overriding the profile's.
    pub agent: Option<String>,
    /// Current state.
    pub state: JobState,
    /// Sandbox running the job, once allocated.
    pub sandbox: Option<Vmid>,
    /// Keep the sandbox after the job.
    pub keepalive: bool,
    /// Lease length in minutes.
    pub ttl_minutes: u32,
    /// Workspace to attach.
    pub workspace: Option<WorkspaceId>,
    /// When the job times out.
    pub deadline: Option<Timestamp>,
    /// SHA-256 (hex) of the per-job runner token; the token itself is never stored.
    #[serde(skip_serializing)]
    #[serde(default)]
    pub runner_token_hash: Option<String>,
    /// Name of the step the guest last reported.
    pub step: Option<String>,
    /// Final outcome.
    pub outcome: Option<JobOutcome>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
    /// When the job ended.
    pub ended_at: Option<Timestamp>,
    /// What the runner pushes back to git after the agent (from the profile's `result:` and
    /// the request); `None` when nothing is pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResultSpec>,
    /// What the runner pushed, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<JobPushed>,
}

/// Results back to git: the branch a job pushes and, optionally, the pull request it opens.
/// Resolved and validated when the job is created (see `docs/results.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResultSpec {
    /// The branch pushed to `origin` (a valid git branch name, never the base branch).
    pub branch: String,
    /// Commit changes the agent left uncommitted before pushing.
    pub commit_leftovers: bool,
    /// The pull request to open after the push, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestSpec>,
}

/// A pull request on a GitHub-compatible forge (GitHub, Gitea, Forgejo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestSpec {
    /// `github`, `gitea` or `forgejo`.
    pub forge: String,
    /// Base URL of the forge's REST API (`https://api.github.com`, `https://gitea.example`).
    pub api_url: String,
    /// Repository owner (user or organisation) on the forge.
    pub owner: String,
    /// Repository name on the forge.
    pub repo: String,
    /// Pull request title.
    pub title: String,
    /// Branch to merge into; the remote's default branch when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// What a job pushed back to git.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPushed {
    /// The branch on `origin`.
    pub branch: String,
    /// The commit the branch points at (full hex object id).
    pub commit: String,
    /// URL of the pull request opened for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
}

/// A persistent workspace volume that outlives sandboxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Workspace id.
    pub id: WorkspaceId,
    /// Unique human-readable name.
    pub name: String,
    /// Size in GiB.
    pub size_gb: u32,
    /// Backend volume id, once created.
    pub volume: Option<String>,
    /// Sandbox it is attached to.
    pub attached_to: Option<Vmid>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
}

/// A file a job uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Job that produced it.
    pub job: JobId,
    /// File name (unique per job).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex, computed on receipt.
    pub sha256: String,
    /// Upload time.
    pub created_at: Timestamp,
}

/// A single-use bootstrap token record: only the hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The VM the token is bound to.
    pub vmid: Vmid,
    /// SHA-256 (hex) of the token.
    pub hash: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}
