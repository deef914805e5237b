//! Guest API wire types: the bodies exchanged between `agent-runner` (inside a sandbox) and
//! agentlabd's guest listener (TCP, separate from the control socket).
//!
//! Protocol (a compatibility boundary: change only additively):
//!
//! 1. `POST {controller_url}/v1/bootstrap/fetch` with [`BootstrapFetchRequest`] → 200
//!    [`BootstrapPayload`]. Errors use the [`ErrorBody`] envelope: 403 `forbidden` (the same
//!    body for unknown, expired, consumed and wrong-vmid tokens), 409 `no_job`, 429
//!    `rate_limited` with a `Retry-After` header (seconds).
//! 2. With `Authorization: Bearer <runner_token>`:
//!    - `POST {status_url}` with [`StatusReport`] → 200 `{}`;
//!    - `POST {logs_url}` with [`LogBatch`] → 200 `{}`;
//!    - `PUT {artifacts_url}/{name}` with the raw (streamed) bytes → 200 [`ArtifactReceipt`].
//!
//!    Errors: 401 `unauthorized`, 409 `job_ended` (the job has ended: its runner token is
//!    revoked; nothing more is accepted), 413 `too_large`. Uploading the same name with the
//!    same content again is accepted (idempotent), so the runner may retry an upload.
//! 3. A runner that gives up its fetch (for a reason other than a 403) says so with
//!    `POST {controller_url}/v1/bootstrap/abandon` and [`BootstrapAbandonRequest`] → 200 `{}`;
//!    the token is used up and the job fails at once with that reason.
//!
//! The runner uploads its artifacts before sending the final status report, so the daemon may
//! destroy the sandbox as soon as a final report arrives.
//!
//! Request bodies refuse unknown fields; response bodies accept them (so the daemon can add
//! fields without breaking older runners).

use serde::{Deserialize, Serialize};

pub use super::control::{ErrorBody, ErrorInfo};
use crate::ids::{JobId, Vmid};
use crate::secrets::{SecretBundle, SecretValue};

/// Version of this guest protocol. Images record the version their runner speaks
/// (`manifest.json`, template marker) so `agentlab doctor` can compare it with the daemon's.
pub const GUEST_PROTOCOL_VERSION: u32 = 1;

/// Path of the bootstrap fetch route, relative to the controller URL.
pub const BOOTSTRAP_FETCH_PATH: &str = "/v1/bootstrap/fetch";

/// Path of the give-up route, relative to the controller URL.
pub const BOOTSTRAP_ABANDON_PATH: &str = "/v1/bootstrap/abandon";

/// Error code: the job has ended and its runner token is revoked (409).
pub const CODE_JOB_ENDED: &str = "job_ended";

/// Error code: the token is unknown, expired, consumed or bound to another vmid (403), or
/// the caller may not act on this resource.
pub const CODE_FORBIDDEN: &str = "forbidden";
/// Error code: the sandbox has no job (409).
pub const CODE_NO_JOB: &str = "no_job";
/// Error code: too many fetches from this source (429, with `Retry-After`).
pub const CODE_RATE_LIMITED: &str = "rate_limited";
/// Error code: missing or wrong runner token (401).
pub const CODE_UNAUTHORIZED: &str = "unauthorized";
/// Error code: body or artifact exceeds its limit (413).
pub const CODE_TOO_LARGE: &str = "too_large";

/// `POST /v1/bootstrap/fetch` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapFetchRequest {
    /// The single-use bootstrap token.
    pub token: SecretValue,
    /// The vmid the guest believes it is (must match the token's).
    pub vmid: Vmid,
}

/// `POST /v1/bootstrap/abandon` body: the runner gives up fetching its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapAbandonRequest {
    /// The (unused) bootstrap token.
    pub token: SecretValue,
    /// The vmid from the bootstrap file.
    pub vmid: Vmid,
    /// Why the runner gives up (one line; the daemon keeps at most 500 characters).
    pub reason: String,
}

/// Everything the runner needs for one job (the bootstrap fetch's 200 response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapPayload {
    /// The job to run.
    pub job: GuestJobSpec,
    /// The secret bundle named by the job's profile (only that one).
    pub secrets: SecretBundle,
    /// Per-job bearer token for the runner routes.
    pub runner_token: SecretValue,
    /// Absolute URL for [`StatusReport`]s.
    pub status_url: String,
    /// Absolute URL for [`LogBatch`]es.
    pub logs_url: String,
    /// Absolute base URL for artifacts; upload with `PUT {artifacts_url}/{name}`.
    pub artifacts_url: String,
    /// Guest-side policy.
    #[serde(default)]
    pub policy: GuestPolicy,
    /// Artifact upload policy.
    #[serde(default)]
    pub artifacts: GuestArtifactPolicy,
}

/// The job, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestJobSpec {
    /// Job id.
    pub job_id: JobId,
    /// Repository URL to clone (`https://`, `ssh://`, scp-like or `file://`).
    pub repo: String,
    /// Branch, tag or commit to check out; the remote's default branch when `None`.
    #[serde(default)]
    pub git_ref: Option<String>,
    /// The task text handed to the agent.
    pub task: String,
    /// Which agent to run.
    pub agent: GuestAgent,
    /// `yolo` (no permission prompts) or `interactive`.
    pub mode: String,
    /// Job timeout in seconds (the runner enforces it: TERM, then KILL, exit 124 → TIMEOUT).
    pub timeout_secs: u64,
    /// Where to clone the repository in the guest.
    pub clone_path: String,
    /// Branch the agent works on: `agentlab/<job_id>`.
    pub work_branch: String,
    /// What to push back to git after the agent (absent: nothing). A runner older than this
    /// field ignores it and pushes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::model::JobResultSpec>,
}

/// The agent command: an explicit shell command, or a preset (`claude`, `codex`, `opencode`).
/// `command` wins when both are set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAgent {
    /// Shell command, run as `sh -c <command> agent <task>`.
    #[serde(default)]
    pub command: Option<String>,
    /// Preset name: `claude`, `codex` or `opencode`.
    #[serde(default)]
    pub preset: Option<String>,
}

/// Guest-side policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestPolicy {
    /// `none` or `bubblewrap`.
    pub inner_sandbox: String,
    /// Extra arguments appended to the `bwrap` command line.
    #[serde(default)]
    pub inner_sandbox_args: Vec<String>,
}

impl Default for GuestPolicy {
    fn default() -> Self {
        Self {
            inner_sandbox: "none".to_owned(),
            inner_sandbox_args: Vec::new(),
        }
    }
}

/// Artifact upload policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestArtifactPolicy {
    /// Whether to upload artifacts at all.
    pub upload: bool,
    /// Upper bound for the uploaded `artifacts.tar.gz`, in bytes.
    pub max_bytes: u64,
}

impl Default for GuestArtifactPolicy {
    fn default() -> Self {
        Self {
            upload: true,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Job state as reported by the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GuestJobState {
    /// In progress (`step` names what it is doing).
    Running,
    /// The agent exited 0.
    Completed,
    /// Bootstrap, clone or the agent failed.
    Failed,
    /// The agent ran past the job timeout.
    Timeout,
}

impl GuestJobState {
    /// True for `COMPLETED`, `FAILED` and `TIMEOUT`.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Running)
    }
}

/// `POST {status_url}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// State.
    pub state: GuestJobState,
    /// Current step while `RUNNING` (`bootstrap`, `clone`, `agent`, `push`, `open_pr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Agent exit code (124 on timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Wall time of the job in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `git rev-parse HEAD` of the work branch after the agent ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Short human summary (diff stat against the starting commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Step that failed (`bootstrap`, `clone`, `agent`, `push`, `open_pr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Redacted error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the runner pushed back to git (final reports of jobs with a `result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<crate::model::JobPushed>,
}

impl StatusReport {
    /// A `RUNNING` report for `step`, all other fields empty.
    pub fn running(step: &str) -> Self {
        Self {
            step: Some(step.to_owned()),
            ..Self::new(GuestJobState::Running)
        }
    }

    /// A report in `state` with every other field empty.
    pub fn new(state: GuestJobState) -> Self {
        Self {
            state,
            step: None,
            exit_code: None,
            duration_ms: None,
            commit: None,
            summary: None,
            failed_step: None,
            error: None,
            pushed: None,
        }
    }
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Agent stdout.
    Stdout,
    /// Agent stderr.
    Stderr,
    /// The runner's own messages.
    Runner,
}

/// One (already redacted) log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    /// Source stream.
    pub stream: LogStream,
    /// The line, without its trailing newline.
    pub line: String,
}

/// `POST {logs_url}` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    /// Lines in order.
    pub lines: Vec<LogLine>,
}

/// `PUT {artifacts_url}/{name}` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactReceipt {
    /// Artifact name.
    pub name: String,
    /// Bytes received.
    pub size: u64,
    /// Hex sha256 of the bytes received.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields() {
        let ok: BootstrapFetchRequest =
            serde_json::from_str(r#"{"token":"t","vmid":9001}"#).unwrap();
        assert_eq!(ok.vmid.get(), 9001);
        assert!(
            serde_json::from_str::<BootstrapFetchRequest>(r#"{"token":"t","vmid":9001,"x":1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<StatusReport>(r#"{"state":"RUNNING","y":1}"#).is_err());
    }

    #[test]
    fn status_report_wire_shape() {
        let r = StatusReport::running("clone");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"state":"RUNNING","step":"clone"}"#
        );
        let t: StatusReport =
            serde_json::from_str(r#"{"state":"TIMEOUT","exit_code":124}"#).unwrap();
        assert_eq!(t.state, GuestJobState::Timeout);
        assert!(t.state.is_final());
        let l: LogBatch =
            serde_json::from_str(r#"{"lines":[{"stream":"runner","line":"x"}]}"#).unwrap();
        assert_eq!(l.lines[0].stream, LogStream::Runner);
    }

    #[test]
    fn payload_debug_redacts_and_defaults_apply() {
        let json = r#"{"job":{"job_id":"job-1","repo":"file:///r","task":"t",
            "agent":{"command":"true"},"mode":"yolo","timeout_secs":5,
            "clone_path":"/w","work_branch":"agentlab/job-1"},
            "secrets":{"env":{"K":"sekrit"}},"runner_token":"rt-sekrit",
            "status_url":"s","logs_url":"l","artifacts_url":"a"}"#;
        let p: BootstrapPayload = serde_json::from_str(json).unwrap();
        assert_eq!(p.policy.inner_sandbox, "none");
        assert!(p.artifacts.upload);
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("sekrit"));
    }
}
