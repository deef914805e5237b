//! Scripting template: a long-lived sandbox with a persistent workspace, renewed and rebound,
//! driven from your own program without agentlabd.
//!
//! Use it for a development box that outlives its VMs: the workspace volume keeps the work,
//! the sandbox holding it is a keepalive sandbox whose lease the program renews, and a rebind
//! moves the workspace onto a fresh sandbox (a new template, a broken VM) and destroys the
//! old one. It prints each step; `--keep` leaves the sandbox and workspace in place at the end
//! (otherwise both are removed).
//!
//! Run as root with a config whose backend has workspace volumes (`local`, `qemu`, `pve`, or
//! `fake` for a dry run), with no agentlabd using the same config:
//!
//! ```text
//! cargo run -p agentlab-examples --example embed_workspace -- \
//!     --config /etc/agentlab/config.yaml --profile interactive-dev --workspace mywork
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::config::Config;
use agentlab_core::engine::{Lab, SandboxRequest};
use agentlab_core::profile::Profiles;
use agentlab_core::{Sandbox, SandboxState, Vmid};
use agentlab_host::Host;
use clap::Parser;

/// A keepalive sandbox with a workspace: create, renew, rebind.
#[derive(Debug, Parser)]
struct Args {
    /// AgentLab config file.
    #[arg(long)]
    config: PathBuf,
    /// Profile of the sandboxes.
    #[arg(long)]
    profile: String,
    /// Workspace name (created when it does not exist).
    #[arg(long)]
    workspace: String,
    /// Workspace size in GiB when it is created.
    #[arg(long, default_value_t = 1)]
    size_gb: u32,
    /// Lease renewal in minutes.
    #[arg(long, default_value_t = 120)]
    renew_minutes: u32,
    /// Leave the sandbox and the workspace in place at the end.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let cfg = Config::load(&args.config)?;
    let profiles = Profiles::load_dir(&cfg.profiles_dir)?;
    let host = Host::builder(cfg, profiles).start().await?;
    let lab = Arc::clone(host.lab());
    let result = session(&lab, &args).await;
    host.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn session(lab: &Arc<Lab>, args: &Args) -> anyhow::Result<()> {
    let ws = match lab.workspace(&args.workspace).await {
        Ok(ws) => ws,
        Err(_) => lab.create_workspace(&args.workspace, args.size_gb).await?,
    };
    println!("workspace {} ({}, {} GiB)", ws.name, ws.id, ws.size_gb);
    let first = lab
        .create_sandbox(SandboxRequest {
            profile: args.profile.clone(),
            keepalive: Some(true),
            workspace: Some(ws.id.to_string()),
            ..SandboxRequest::default()
        })
        .await?;
    let first = ready(lab, first.vmid).await?;
    println!(
        "sandbox {} READY with the workspace; lease until {}",
        first.vmid, first.lease.expires_at
    );
    let renewed = lab
        .renew_lease(first.vmid, Some(args.renew_minutes))
        .await?;
    println!(
        "sandbox {} renewed by {} min: lease until {}",
        renewed.vmid, args.renew_minutes, renewed.lease.expires_at
    );
    let moved = lab
        .rebind_workspace(&ws.id.to_string(), &args.profile, false, None)
        .await?;
    let second = ready(lab, moved.new_vmid).await?;
    let old = lab.sandbox(first.vmid).await?;
    println!(
        "workspace rebound: sandbox {} READY with it; old sandbox {} is {}",
        second.vmid, old.vmid, old.state
    );
    let ws = lab.workspace(&ws.id.to_string()).await?;
    anyhow::ensure!(
        ws.attached_to == Some(second.vmid),
        "the workspace is attached to {:?}, not to {}",
        ws.attached_to,
        second.vmid
    );
    if !args.keep {
        let gone = lab.destroy_sandbox(second.vmid).await?;
        lab.delete_workspace(&ws.id.to_string()).await?;
        println!(
            "cleaned up: sandbox {} {}, workspace {} deleted",
            gone.vmid, gone.state, ws.name
        );
    }
    Ok(())
}

/// Waits up to 10 minutes for the sandbox to be READY; a failure names its last error.
async fn ready(lab: &Arc<Lab>, vmid: Vmid) -> anyhow::Result<Sandbox> {
    for _ in 0..6000 {
        let sb = lab.sandbox(vmid).await?;
        match sb.state {
            SandboxState::Ready => return Ok(sb),
            SandboxState::Failed | SandboxState::Destroyed => anyhow::bail!(
                "sandbox {vmid} is {}: {}",
                sb.state,
                sb.last_error.unwrap_or_default()
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    anyhow::bail!("sandbox {vmid} was not READY within 10 minutes")
}
