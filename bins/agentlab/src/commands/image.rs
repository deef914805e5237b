//! `agentlab image build`: builds a guest image (rootfs/, disk.qcow2, kernel, initrd,
//! manifest.json) from an image spec with mmdebstrap. Runs on the host, as root; does not
//! talk to the daemon. `agentlab local image build` is the same command.

use std::path::PathBuf;

use anyhow::Context;

use agentlab_image::npm::NpmOptions;
use agentlab_image::{BuildOptions, ImageSpec};

/// Arguments of `agentlab image`.
#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ImageCommand {
    /// Build a guest image from an image spec (docs/images.md).
    Build(BuildArgs),
}

/// Arguments of `agentlab image build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Image spec (YAML).
    #[arg(long, default_value = "images/default.yaml")]
    spec: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "/var/lib/agentlab/images/default")]
    out: PathBuf,
    /// The agent-runner binary to install (default: next to this agentlab binary).
    #[arg(long)]
    runner: Option<PathBuf>,
    /// npm cache directory (kept between builds so rebuilds work while the registry is down).
    #[arg(long, default_value = "/var/cache/agentlab/npm")]
    npm_cache: PathBuf,
    /// Install npm packages from the cache only (no network).
    #[arg(long)]
    npm_offline: bool,
    /// npm registry URL (npm's own setting when absent).
    #[arg(long)]
    npm_registry: Option<String>,
    /// Only rootfs/ and manifest.json (enough for `local.rootfs`; no disk, kernel or initrd).
    #[arg(long)]
    rootfs_only: bool,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
}

/// Runs `agentlab image …`.
pub async fn run(args: ImageArgs, json: bool) -> anyhow::Result<()> {
    let ImageCommand::Build(b) = args.command;
    build(b, json).await
}

/// Runs `agentlab image build` (also `agentlab local image build`).
/// Builds the image; progress goes to stderr, the result to stdout (one JSON document with
/// `json`).
pub async fn build(b: BuildArgs, json: bool) -> anyhow::Result<()> {
    let spec = ImageSpec::load(&b.spec)?;
    let runner = match b.runner {
        Some(r) => r,
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("agent-runner"),
    };
    anyhow::ensure!(
        runner.is_file(),
        "agent-runner not found at {} (build it with `cargo build --release -p agent-runner` and pass --runner)",
        runner.display()
    );
    let opts = BuildOptions {
        spec,
        out: b.out.clone(),
        runner,
        npm: NpmOptions {
            cache: b.npm_cache,
            registry: b.npm_registry,
            offline: b.npm_offline,
            ..NpmOptions::default()
        },
        force: b.force,
        rootfs_only: b.rootfs_only,
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    eprintln!("building {} from {}", b.out.display(), b.spec.display());
    let manifest = tokio::task::spawn_blocking(move || {
        agentlab_image::build(&opts, &mut |p| eprintln!("{p}"))
    })
    .await??;
    let sha = agentlab_image::manifest_sha256(&b.out)?;
    if json {
        return crate::output::print_json(&serde_json::json!({
            "out": b.out,
            "manifest_sha256": sha,
            "packages": manifest.packages.len(),
            "rootfs": b.out.join("rootfs"),
            "rootfs_only": b.rootfs_only,
        }));
    }
    println!("image ready: {}", b.out.display());
    println!("manifest:    {sha} ({} packages)", manifest.packages.len());
    println!(
        "local backend:\n  local:\n    rootfs: {}",
        b.out.join("rootfs").display()
    );
    if !b.rootfs_only {
        println!(
            "Proxmox:     agentlab template install --image {}",
            b.out.display()
        );
    }
    Ok(())
}
