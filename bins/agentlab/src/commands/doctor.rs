//! `agentlab doctor`: checks the Proxmox connection, templates, storage, bridge, snippets
//! and the token's privileges (read from the daemon config), printing a pass/fail table with
//! fixes. agentlabd runs the same checks at start-up.

use std::path::PathBuf;

use anyhow::Context;

use agentlab_core::config::{BackendKind, Config, resolve_path};
use agentlab_core::profile::Profiles;
use agentlab_pve::{CheckResult, PveOptions};

use crate::exit::Code;
use crate::output::{Table, print_json};

/// Arguments of `agentlab doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Daemon config (default /etc/agentlab/config.yaml; env AGENTLAB_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check this template instead of every profile's.
    #[arg(long, value_name = "VMID")]
    template: Option<u32>,
}

/// Runs `agentlab doctor`; exits 1 when any check fails.
pub async fn run(args: DoctorArgs, json: bool) -> anyhow::Result<Code> {
    let env = std::env::var_os("AGENTLAB_CONFIG");
    let path = resolve_path(args.config.as_deref(), env.as_deref());
    let cfg = Config::load(&path).with_context(|| format!("reading {}", path.display()))?;
    if cfg.backend != BackendKind::Pve {
        anyhow::bail!(
            "doctor checks the Proxmox backend; {} uses backend {}",
            path.display(),
            cfg.backend
        );
    }
    let templates: Vec<u32> = match args.template {
        Some(t) => vec![t],
        None => {
            let profiles = Profiles::load_dir(&cfg.profiles_dir).context("loading profiles")?;
            let mut t: Vec<u32> = profiles.iter().map(|p| p.template_vmid).collect();
            t.sort_unstable();
            t.dedup();
            t
        }
    };
    let opts = PveOptions::from_config(&cfg).context("pve: section")?;
    let mut results: Vec<CheckResult> = Vec::new();
    for t in templates {
        results.extend(agentlab_pve::doctor(&opts, t).await);
    }
    if json {
        print_json(&results)?;
    } else {
        let mut table = Table::new(&["CHECK", "RESULT", "DETAIL", "FIX"]);
        for r in &results {
            let verdict = if r.ok { "pass" } else { "FAIL" };
            table.row(vec![
                r.name.clone(),
                verdict.into(),
                r.detail.clone(),
                r.fix.clone().unwrap_or_default(),
            ]);
        }
        print!("{}", table.render());
    }
    Ok(if results.iter().all(|r| r.ok) {
        Code::Ok
    } else {
        Code::Failure
    })
}
