//! Global options (`--socket`, `--json`, `--timeout`) and the [`Ctx`] every command gets.

use std::path::PathBuf;
use std::time::Duration;

use agentlab_client::Client;

/// Default control socket of agentlabd.
pub const DEFAULT_SOCKET: &str = "/run/agentlab/agentlabd.sock";

/// Options accepted by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// agentlabd's control socket.
    #[arg(long, global = true, env = "AGENTLAB_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the API objects as JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Request timeout in seconds, default 30 (does not limit following logs or waiting for a
    /// job). Given to `sandbox exec` without `--time-limit`, it also limits the command.
    #[arg(long, global = true, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// The request timeout when `--timeout` is not given.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

impl GlobalArgs {
    /// The context commands run with.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            client: Client::new(
                &self.socket,
                Duration::from_secs(self.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1)),
            ),
            json: self.json,
            timeout: self.timeout,
        }
    }
}

/// What a command needs: the daemon client and the output mode.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Client for the control socket.
    pub client: Client,
    /// `--json` was given.
    pub json: bool,
    /// `--timeout` as given (`None`: the default applies).
    pub timeout: Option<u64>,
}
