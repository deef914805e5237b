//! `agentlab`: The AgentLab command-line client: talks to agentlabd over its Unix socket.

use clap::Parser;

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
#[command(name = "agentlab", version = VERSION, about = "The AgentLab command-line client: talks to agentlabd over its Unix socket.")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
