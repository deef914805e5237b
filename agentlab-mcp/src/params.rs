//! The tools' inputs. Their JSON schemas (the tools' `inputSchema`) are generated from these
//! types by schemars, so the doc comments below are what an MCP client shows for each field.

use schemars::JsonSchema;
use serde::Deserialize;

/// Input of `show_sandbox` and `destroy_sandbox`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmidParams {
    /// The sandbox's VMID (a number, as shown by `list_sandboxes`).
    pub vmid: u32,
}

/// Input of `list_sandboxes`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSandboxesParams {
    /// Include DESTROYED sandboxes (default false).
    #[serde(default)]
    pub all: bool,
}

/// Input of `create_sandbox`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxParams {
    /// Profile to create the sandbox from (see `list_profiles`).
    pub profile: String,
    /// Sandbox name (default `agentlab-<vmid>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Lease length in minutes (the profile's default when absent).
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
    /// Keep the sandbox until its lease ends, with a renewable lease.
    #[serde(default)]
    pub keepalive: Option<bool>,
}

/// Input of `renew_lease`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewLeaseParams {
    /// The sandbox's VMID.
    pub vmid: u32,
    /// New lease length in minutes, counted from now (the lease's own length when absent).
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
}

/// Input of `run_job`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunJobParams {
    /// Repository URL to clone.
    pub repo: String,
    /// The task for the agent.
    pub task: String,
    /// Profile to run with (see `list_profiles`).
    pub profile: String,
    /// Branch, tag or commit (the default branch when absent).
    #[serde(default)]
    pub git_ref: Option<String>,
    /// Wait until the job is COMPLETED, FAILED, TIMEOUT or CANCELLED (default false: return
    /// the QUEUED job at once). While waiting, progress notifications are sent when the
    /// request carries a progress token.
    #[serde(default)]
    pub wait: bool,
    /// With `wait`: stop waiting after this many seconds and return the job as it is then
    /// (the job itself keeps running). No limit when absent.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Input of `job_status` and `list_artifacts`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobParams {
    /// The job's id (`job-…`).
    pub job_id: String,
}

/// Input of `job_logs`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobLogsParams {
    /// The job's id (`job-…`).
    pub job_id: String,
    /// Only the last N lines of the agent's output (default 200).
    #[serde(default)]
    pub tail: Option<u32>,
}

/// Input of `read_artifact`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArtifactParams {
    /// The job's id (`job-…`).
    pub job_id: String,
    /// The artifact's name, as listed by `list_artifacts`.
    pub name: String,
    /// For a `.tar.gz` artifact: the file inside it to read (such as `runner.log`,
    /// `report.json` or `artifacts/notes.txt`). Without it, the archive's file list.
    #[serde(default)]
    pub path: Option<String>,
}

/// Who runs a command or owns and reads files inside the sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserParam {
    /// The unprivileged `agent` user (uid 1000), as jobs run (the default).
    #[default]
    Agent,
    /// The sandbox's root (refused by the `local` backend, where everything runs as uid 1000).
    Root,
}

impl From<UserParam> for agentlab_core::api::channel::ExecUser {
    fn from(u: UserParam) -> Self {
        match u {
            UserParam::Agent => Self::Agent,
            UserParam::Root => Self::Root,
        }
    }
}

/// Input of `exec`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecParams {
    /// The sandbox's VMID (it must be READY or RUNNING, with its guest agent connected).
    pub vmid: u32,
    /// Program and arguments, e.g. `["git", "-C", "/work", "status"]` (no shell: use
    /// `["sh", "-c", "…"]` for pipes and redirections).
    pub argv: Vec<String>,
    /// Run as this user (default `agent`).
    #[serde(default)]
    pub user: UserParam,
    /// Absolute working directory (default: the user's home).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Text given to the command's stdin, which is then closed (default: empty).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Stop the command (SIGTERM to its process group, SIGKILL 5 s later) after this many
    /// seconds (default 300).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Input of `read_file`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileParams {
    /// The sandbox's VMID.
    pub vmid: u32,
    /// Absolute path of the file inside the sandbox.
    pub path: String,
    /// Read as this user (default `agent`).
    #[serde(default)]
    pub user: UserParam,
}

/// Input of `write_file`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileParams {
    /// The sandbox's VMID.
    pub vmid: u32,
    /// Absolute path of the file inside the sandbox; missing parent directories are created.
    pub path: String,
    /// The file's whole content (UTF-8 text).
    pub content: String,
    /// Write as this user, who owns the file (default `agent`).
    #[serde(default)]
    pub user: UserParam,
}
