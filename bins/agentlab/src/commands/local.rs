//! `agentlab local image build`: builds a read-only root filesystem for the `local` backend
//! (set `local.rootfs` to it). Runs on the host, as root; does not talk to the daemon.

use std::path::PathBuf;

use agentlab_local::image::{self, ImageSpec};

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
    /// Build a Debian root filesystem with mmdebstrap (or debootstrap) and prepare it for
    /// AgentLab (agent user, /home/agent, /work).
    Build {
        /// Where to put it.
        #[arg(long, default_value = "/var/lib/agentlab/rootfs")]
        out: PathBuf,
        /// Suite to install (default: the host's, from /etc/os-release).
        #[arg(long)]
        suite: Option<String>,
        /// Extra packages (repeatable), besides git, ca-certificates, openssh-client, python3,
        /// procps and bubblewrap.
        #[arg(long = "package", value_name = "PKG")]
        packages: Vec<String>,
        /// Replace an existing image.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `agentlab local …`.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let LocalCommand::Image {
        command:
            ImageCommand::Build {
                out,
                suite,
                packages,
                force,
            },
    } = args.command;
    let spec = ImageSpec {
        out,
        suite: suite.unwrap_or_else(image::host_suite),
        extra_packages: packages,
        force,
    };
    eprintln!(
        "building a {} root filesystem in {} …",
        spec.suite,
        spec.out.display()
    );
    let built = tokio::task::spawn_blocking(move || image::build(&spec)).await??;
    println!("image ready: {}", built.display());
    println!("use it with:\n  local:\n    rootfs: {}", built.display());
    Ok(())
}
