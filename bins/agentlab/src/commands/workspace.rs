//! `agentlab workspace create|list|show|attach|detach|rebind|rm`: persistent volumes that
//! outlive sandboxes.

use agentlab_core::api::control::{
    AttachWorkspaceRequest, CreateWorkspaceRequest, RebindResponse, RebindWorkspaceRequest,
};
use agentlab_core::{Vmid, Workspace};

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;
use crate::view;
use agentlab_client::seg;

/// Arguments of `agentlab workspace`.
#[derive(Debug, clap::Args)]
pub struct WorkspaceArgs {
    #[command(subcommand)]
    pub cmd: WorkspaceCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace volume.
    #[command(visible_alias = "new")]
    Create {
        /// Unique name.
        name: String,
        /// Size in GiB.
        #[arg(long = "size", value_name = "GB")]
        size_gb: u32,
    },
    /// List workspaces.
    #[command(visible_alias = "ls")]
    List,
    /// Show one workspace (id or name).
    Show {
        /// The workspace (id or name).
        workspace: String,
    },
    /// Attach a workspace to a sandbox.
    Attach {
        /// The workspace (id or name).
        workspace: String,
        /// The sandbox to attach it to (its VM id).
        vmid: Vmid,
    },
    /// Detach a workspace from its sandbox.
    Detach {
        /// The workspace (id or name).
        workspace: String,
    },
    /// Move a workspace to a new sandbox created from a profile.
    Rebind {
        /// The workspace (id or name).
        workspace: String,
        /// Profile of the new sandbox.
        #[arg(long, short)]
        profile: String,
        /// Keep the old sandbox instead of destroying it.
        #[arg(long)]
        keep_old: bool,
        /// Lease length of the new sandbox in minutes.
        #[arg(long, value_name = "MINUTES")]
        ttl: Option<u32>,
    },
    /// Delete a detached workspace and its volume.
    #[command(visible_alias = "delete")]
    Rm {
        /// The workspace (id or name).
        workspace: String,
    },
}

/// Runs `agentlab workspace …`.
pub async fn run(ctx: &Ctx, args: WorkspaceArgs) -> anyhow::Result<Code> {
    let c = &ctx.client;
    let ws: Workspace = match args.cmd {
        WorkspaceCmd::Create { name, size_gb } => {
            c.post("/v1/workspaces", &CreateWorkspaceRequest { name, size_gb })
                .await?
        }
        WorkspaceCmd::List => {
            let list: Vec<Workspace> = c.get_all("/v1/workspaces", "cursor", None).await?;
            if ctx.json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("No workspaces.");
            } else {
                print!("{}", view::workspace_table(&list));
            }
            return Ok(Code::Ok);
        }
        WorkspaceCmd::Show { workspace } => c.get(&path(&workspace, "")).await?,
        WorkspaceCmd::Attach { workspace, vmid } => {
            c.post(
                &path(&workspace, "/attach"),
                &AttachWorkspaceRequest { vmid },
            )
            .await?
        }
        WorkspaceCmd::Detach { workspace } => c.post_empty(&path(&workspace, "/detach")).await?,
        WorkspaceCmd::Rebind {
            workspace,
            profile,
            keep_old,
            ttl,
        } => {
            let body = RebindWorkspaceRequest {
                profile,
                keep_old,
                ttl_minutes: ttl,
            };
            let r: RebindResponse = c.post(&path(&workspace, "/rebind"), &body).await?;
            if ctx.json {
                print_json(&r)?;
            } else {
                let from = r
                    .old_vmid
                    .map_or_else(|| "no sandbox".to_owned(), |v| format!("sandbox {v}"));
                println!(
                    "Workspace {} moved from {from} to sandbox {}.",
                    r.workspace, r.new_vmid
                );
            }
            return Ok(Code::Ok);
        }
        WorkspaceCmd::Rm { workspace } => {
            c.delete_no_content(&path(&workspace, "")).await?;
            if !ctx.json {
                println!("Workspace {workspace} deleted.");
            }
            return Ok(Code::Ok);
        }
    };
    if ctx.json {
        print_json(&ws)?;
    } else {
        print!("{}", view::workspace_detail(&ws));
    }
    Ok(Code::Ok)
}

fn path(workspace: &str, suffix: &str) -> String {
    format!("/v1/workspaces/{}{suffix}", seg(workspace))
}
