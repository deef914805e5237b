//! `agentlab profile list|show|validate FILE…|reload`. `validate` checks files offline with
//! the daemon's own loader (no daemon needed); `reload` asks the daemon to read its profiles
//! directory again and prints what changed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use agentlab_core::api::admin::ReloadReport;
use agentlab_core::api::control::ProfileSummary;
use agentlab_core::profile::{Profile, Profiles};
use anyhow::Context;
use serde::Serialize;

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
    /// Check profile files (each possibly several `---` documents) offline, with the
    /// daemon's own rules; names must be unique across the files.
    Validate {
        /// Profile YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Make the daemon read its profiles directory again (as SIGHUP does) and show what
    /// changed; an invalid file is refused and the running profiles are kept.
    Reload,
}

/// One file's result of `profile validate`.
#[derive(Debug, Serialize)]
struct FileResult {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    profiles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
    /// Go-original spellings accepted with a deprecation warning.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<agentlab_core::profile::ProfileWarning>,
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
        ProfileCmd::Validate { files } => return validate(ctx, files).await,
        ProfileCmd::Reload => {
            let report: ReloadReport = match ctx.client.post_empty("/v1/profiles/reload").await {
                Ok(r) => r,
                Err(ClientError::Api(e)) if !ctx.json && e.status == 422 => {
                    let file = e.details.get("file").and_then(serde_json::Value::as_str);
                    anyhow::bail!(describe_invalid(file.unwrap_or("config"), &e))
                }
                Err(e) => return Err(e.into()),
            };
            if ctx.json {
                print_json(&report)?;
            } else {
                print!("{}", render_report(&report));
            }
        }
    }
    Ok(Code::Ok)
}

/// Validates every file on a blocking thread; prints one line (or one JSON document) and
/// exits 1 when any file is invalid.
async fn validate(ctx: &Ctx, files: Vec<PathBuf>) -> anyhow::Result<Code> {
    let results = tokio::task::spawn_blocking(move || check_files(&files))
        .await
        .context("validation task failed")?;
    let all_valid = results.iter().all(|r| r.valid);
    if ctx.json {
        print_json(&serde_json::json!({"valid": all_valid, "files": results}))?;
    } else {
        for r in &results {
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            match &r.error {
                None => println!("{}: valid ({})", r.file, r.profiles.join(", ")),
                Some(e) => {
                    let msg = e["message"].as_str().unwrap_or_default();
                    eprintln!("error: {msg}");
                }
            }
        }
    }
    Ok(if all_valid { Code::Ok } else { Code::Failure })
}

/// Loads each file as the daemon would and refuses a name defined in two files.
fn check_files(files: &[PathBuf]) -> Vec<FileResult> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let loaded = std::fs::read_to_string(path)
            .map_err(|e| invalid(&file, "unreadable", &format!("cannot read: {e}"), None))
            .and_then(|text| {
                Profiles::from_yaml_str(&text, &file).map_err(|e| {
                    let details = serde_json::to_value(&e.details).unwrap_or_default();
                    let msg = describe(&file, &details, &e.details.reason, "invalid_profile");
                    invalid(&file, "invalid_profile", &msg, Some(&details))
                })
            });
        let result = match loaded {
            Err(error) => FileResult {
                file,
                valid: false,
                profiles: Vec::new(),
                error: Some(error),
                warnings: Vec::new(),
            },
            Ok(set) => {
                let names: Vec<String> = set.names().iter().map(|n| (*n).to_owned()).collect();
                match names.iter().find(|n| seen.contains_key(*n)) {
                    Some(dup) => {
                        let reason = format!(
                            "{file}: duplicate profile name {dup:?}, first defined in {} (duplicate)",
                            seen[dup]
                        );
                        FileResult {
                            error: Some(invalid(&file, "duplicate", &reason, None)),
                            file,
                            valid: false,
                            profiles: Vec::new(),
                            warnings: set.warnings().to_vec(),
                        }
                    }
                    None => {
                        for n in &names {
                            seen.insert(n.clone(), file.clone());
                        }
                        FileResult {
                            file,
                            valid: true,
                            profiles: names,
                            error: None,
                            warnings: set.warnings().to_vec(),
                        }
                    }
                }
            }
        };
        out.push(result);
    }
    out
}

fn invalid(
    file: &str,
    code: &str,
    message: &str,
    details: Option<&serde_json::Value>,
) -> serde_json::Value {
    let message = if message.starts_with(file) {
        message.to_owned()
    } else {
        format!("{file}: {message} ({code})")
    };
    serde_json::json!({"code": code, "message": message, "details": details})
}

/// The text report of a reload.
fn render_report(r: &ReloadReport) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    let p = &r.profiles;
    let mut out = format!(
        "profiles reloaded from {}: added {}; removed {}; changed {}; {} unchanged\n",
        r.config,
        list(&p.added),
        list(&p.removed),
        list(&p.changed),
        p.unchanged
    );
    if !r.restart_required.is_empty() {
        out.push_str(&format!(
            "changed in the config but applied only after a restart: {}\n",
            r.restart_required.join(", ")
        ));
    }
    out
}

/// One line for a rejected profile: `FILE, document N, field F (line L, column C): reason;
/// did you mean "x"? (code)`, naming `file` instead of the daemon's origin.
pub fn describe_invalid(file: &str, e: &ApiError) -> String {
    let d = e.details.get("details").unwrap_or(&e.details);
    describe(file, d, &e.message, &e.code)
}

/// [`describe_invalid`] over the details object of a profile or config error.
fn describe(file: &str, d: &serde_json::Value, fallback: &str, code: &str) -> String {
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
    let mut msg = format!("{at}: {}", text("reason").unwrap_or(fallback));
    if let Some(s) = text("suggestion") {
        msg.push_str(&format!("; did you mean {s:?}?"));
    }
    format!("{msg} ({code})")
}
