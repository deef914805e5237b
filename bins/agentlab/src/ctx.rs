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
    /// Request timeout in seconds (does not limit following logs or waiting for a job).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

impl GlobalArgs {
    /// The context commands run with.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            client: Client::new(&self.socket, Duration::from_secs(self.timeout.max(1))),
            json: self.json,
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
}
