//! `agentlab init`: idempotent host setup, as root. Computes a list of typed steps (group,
//! binaries, `/etc/agentlab` with config, profiles and the secrets identity, the data
//! directory, the shipped systemd unit and tmpfiles.d entry, packages and bridge, daemon
//! check, `systemctl enable`/`start`, `doctor`), checks each, and applies only what is not
//! already so. `--dry-run` prints every change and makes none. See `docs/install.md`.

pub mod answers;
pub mod host;
pub mod plan;
mod pve;
pub mod steps;
pub mod system;

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::exit::Code;
use crate::output::print_json;

use self::host::Host;
use self::steps::{Check, Step};

/// Arguments of `agentlab init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    answers: answers::AnswerArgs,
    #[command(flatten)]
    common: CommonArgs,
    /// Where to take agentlab, agentlabd and agent-runner from [default: the directory of
    /// this agentlab].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

/// Options shared by `init` and `uninstall`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Print every change that would be made, and make none.
    #[arg(long)]
    pub dry_run: bool,
    /// For packaging and tests: prefix every path with DIR, edit DIR/etc/group, run
    /// `systemctl --root=DIR`; nothing is started, no package or network change is made.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Runs `agentlab init`.
pub async fn run(args: InitArgs, json: bool) -> anyhow::Result<Code> {
    tokio::task::spawn_blocking(move || init(&args, json)).await?
}

fn init(args: &InitArgs, json: bool) -> anyhow::Result<Code> {
    let host = host_for(&args.common)?;
    let existing = plan::existing_config(&host)?;
    let answers = match &existing {
        // The answers only shape files that do not exist yet; an existing config wins.
        Some(cfg) => answers::Answers {
            backend: cfg.backend,
            bridge: if cfg.backend == agentlab_core::config::BackendKind::Local {
                cfg.local.bridge.clone()
            } else {
                cfg.network.bridge.clone()
            },
            pve: None,
        },
        None => answers::gather(&args.answers)?,
    };
    let current = match existing {
        Some(config) => plan::Current {
            config,
            existed: true,
        },
        None => plan::Current {
            config: agentlab_core::config::Config::from_yaml_str(
                &answers.config_text(),
                "the new config",
            )?,
            existed: false,
        },
    };
    if current.existed
        && let Some(b) = &args.answers.backend
        && *b != current.config.backend.to_string()
    {
        eprintln!(
            "agentlab init: /etc/agentlab/config.yaml exists with backend {}; it is kept, \
             --backend {b} is ignored",
            current.config.backend
        );
    }
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("locating this agentlab binary")?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let steps = plan::init_steps(&host, &answers, &current, &bin_dir);
    execute(&host, &steps, args.common.dry_run, json)
}

/// The host of a run; refuses real runs by non-root users.
pub fn host_for(common: &CommonArgs) -> anyhow::Result<Host> {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the effective uid.
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    anyhow::ensure!(
        common.dry_run || euid == 0,
        "run it as root (sudo), or with --dry-run to see what it would change"
    );
    if let Some(root) = &common.root {
        anyhow::ensure!(root.is_absolute(), "--root must be an absolute path");
        anyhow::ensure!(
            root.is_dir(),
            "--root {}: no such directory",
            root.display()
        );
    }
    Ok(Host::new(common.root.clone()))
}

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Already as wanted (or a check that passed).
    Ok,
    /// Changed by this run.
    Changed,
    /// Not done here (see the detail).
    Skipped,
    /// `--dry-run`: would change.
    WouldChange,
    /// Failed; later steps were not run.
    Failed,
}

/// One line of the report (`--json`: a list of these).
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step's name.
    pub step: String,
    /// What happened.
    pub status: Status,
    /// What was (or would be) done, or why not.
    pub detail: String,
}

/// Checks and applies `steps` in order, prints the report, and stops at the first failure.
pub fn execute(host: &Host, steps: &[Step], dry_run: bool, json: bool) -> anyhow::Result<Code> {
    let mut report = Vec::new();
    let mut failure = None;
    for step in steps {
        let (status, detail) = match step.check(host) {
            Err(e) => (Status::Failed, format!("{e:#}")),
            Ok(Check::Ok(d)) => (Status::Ok, d),
            Ok(Check::Skip(d)) => (Status::Skipped, d),
            Ok(Check::Verify(d)) if dry_run => (Status::Skipped, format!("dry run: would run {d}")),
            Ok(Check::Change(d)) if dry_run => (Status::WouldChange, d),
            Ok(Check::Verify(d)) => match step.apply(host) {
                Ok(()) => (Status::Ok, format!("passed: {d}")),
                Err(e) => (Status::Failed, format!("{e:#}")),
            },
            Ok(Check::Change(d)) => match step.apply(host) {
                Ok(()) => (Status::Changed, d),
                Err(e) => (Status::Failed, format!("{d}: {e:#}")),
            },
        };
        if status == Status::Failed {
            failure = Some(format!("{}: {detail}", step.name()));
        }
        report.push(StepReport {
            step: step.name(),
            status,
            detail,
        });
        if failure.is_some() {
            break;
        }
    }
    print_report(&report, dry_run, json)?;
    match failure {
        Some(f) => Err(anyhow::anyhow!(f)),
        None => Ok(Code::Ok),
    }
}

fn print_report(report: &[StepReport], dry_run: bool, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&report);
    }
    for r in report {
        let status = match r.status {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Skipped => "skipped",
            Status::WouldChange => "would change",
            Status::Failed => "FAILED",
        };
        let mut lines = r.detail.lines();
        println!(
            "{status:<13} {}: {}",
            r.step,
            lines.next().unwrap_or_default()
        );
        for l in lines {
            println!("{:<13}   {l}", "");
        }
    }
    let count = |s: Status| report.iter().filter(|r| r.status == s).count();
    let changes = count(Status::Changed) + count(Status::WouldChange);
    if changes == 0 && count(Status::Failed) == 0 {
        println!("Nothing to change.");
    } else if dry_run {
        println!("Dry run: {changes} change(s) would be made; nothing was changed.");
    } else {
        println!("{} change(s) made.", count(Status::Changed));
    }
    Ok(())
}
