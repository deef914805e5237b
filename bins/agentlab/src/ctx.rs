//! Global options (`--socket` or `--endpoint`/`--token`, `--json`, `--timeout`) and the
//! [`Ctx`] every command gets.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use agentlab_client::{Client, RemoteOptions, Trust};

/// Default control socket of agentlabd.
pub const DEFAULT_SOCKET: &str = "/run/agentlab/agentlabd.sock";

/// Options accepted by every subcommand.
#[derive(Clone, clap::Args)]
pub struct GlobalArgs {
    /// agentlabd's control socket.
    #[arg(long, global = true, env = "AGENTLAB_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// A remote agentlabd instead of the socket: `https://HOST[:PORT]` (port 8845 by default).
    /// Its certificate is pinned on first use unless --fingerprint or --ca-cert is given.
    #[arg(long, global = true, env = "AGENTLAB_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// API token for --endpoint (prefer the AGENTLAB_TOKEN variable: arguments are visible to
    /// other local users in the process list).
    #[arg(long, global = true, env = "AGENTLAB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Trust only this SHA-256 certificate fingerprint for --endpoint (as agentlabd logs it).
    #[arg(
        long,
        global = true,
        env = "AGENTLAB_FINGERPRINT",
        value_name = "SHA256"
    )]
    pub fingerprint: Option<String>,
    /// Trust the CA certificates in this PEM file for --endpoint.
    #[arg(long, global = true, env = "AGENTLAB_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Print the API objects as JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Request timeout in seconds, default 30 (does not limit following logs or waiting for a
    /// job). Given to `sandbox exec` without `--time-limit`, it also limits the command.
    #[arg(long, global = true, value_name = "SECS")]
    pub timeout: Option<u64>,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalArgs")
            .field("socket", &self.socket)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("json", &self.json)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The request timeout when `--timeout` is not given.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

impl GlobalArgs {
    /// The context commands run with; fails on unusable remote options.
    pub fn ctx(&self) -> anyhow::Result<Ctx> {
        let timeout = Duration::from_secs(self.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1));
        let endpoint = self.endpoint.as_deref().filter(|e| !e.trim().is_empty());
        let client = match endpoint {
            None => {
                if self.fingerprint.is_some() || self.ca_cert.is_some() {
                    anyhow::bail!("--fingerprint and --ca-cert go with --endpoint");
                }
                Client::new(&self.socket, timeout)
            }
            Some(url) => {
                let trust = match (&self.fingerprint, &self.ca_cert) {
                    (Some(_), Some(_)) => {
                        anyhow::bail!("give --fingerprint or --ca-cert, not both")
                    }
                    (Some(fp), None) => Trust::Fingerprint(fp.clone()),
                    (None, Some(ca)) => Trust::CaFile(ca.clone()),
                    (None, None) => Trust::first_use_default(),
                };
                let opts = RemoteOptions {
                    url: url.to_owned(),
                    token: self.token.clone(),
                    trust,
                };
                Client::remote(&opts, timeout).context("--endpoint")?
            }
        };
        Ok(Ctx {
            client,
            json: self.json,
            timeout: self.timeout,
            token: endpoint.and(self.token.clone()),
        })
    }
}

/// What a command needs: the daemon client and the output mode.
#[derive(Clone)]
pub struct Ctx {
    /// Client for the daemon.
    pub client: Client,
    /// `--json` was given.
    pub json: bool,
    /// `--timeout` as given (`None`: the default applies).
    pub timeout: Option<u64>,
    /// The API token, with --endpoint (handed to child processes through the environment).
    pub token: Option<String>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("client", &self.client)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The global arguments that reach the same daemon from a child `agentlab` process.
    pub fn conn_args(&self) -> Vec<String> {
        match self.client.socket() {
            Some(s) => vec!["--socket".into(), s.display().to_string()],
            None => vec!["--endpoint".into(), self.client.target()],
        }
    }
}
