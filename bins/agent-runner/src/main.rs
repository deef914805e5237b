//! `agent-runner`: Runs inside each sandbox: fetches its bootstrap payload, clones the repo, runs the agent, streams logs and uploads artifacts.

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
#[command(name = "agent-runner", version = VERSION, about = "Runs inside each sandbox: fetches its bootstrap payload, clones the repo, runs the agent, streams logs and uploads artifacts.")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
