//! `agent-runner`: runs inside each sandbox: fetches its bootstrap payload, clones the repo,
//! runs the agent, streams logs and uploads artifacts. The logic lives in `agentlab-guest`.
//!
//! Exit codes: 0 when the job ran and was reported (whatever the agent did) or the sandbox has
//! no job; 1 for conditions worth a restart (controller unreachable, no bootstrap file yet);
//! 2 for everything else (bad bootstrap file, refused token, non-tmpfs secrets dir, stopped
//! before a job) — use `RestartPreventExitStatus=2` in the systemd unit. SIGTERM/SIGINT stop
//! the current step; a job in progress is still bundled and reported (`FAILED`).
//!
//! The runner is also the sandbox's long-lived guest agent: it starts its own `channel`
//! subcommand as a child (before dropping privileges) and, when the bootstrap data carried a
//! channel key, keeps it running after the job until SIGTERM/SIGINT (see `channel.rs` and
//! `docs/guest-runner.md`).

mod channel;
mod drop_exec;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentlab_guest::{GuestError, RunOutcome, RunnerConfig};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Version line: crate version, git commit and build date embedded at build time.
const VERSION: &str = env!("AGENTLAB_VERSION_LINE");

#[derive(Debug, Parser)]
#[command(name = "agent-runner", version = VERSION, about = "Runs inside each sandbox: fetches its bootstrap payload, clones the repo, runs the agent, streams logs and uploads artifacts.")]
struct Cli {
    /// Bootstrap file (default: /run/agentlab/bootstrap.json, then /etc/agentlab/bootstrap.json).
    #[arg(long, value_name = "PATH")]
    bootstrap: Option<PathBuf>,
    /// Seconds to wait for the bootstrap file to appear.
    #[arg(long, default_value_t = 300)]
    bootstrap_wait_secs: u64,
    /// Secrets directory (must be a tmpfs).
    #[arg(long, default_value = agentlab_guest::config::DEFAULT_SECRETS_DIR)]
    secrets_dir: PathBuf,
    /// Accept a secrets directory that is not a tmpfs (tests only).
    #[arg(long)]
    allow_non_tmpfs: bool,
    /// Work directory for the runner log, report and artifacts.
    #[arg(long, default_value = agentlab_guest::config::DEFAULT_WORK_DIR)]
    work_dir: PathBuf,
    /// Bootstrap fetch (and final report) attempts.
    #[arg(long, default_value_t = 8)]
    fetch_attempts: u32,
    /// First retry delay in milliseconds (doubles per attempt).
    #[arg(long, default_value_t = 500)]
    backoff_initial_ms: u64,
    /// Largest retry delay in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    backoff_max_ms: u64,
    /// Seconds between SIGTERM and SIGKILL when the job times out.
    #[arg(long, default_value_t = 10)]
    kill_grace_secs: u64,
    /// Timeout for cloning, in seconds.
    #[arg(long, default_value_t = 900)]
    clone_timeout_secs: u64,
    /// HOME for the agent (default: the runner's HOME, or /root).
    #[arg(long)]
    agent_home: Option<PathBuf>,
    /// The git binary.
    #[arg(long, default_value = "git")]
    git: PathBuf,
    /// The bubblewrap binary.
    #[arg(long, default_value = "bwrap")]
    bwrap: PathBuf,
    /// Run clone and agent as this user (`agent` or `uid:gid`): the runner reads the bootstrap
    /// and fills the secrets tmpfs as root, then drops to it (no groups, no_new_privs).
    #[arg(long, value_name = "USER")]
    run_as: Option<String>,
    /// Where the channel key is handed to the channel process.
    #[arg(long, value_name = "PATH", default_value = agentlab_guest::channel::DEFAULT_CHANNEL_FILE)]
    channel_file: PathBuf,
    /// Do not start the channel process.
    #[arg(long)]
    no_channel: bool,
    /// The passwd file users are looked up in.
    #[arg(long, value_name = "PATH", default_value = "/etc/passwd")]
    passwd: PathBuf,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Serve the sandbox channel (started by the runner itself).
    Channel {
        /// The channel file to wait for.
        #[arg(long, value_name = "PATH", default_value = agentlab_guest::channel::DEFAULT_CHANNEL_FILE)]
        channel_file: PathBuf,
        /// The passwd file the `agent` user is looked up in.
        #[arg(long, value_name = "PATH", default_value = "/etc/passwd")]
        passwd: PathBuf,
    },
    /// Become a user and execute a command in place (terminal execs as another user).
    DropExec {
        /// User id.
        #[arg(long)]
        uid: u32,
        /// Group id.
        #[arg(long)]
        gid: u32,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

impl Cli {
    fn config(self, run_as: Option<agentlab_guest::privdrop::RunAs>) -> RunnerConfig {
        let defaults = RunnerConfig::default();
        RunnerConfig {
            bootstrap_paths: self.bootstrap.map_or(defaults.bootstrap_paths, |p| vec![p]),
            bootstrap_wait: Duration::from_secs(self.bootstrap_wait_secs),
            secrets_dir: self.secrets_dir,
            allow_non_tmpfs: self.allow_non_tmpfs,
            work_dir: self.work_dir,
            fetch_attempts: self.fetch_attempts.max(1),
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            kill_grace: Duration::from_secs(self.kill_grace_secs),
            clone_timeout: Duration::from_secs(self.clone_timeout_secs),
            agent_home: self.agent_home,
            git_bin: self.git,
            bwrap_bin: self.bwrap,
            run_as,
            channel_file: (!self.no_channel).then_some(self.channel_file),
            ..defaults
        }
    }
}

fn error_chain(e: &GuestError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command.take() {
        Some(Sub::Channel {
            channel_file,
            passwd,
        }) => return channel::serve(&channel_file, passwd),
        Some(Sub::DropExec { uid, gid, argv }) => return drop_exec::run(uid, gid, &argv),
        None => {}
    }
    // Before the runtime starts its threads: no_new_privs is inherited from this thread.
    let run_as = match cli.run_as.as_deref().map(|u| {
        agentlab_guest::privdrop::set_no_new_privs()?;
        agentlab_guest::privdrop::RunAs::parse(u, &cli.passwd)
    }) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            eprintln!("agent-runner: error: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let passwd = cli.passwd.clone();
    let config = cli.config(run_as);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent-runner: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cancel = CancellationToken::new();
    rt.block_on(async {
        let stop = cancel.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            tracing::warn!("stop requested; stopping the current step and reporting");
            stop.cancel();
        });
        // Started before the run drops privileges, so root execs stay possible.
        let supervisor = config
            .channel_file
            .clone()
            .map(|f| channel::Supervisor::start(f, passwd));
        let outcome = agentlab_guest::run_until_stopped(&config, &cancel).await;
        let (code, retry) = exit_code(&outcome);
        if let Some(mut s) = supervisor {
            if retry {
                s.stop().await;
            } else {
                s.finish(&cancel).await;
            }
        }
        code
    })
}

/// The exit code of a run (and whether it asks for a restart).
fn exit_code(outcome: &Result<RunOutcome, GuestError>) -> (ExitCode, bool) {
    match outcome {
        Ok(RunOutcome::Reported(state)) => {
            tracing::info!(?state, "job reported");
            (ExitCode::SUCCESS, false)
        }
        Ok(RunOutcome::NoJob) => (ExitCode::SUCCESS, false),
        Err(e) => {
            eprintln!("agent-runner: error: {}", error_chain(e));
            let retry = e.is_retryable();
            (ExitCode::from(if retry { 1 } else { 2 }), retry)
        }
    }
}
