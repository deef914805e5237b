//! `agentlab template install`: puts an image built by `agentlab image build` on Proxmox as
//! a template, through the API only (upload, create with import-from, convert). Reads the
//! `pve:` section of the daemon config.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use agentlab_core::config::{BackendKind, Config, resolve_path};
use agentlab_image::Manifest;
use agentlab_pve::PveOptions;
use agentlab_pve::template::{InstallStep, TemplateSpec, install};

use crate::output::{Table, print_json};

/// Arguments of `agentlab template`.
#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    #[command(subcommand)]
    command: TemplateCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TemplateCommand {
    /// Install an image as a Proxmox template (idempotent).
    Install(InstallArgs),
}

#[derive(Debug, clap::Args)]
struct InstallArgs {
    /// Image directory (with disk.qcow2 and manifest.json).
    #[arg(long, default_value = "/var/lib/agentlab/images/default")]
    image: PathBuf,
    /// Daemon config (default /etc/agentlab/config.yaml; env AGENTLAB_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Template VM name.
    #[arg(long, default_value = "agentlab-default")]
    name: String,
    /// Preferred vmid of the template (first node); the next free id otherwise.
    #[arg(long)]
    vmid: Option<u32>,
    /// Node to install on (repeatable); every online node when absent.
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// Storage with content `import` for the upload.
    #[arg(long, default_value = "local")]
    import_storage: String,
    /// Replace a template built from another manifest.
    #[arg(long)]
    replace: bool,
}

/// Runs `agentlab template …`.
pub async fn run(args: TemplateArgs, json: bool) -> anyhow::Result<()> {
    let TemplateCommand::Install(a) = args.command;
    let env = std::env::var_os("AGENTLAB_CONFIG");
    let path = resolve_path(a.config.as_deref(), env.as_deref());
    let cfg = Config::load(&path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        cfg.backend == BackendKind::Pve,
        "templates are for the Proxmox backend; {} uses backend {}",
        path.display(),
        cfg.backend
    );
    let opts = PveOptions::from_config(&cfg).context("pve: section")?;
    let manifest = Manifest::load(&a.image)?;
    let disk = a.image.join("disk.qcow2");
    let disk_sha256 = manifest
        .outputs
        .get("disk.qcow2")
        .cloned()
        .with_context(|| {
            format!(
                "{} has no disk.qcow2 (built with --rootfs-only?)",
                a.image.display()
            )
        })?;
    let spec = TemplateSpec {
        name: a.name,
        vmid: a.vmid,
        disk,
        manifest_sha256: agentlab_image::manifest_sha256(&a.image)?,
        disk_sha256,
        guest_protocol: manifest.runner.guest_protocol,
        import_storage: a.import_storage,
        memory_mb: 2048,
        cores: 2,
        replace: a.replace,
    };
    let progress = Arc::new(|s: &InstallStep| match s {
        InstallStep::Step { node, what } => eprintln!("[{node}] {what}"),
        InstallStep::Upload { node, sent, total } => {
            let pct = if *total == 0 { 100 } else { sent * 100 / total };
            eprint!(
                "\r[{node}] upload {pct:>3}% ({} / {} MiB)",
                sent >> 20,
                total >> 20
            );
            if sent == total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
    });
    let done = install(&opts, &spec, &a.nodes, progress).await?;
    if json {
        return print_json(&done);
    }
    let mut table = Table::new(&["NODE", "VMID", "ACTION", "SERVES"]);
    for d in &done {
        table.row(vec![
            d.node.clone(),
            d.vmid.to_string(),
            format!("{:?}", d.action).to_lowercase(),
            d.serves.join(","),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}
