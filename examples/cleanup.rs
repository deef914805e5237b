//! Scripting template: destroy sandboxes older than a given age.
//!
//! Use it from cron or a CI janitor job to reclaim sandboxes people forgot (`keepalive` jobs,
//! interactive sandboxes): it lists the sandboxes (optionally only of `--profile`), picks those
//! created more than `--older-than` minutes ago, and destroys them, or with `--dry-run` only
//! prints which it would destroy. Sandboxes already DESTROYING are skipped (the daemon retries
//! those itself). It exits 1 when a destroy failed.
//!
//! Run (against a running agentlabd; `AGENTLAB_SOCKET` overrides the default socket
//! `/run/agentlab/agentlabd.sock`, or `AGENTLAB_ENDPOINT` + `AGENTLAB_TOKEN` select a remote
//! API):
//!
//! ```text
//! cargo run -p agentlab-examples --example cleanup -- --older-than 1440 --dry-run
//! cargo run -p agentlab-examples --example cleanup -- --older-than 1440 --profile interactive-dev
//! ```

use std::process::ExitCode;

use agentlab_client::SandboxFilter;
use agentlab_core::SandboxState;
use clap::Parser;

/// Destroys sandboxes older than `--older-than` minutes.
#[derive(Debug, Parser)]
struct Args {
    /// Minimum age in minutes (0: every sandbox).
    #[arg(long)]
    older_than: u32,
    /// Only sandboxes of this profile.
    #[arg(long)]
    profile: Option<String>,
    /// Print what would be destroyed, destroy nothing.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let client = agentlab_examples::client_from_env()?;
    let filter = SandboxFilter {
        profile: args.profile.clone(),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let cutoff = now - chrono::Duration::minutes(i64::from(args.older_than));
    let old: Vec<_> = client
        .list_sandboxes(&filter)
        .await?
        .into_iter()
        .filter(|s| s.created_at <= cutoff && s.state != SandboxState::Destroying)
        .collect();
    let verb = if args.dry_run {
        "would destroy"
    } else {
        "destroying"
    };
    let mut failed = 0;
    for sb in &old {
        let age = (now - sb.created_at).num_minutes();
        println!(
            "{verb} {} {} profile={} state={} age={age}m",
            sb.vmid,
            sb.name,
            sb.profile,
            sb.state.as_str()
        );
        if args.dry_run {
            continue;
        }
        match client.destroy_sandbox(sb.vmid).await {
            Ok(after) if after.state == SandboxState::Destroyed => {
                println!("destroyed {}", sb.vmid);
            }
            Ok(after) => println!(
                "{} still {} (the daemon retries): {}",
                sb.vmid,
                after.state.as_str(),
                after.last_error.as_deref().unwrap_or("-")
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{}: destroy failed: {e}", sb.vmid);
            }
        }
    }
    println!(
        "{} sandbox(es) older than {} minute(s){}",
        old.len(),
        args.older_than,
        if args.dry_run {
            ", none destroyed (dry run)"
        } else {
            ""
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
