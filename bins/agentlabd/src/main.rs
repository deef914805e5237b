//! `agentlabd`: The AgentLab daemon: owns state, leases, secrets and the hypervisor; serves the control API on a Unix socket and the guest API on TCP.

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
#[command(name = "agentlabd", version = VERSION, about = "The AgentLab daemon: owns state, leases, secrets and the hypervisor; serves the control API on a Unix socket and the guest API on TCP.")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
