//! `agentlab net …` (being written).

/// Arguments of `agentlab net`.
#[derive(Debug, clap::Args)]
pub struct NetArgs {}

/// Runs `agentlab net`.
pub async fn run(_args: NetArgs) -> anyhow::Result<()> {
    anyhow::bail!("agentlab net is not implemented yet")
}
