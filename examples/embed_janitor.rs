//! Scripting template: an embedded janitor — watch the engine's events and destroy old
//! sandboxes, in this process, without agentlabd.
//!
//! Use it where no daemon runs but sandboxes pile up (a CI host whose jobs keep sandboxes, a
//! batch machine driven by `embed_job`): it builds the engine from an AgentLab config file with
//! [`agentlab_host::Host`], prints every engine event as it is appended, and every `--interval`
//! seconds destroys the sandboxes created more than `--older-than` ago (`90s`, `30m`, `2h`,
//! `7d`; `0m` for all) — except keepalive-leased ones and those already DESTROYED or
//! DESTROYING (the engine retries those itself), like the `cleanup` template does through a
//! daemon. One line per destroyed sandbox, then a count. `--once` does a single sweep and exits
//! (cron, CI; exit 1 when a destroy failed); `--dry-run` only prints what it would destroy.
//!
//! Run with no agentlabd using the same config (as root for the local backend):
//!
//! ```text
//! cargo run -p agentlab-examples --example embed_janitor -- \
//!     --config /etc/agentlab/config.yaml --older-than 2h --once --dry-run
//! cargo run -p agentlab-examples --example embed_janitor -- \
//!     --config /etc/agentlab/config.yaml --older-than 2h --interval 300
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::config::Config;
use agentlab_core::engine::Lab;
use agentlab_core::profile::Profiles;
use agentlab_core::{EventQuery, SandboxFilter, SandboxState};
use agentlab_host::Host;
use clap::Parser;

/// Prints engine events and destroys sandboxes older than `--older-than`.
#[derive(Debug, Parser)]
struct Args {
    /// AgentLab config file (its backend, data dir, guest listener, profiles dir).
    #[arg(long)]
    config: PathBuf,
    /// Minimum age: a number with `s`, `m`, `h` or `d` (`0m`: every sandbox).
    #[arg(long, value_parser = parse_age)]
    older_than: chrono::Duration,
    /// Seconds between sweeps.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Only sandboxes of this profile.
    #[arg(long)]
    profile: Option<String>,
    /// One sweep, then exit.
    #[arg(long)]
    once: bool,
    /// Print what would be destroyed, destroy nothing.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let cfg = Config::load(&args.config)?;
    let profiles = Profiles::load_dir(&cfg.profiles_dir)?;
    let host = Host::builder(cfg, profiles).start().await?;
    let lab = Arc::clone(host.lab());
    let mut changes = lab.subscribe_changes();
    // Events from now on: start after the newest one stored.
    let newest = EventQuery {
        tail: Some(1),
        ..EventQuery::default()
    };
    let mut last = lab.events(&newest).await?.last().map_or(0, |e| e.id);
    let mut failed = 0;
    loop {
        failed += sweep(&lab, &args).await?;
        print_new(&lab, &mut last).await?;
        if args.once {
            break;
        }
        let next = tokio::time::Instant::now() + Duration::from_secs(args.interval.max(1));
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => break,
                _ = changes.recv() => print_new(&lab, &mut last).await?,
                _ = tokio::signal::ctrl_c() => {
                    host.shutdown().await;
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    host.shutdown().await;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Destroys (or with `--dry-run` lists) the old sandboxes; the number of failed destroys.
async fn sweep(lab: &Arc<Lab>, args: &Args) -> anyhow::Result<usize> {
    let filter = SandboxFilter {
        profile: args.profile.clone(),
        ..SandboxFilter::default()
    };
    let now = chrono::Utc::now();
    let old: Vec<_> = lab
        .list_sandboxes(&filter)
        .await?
        .into_iter()
        .filter(|s| now - s.created_at >= args.older_than && !s.lease.keepalive)
        .filter(|s| !matches!(s.state, SandboxState::Destroyed | SandboxState::Destroying))
        .collect();
    let (mut destroyed, mut failed) = (0, 0);
    for sb in &old {
        let what = format!(
            "{} {} profile={} state={} age={}m",
            sb.vmid,
            sb.name,
            sb.profile,
            sb.state,
            (now - sb.created_at).num_minutes()
        );
        if args.dry_run {
            println!("would destroy {what}");
            continue;
        }
        match lab.destroy_sandbox(sb.vmid).await {
            Ok(after) if after.state == SandboxState::Destroyed => {
                destroyed += 1;
                println!("destroyed {what}");
            }
            Ok(after) => println!(
                "{} still {} (the engine retries): {}",
                sb.vmid,
                after.state,
                after.last_error.as_deref().unwrap_or("-")
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{}: destroy failed: {e}", sb.vmid);
            }
        }
    }
    if args.dry_run {
        println!("{} sandbox(es) would be destroyed (dry run)", old.len());
    } else {
        println!("{destroyed} sandbox(es) destroyed");
    }
    Ok(failed)
}

/// Prints the events appended after `last` and advances it.
async fn print_new(lab: &Lab, last: &mut i64) -> anyhow::Result<()> {
    loop {
        let query = EventQuery {
            after: Some(*last),
            limit: Some(500),
            ..EventQuery::default()
        };
        let events = lab.events(&query).await?;
        for ev in &events {
            let subject = match (&ev.job, ev.sandbox) {
                (Some(job), _) => job.to_string(),
                (None, Some(vmid)) => vmid.to_string(),
                (None, None) => "-".to_owned(),
            };
            let ts = ev.ts.format("%H:%M:%S%.3f");
            println!("event {ts} {subject} {} {}", ev.kind.as_str(), ev.message);
            *last = ev.id;
        }
        if events.len() < 500 {
            return Ok(());
        }
    }
}

/// `90s`, `30m`, `2h`, `7d`.
fn parse_age(s: &str) -> Result<chrono::Duration, String> {
    let Some(unit) = s.chars().last() else {
        return Err("expected e.g. 30m or 2h".into());
    };
    let n: i64 = s[..s.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 30m or 2h"))?;
    match unit {
        's' => Ok(chrono::Duration::seconds(n)),
        'm' => Ok(chrono::Duration::minutes(n)),
        'h' => Ok(chrono::Duration::hours(n)),
        'd' => Ok(chrono::Duration::days(n)),
        _ => Err(format!("{s:?}: the unit is s, m, h or d")),
    }
}
