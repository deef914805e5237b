//! `agentlab`: the AgentLab command-line client. Talks to agentlabd over its Unix socket.

mod commands;

use clap::{Parser, Subcommand};

/// Version line: crate version, git commit and build date embedded at build time.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AGENTLAB_GIT_COMMIT"),
    ", built ",
    env!("AGENTLAB_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "agentlab", version = VERSION, about = "Run AI coding agents in isolated, ephemeral sandboxes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Network isolation: plan, apply and check the nftables policy.
    Net(commands::net::NetArgs),
    /// Manage age-encrypted secret bundles.
    Secrets(commands::secrets::SecretsArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Net(a) => commands::net::run(a).await,
        Command::Secrets(a) => commands::secrets::run(a).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
