//! `agentlab sandbox list|show|start|stop|destroy|lease renew` (and `new`, in `sandbox_new`;
//! `exec`, `shell`, `cp` and `forward` in their own files).

use agentlab_core::api::control::SandboxDetail;
use agentlab_core::{Sandbox, SandboxState, Vmid};

use super::sandbox_new::{self, NewArgs};
use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;
use crate::view;
use agentlab_client::SandboxFilter;

/// Arguments of `agentlab sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub cmd: SandboxCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCmd {
    /// Create a sandbox from a profile.
    #[command(visible_alias = "create")]
    New(NewArgs),
    /// List sandboxes (DESTROYED ones only with --all).
    #[command(visible_alias = "ls")]
    List {
        /// Only these states (comma-separated, e.g. READY,RUNNING).
        #[arg(long, value_delimiter = ',')]
        state: Vec<SandboxState>,
        /// Only sandboxes of this profile.
        #[arg(long)]
        profile: Option<String>,
        /// Include destroyed sandboxes.
        #[arg(long, short)]
        all: bool,
    },
    /// Show one sandbox, including the cause of its last failure.
    Show {
        /// The sandbox (its VM id, as `sandbox list` shows).
        vmid: Vmid,
    },
    /// Start a stopped sandbox.
    Start {
        /// The sandbox (its VM id, as `sandbox list` shows).
        vmid: Vmid,
    },
    /// Stop (power off) a sandbox; it can be started again.
    Stop {
        /// The sandbox (its VM id, as `sandbox list` shows).
        vmid: Vmid,
    },
    /// Destroy a sandbox and everything AgentLab created for it.
    #[command(visible_alias = "rm")]
    Destroy {
        /// The sandbox (its VM id, as `sandbox list` shows).
        vmid: Vmid,
    },
    /// Run a command in a running sandbox (exit code = the command's).
    Exec(super::sandbox_exec::ExecArgs),
    /// An interactive terminal in a running sandbox.
    Shell(super::sandbox_exec::ShellArgs),
    /// Copy files or directories into or out of a running sandbox (`<vmid>:/path`).
    Cp(super::sandbox_cp::CpArgs),
    /// Forward a local TCP port to a port inside a running sandbox.
    Forward(super::sandbox_forward::ForwardArgs),
    /// SSH into a sandbox through its channel (the sandbox must run an SSH server).
    Ssh(super::sandbox_ssh::SshArgs),
    /// Manage the sandbox's lease.
    Lease {
        #[command(subcommand)]
        cmd: LeaseCmd,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum LeaseCmd {
    /// Extend the lease from now.
    Renew {
        /// The sandbox (its VM id, as `sandbox list` shows).
        vmid: Vmid,
        /// New lease length in minutes (the lease's own length when absent).
        #[arg(long, value_name = "MINUTES")]
        ttl: Option<u32>,
    },
}

/// Runs `agentlab sandbox …`.
pub async fn run(ctx: &Ctx, args: SandboxArgs) -> anyhow::Result<Code> {
    let c = &ctx.client;
    let destroy = matches!(args.cmd, SandboxCmd::Destroy { .. });
    let sandbox: Sandbox = match args.cmd {
        SandboxCmd::New(a) => return sandbox_new::run(ctx, a).await,
        SandboxCmd::Exec(a) => return super::sandbox_exec::exec(ctx, a).await,
        SandboxCmd::Shell(a) => return super::sandbox_exec::shell(ctx, a).await,
        SandboxCmd::Cp(a) => return super::sandbox_cp::run(ctx, a).await,
        SandboxCmd::Forward(a) => return super::sandbox_forward::run(ctx, a).await,
        SandboxCmd::Ssh(a) => return super::sandbox_ssh::run(ctx, a).await,
        SandboxCmd::List {
            state,
            profile,
            all,
        } => {
            let filter = SandboxFilter {
                states: state,
                profile,
                all,
            };
            let list: Vec<Sandbox> = c.list_sandboxes(&filter).await?;
            return print_list(ctx, &list);
        }
        SandboxCmd::Show { vmid } => {
            let detail: SandboxDetail = c.show_sandbox(vmid).await?;
            if ctx.json {
                print_json(&detail)?;
            } else {
                print!(
                    "{}",
                    view::sandbox_detail(&detail.sandbox, &chrono::Utc::now())
                );
                if let Some(u) = &detail.usage {
                    print!("{}", view::usage_line(u));
                }
                if let Some(at) = &detail.last_activity_at {
                    print!(
                        "{}",
                        crate::output::kv(&[("last activity", at.to_rfc3339())])
                    );
                }
            }
            return Ok(Code::Ok);
        }
        SandboxCmd::Start { vmid } => c.post_empty(&format!("/v1/sandboxes/{vmid}/start")).await?,
        SandboxCmd::Stop { vmid } => c.post_empty(&format!("/v1/sandboxes/{vmid}/stop")).await?,
        SandboxCmd::Destroy { vmid } => c.destroy_sandbox(vmid).await?,
        SandboxCmd::Lease {
            cmd: LeaseCmd::Renew { vmid, ttl },
        } => c.renew_lease(vmid, ttl).await?,
    };
    if ctx.json {
        print_json(&sandbox)?;
    } else {
        print!("{}", view::sandbox_detail(&sandbox, &chrono::Utc::now()));
    }
    if destroy && sandbox.state == SandboxState::Destroying {
        // The attempt failed; the daemon keeps retrying.
        eprintln!(
            "agentlab: sandbox {} is not destroyed yet: {}; agentlabd retries until it is \
             DESTROYED (follow with `agentlab sandbox show {}`)",
            sandbox.vmid,
            sandbox
                .last_error
                .as_deref()
                .unwrap_or("the destroy is in progress"),
            sandbox.vmid
        );
        return Ok(Code::Failure);
    }
    Ok(Code::Ok)
}

fn print_list(ctx: &Ctx, list: &[Sandbox]) -> anyhow::Result<Code> {
    if ctx.json {
        print_json(&list)?;
    } else if list.is_empty() {
        println!("No sandboxes.");
    } else {
        print!("{}", view::sandbox_table(list, &chrono::Utc::now()));
    }
    Ok(Code::Ok)
}
