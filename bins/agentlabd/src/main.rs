//! `agentlabd`: the AgentLab daemon. Owns state, leases, secrets and the hypervisor; serves the
//! control API on a Unix socket and the guest API on TCP.

mod artifact_scan;
mod artifacts;
mod channel;
mod control;
mod guest;
mod maintenance;
mod metrics;
mod reload;
mod remote;
mod server;
mod socket;
mod wiring;
mod wiring_pve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use agentlab_core::config::{Config, LogFormat, resolve_path};

/// Version line: crate version, git commit and build date embedded at build time.
const VERSION: &str = env!("AGENTLAB_VERSION_LINE");

#[derive(Debug, Parser)]
#[command(name = "agentlabd", version = VERSION, about = "The AgentLab daemon")]
struct Cli {
    /// Config file (default /etc/agentlab/config.yaml; env AGENTLAB_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the OpenAPI document of the control API and exit.
    #[arg(long)]
    openapi: bool,
    /// Validate the config and profiles, print a summary and exit.
    #[arg(long)]
    check: bool,
    /// Log format, overriding the config's `log.format`: `auto` (JSON lines when stderr is
    /// not a terminal), `text` or `json`.
    #[arg(long, value_parser = ["auto", "text", "json"])]
    log_format: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.openapi {
        println!(
            "{}",
            serde_json::to_string_pretty(&control::openapi::document()).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let env = std::env::var_os("AGENTLAB_CONFIG");
    let path = resolve_path(cli.config.as_deref(), env.as_deref());
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("agentlabd: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    let format = match cli.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(_) => LogFormat::Auto,
        None => cfg.log.format,
    };
    init_tracing(&cfg, format);
    if cli.check {
        return match agentlab_core::profile::Profiles::load_dir(&cfg.profiles_dir) {
            Ok(p) => {
                println!(
                    "config {} ok; backend {}; profiles: {}",
                    path.display(),
                    cfg.backend,
                    p.names().join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("agentlabd: invalid profiles: {e}");
                ExitCode::from(2)
            }
        };
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentlabd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(server::run(cfg, path, VERSION)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "agentlabd failed");
            eprintln!("agentlabd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr: JSON lines for `json` (and for `auto` when stderr is not a terminal),
/// text otherwise; ANSI colours only when stderr is a terminal, so journald and files never
/// get escape sequences.
fn init_tracing(cfg: &Config, format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTLAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let tty = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(tty);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Auto if !tty => builder.json().init(),
        LogFormat::Auto | LogFormat::Text => builder.init(),
    }
}
