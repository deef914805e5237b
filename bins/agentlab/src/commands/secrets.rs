//! `agentlab secrets …` (being written).

/// Arguments of `agentlab secrets`.
#[derive(Debug, clap::Args)]
pub struct SecretsArgs {}

/// Runs `agentlab secrets`.
pub async fn run(_args: SecretsArgs) -> anyhow::Result<()> {
    anyhow::bail!("agentlab secrets is not implemented yet")
}
