//! [`RunnerConfig`]: every path, binary and limit the runner uses, injectable for tests.

use std::path::PathBuf;
use std::time::Duration;

/// Default bootstrap file locations, tried in order.
pub const DEFAULT_BOOTSTRAP_PATHS: [&str; 2] = [
    "/run/agentlab/bootstrap.json",
    "/etc/agentlab/bootstrap.json",
];
/// Default secrets directory (must be a tmpfs).
pub const DEFAULT_SECRETS_DIR: &str = "/run/agentlab/secrets";
/// Default work directory (runner log, report, artifacts staging).
pub const DEFAULT_WORK_DIR: &str = "/var/lib/agentlab/runner";

/// Runner configuration.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Bootstrap file candidates, tried in order.
    pub bootstrap_paths: Vec<PathBuf>,
    /// How long to wait for a bootstrap file to appear.
    pub bootstrap_wait: Duration,
    /// Poll interval while waiting for the bootstrap file.
    pub bootstrap_poll: Duration,
    /// Secrets directory (tmpfs; 0700, files 0600; wiped at exit).
    pub secrets_dir: PathBuf,
    /// Accept a secrets directory that is not a tmpfs (tests only).
    pub allow_non_tmpfs: bool,
    /// Work directory: `runner.log`, `report.json`, `artifacts/`, `artifacts.tar.gz`.
    pub work_dir: PathBuf,
    /// Bootstrap fetch attempts before giving up (exit 1, systemd retries).
    pub fetch_attempts: u32,
    /// First retry delay; doubles per attempt up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Largest retry delay (also caps `Retry-After`).
    pub backoff_max: Duration,
    /// Grace between SIGTERM and SIGKILL when a timeout fires.
    pub kill_grace: Duration,
    /// Timeout for clone/fetch/checkout.
    pub clone_timeout: Duration,
    /// Log batch size (lines).
    pub log_batch_lines: usize,
    /// Log flush interval.
    pub log_flush_interval: Duration,
    /// `HOME` for the agent; the runner's own `HOME` (or `/root`) when `None`.
    pub agent_home: Option<PathBuf>,
    /// The `git` binary.
    pub git_bin: PathBuf,
    /// The `bwrap` binary.
    pub bwrap_bin: PathBuf,
    /// Run clone and agent as this user (see [`crate::privdrop`]); the runner's own user when
    /// `None`.
    pub run_as: Option<crate::privdrop::RunAs>,
    /// Where to hand the bootstrap's channel key to the channel process (see
    /// [`crate::channel::handoff`]); `None`: the key is not handed on.
    pub channel_file: Option<PathBuf>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            bootstrap_paths: DEFAULT_BOOTSTRAP_PATHS.iter().map(PathBuf::from).collect(),
            bootstrap_wait: Duration::from_secs(300),
            bootstrap_poll: Duration::from_millis(500),
            secrets_dir: PathBuf::from(DEFAULT_SECRETS_DIR),
            allow_non_tmpfs: false,
            work_dir: PathBuf::from(DEFAULT_WORK_DIR),
            fetch_attempts: 8,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            kill_grace: Duration::from_secs(10),
            clone_timeout: Duration::from_secs(900),
            log_batch_lines: 200,
            log_flush_interval: Duration::from_millis(200),
            agent_home: None,
            git_bin: PathBuf::from("git"),
            bwrap_bin: PathBuf::from("bwrap"),
            run_as: None,
            channel_file: None,
        }
    }
}
