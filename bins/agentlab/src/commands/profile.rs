//! `agentlab profile list|show|validate FILE`. `validate` posts the file to the daemon, which
//! checks it exactly as it checks its own profiles; errors name file, document and field.

use std::path::PathBuf;

use agentlab_core::api::control::ProfileSummary;
use agentlab_core::profile::Profile;
use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;
use crate::view;
use agentlab_client::{ApiError, ClientError, seg};

/// Arguments of `agentlab profile`.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub cmd: ProfileCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCmd {
    /// List the daemon's profiles.
    #[command(visible_alias = "ls")]
    List,
    /// Show one profile as YAML.
    Show {
        /// The profile name.
        name: String,
    },
    /// Check a profile file (possibly several `---` documents) without installing it.
    Validate {
        /// A profile YAML file.
        file: PathBuf,
    },
}

/// Answer of `POST /v1/profiles/validate`.
#[derive(Debug, Serialize, Deserialize)]
struct Validated {
    valid: bool,
    #[serde(default)]
    profiles: Vec<String>,
}

/// Runs `agentlab profile …`.
pub async fn run(ctx: &Ctx, args: ProfileArgs) -> anyhow::Result<Code> {
    match args.cmd {
        ProfileCmd::List => {
            let list: Vec<ProfileSummary> = ctx.client.list_profiles().await?;
            if ctx.json {
                print_json(&list)?;
            } else {
                print!("{}", view::profile_table(&list));
            }
        }
        ProfileCmd::Show { name } => {
            let profile: Profile = ctx
                .client
                .get(&format!("/v1/profiles/{}", seg(&name)))
                .await?;
            if ctx.json {
                print_json(&profile)?;
            } else {
                print!("{}", serde_yaml::to_string(&profile)?);
            }
        }
        ProfileCmd::Validate { file } => {
            let text = tokio::fs::read_to_string(&file)
                .await
                .with_context(|| format!("Cannot read {}", file.display()))?;
            let shown = file.display().to_string();
            let ok: Validated = match ctx.client.post_text("/v1/profiles/validate", text).await {
                Ok(v) => v,
                Err(ClientError::Api(e)) => anyhow::bail!(describe_invalid(&shown, &e)),
                Err(e) => return Err(e.into()),
            };
            if ctx.json {
                print_json(&ok)?;
            } else {
                println!("{shown}: valid ({})", ok.profiles.join(", "));
            }
        }
    }
    Ok(Code::Ok)
}

/// One line for a rejected profile: `FILE, document N, field F (line L, column C): reason;
/// did you mean "x"? (code)`, naming the local file instead of the daemon's `<request body>`.
pub fn describe_invalid(file: &str, e: &ApiError) -> String {
    let d = e.details.get("details").unwrap_or(&e.details);
    let num = |k: &str| d.get(k).and_then(serde_json::Value::as_u64);
    let text = |k: &str| d.get(k).and_then(serde_json::Value::as_str);
    let mut at = file.to_owned();
    if let Some(doc) = num("document") {
        at.push_str(&format!(", document {doc}"));
    }
    if let Some(field) = text("field") {
        at.push_str(&format!(", field {field}"));
    }
    match (num("line"), num("column")) {
        (Some(l), Some(c)) => at.push_str(&format!(" (line {l}, column {c})")),
        (Some(l), None) => at.push_str(&format!(" (line {l})")),
        _ => {}
    }
    let mut msg = format!("{at}: {}", text("reason").unwrap_or(&e.message));
    if let Some(s) = text("suggestion") {
        msg.push_str(&format!("; did you mean {s:?}?"));
    }
    format!("{msg} ({})", e.code)
}
