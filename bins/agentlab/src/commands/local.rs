//! `agentlab local image build`: the same command as `agentlab image build` (kept for the
//! operators who learned it first). `local.rootfs` points at the output's `rootfs/`.

use crate::commands::image::{self, BuildArgs};

/// Arguments of `agentlab local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LocalCommand {
    /// Local sandbox images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum ImageCommand {
    /// Alias of `agentlab image build`.
    Build(BuildArgs),
}

/// Runs `agentlab local …` (`json`: the result as one JSON document).
pub async fn run(args: LocalArgs, json: bool) -> anyhow::Result<()> {
    let LocalCommand::Image {
        command: ImageCommand::Build(b),
    } = args.command;
    image::build(b, json).await
}
