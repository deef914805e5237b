//! `agentlab net plan|apply|delete|bridge|check`: the host's nftables policy, from the same
//! config file as agentlabd (`--config`/`AGENTLAB_CONFIG`) or a standalone `--net-config` YAML.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::Firewall;
use agentlab_core::config::{CONFIG_ENV, Config, DEFAULT_CONFIG_PATH};
use agentlab_net::check::Expect;
use agentlab_net::check::{LiveCheck, LiveCheckOptions, ProbeCommand, probe_main, render_table};
use agentlab_net::plan::{line_diff, planned_listing};
use agentlab_net::{NetConfig, NftFirewall, ProcessRunner, bridge, render};
use anyhow::Context;

use crate::output::print_json;

/// Arguments of `agentlab net`.
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// agentlabd config file whose `network:` section is used.
    #[arg(long, env = CONFIG_ENV, global = true)]
    config: Option<PathBuf>,
    /// Standalone network config YAML (fields of `NetConfig`); wins over `--config`.
    #[arg(long, env = "AGENTLAB_NET_CONFIG", global = true)]
    net_config: Option<PathBuf>,
    /// Path of the nft binary.
    #[arg(long, global = true)]
    nft: Option<PathBuf>,
    #[command(subcommand)]
    command: NetCommand,
}

#[derive(Debug, clap::Subcommand)]
enum NetCommand {
    /// Print the ruleset that `apply` would install.
    Plan,
    /// Install the ruleset atomically, for host setup before agentlabd runs. Refused while
    /// agentlabd runs: it owns the tables and re-applies base and sandboxes itself.
    Apply {
        /// Print the diff against the live tables instead of applying.
        #[arg(long)]
        dry_run: bool,
        /// Apply even though agentlabd is running (it puts its own ruleset back at once).
        #[arg(long)]
        force: bool,
    },
    /// Remove AgentLab's tables, restoring the host's ruleset. Refused while agentlabd runs.
    Delete {
        /// Delete even though agentlabd is running (it re-creates its tables at once).
        #[arg(long)]
        force: bool,
    },
    /// Plain Linux only: create the agent bridge and enable forwarding (not on Proxmox).
    Bridge,
    /// Probe the live setup from a throwaway namespace and print a pass/fail table.
    Check {
        /// Internet targets that must be reachable (`ip:port`).
        #[arg(long = "reach", default_value = "1.1.1.1:443")]
        reach: Vec<String>,
        /// Extra targets that must be dropped (LAN, tailnet, other sandboxes).
        #[arg(long = "blocked")]
        blocked: Vec<String>,
        /// Do not require the guest listener to answer (agentlabd not running).
        #[arg(long)]
        no_guest_listener: bool,
        /// Silence after which a probe counts as dropped.
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
    },
    /// Internal: one TCP probe (used by `check` inside its namespace).
    #[command(hide = true)]
    Probe {
        /// `connect <target> [--bind ip] [--timeout-ms n]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Runs `agentlab net`; with `json`, each command (but the internal `probe`) prints one JSON
/// document instead of its text.
pub async fn run(args: NetArgs, json: bool) -> anyhow::Result<()> {
    if let NetCommand::Probe { args: probe } = &args.command {
        let rest = probe
            .split_first()
            .filter(|(c, _)| *c == "connect")
            .map(|(_, r)| r);
        let line = probe_main(rest.context("usage: net probe connect <target>")?)
            .await
            .map_err(anyhow::Error::msg)?;
        println!("{line}");
        return Ok(());
    }
    if let NetCommand::Apply {
        dry_run: false,
        force: false,
    }
    | NetCommand::Delete { force: false } = &args.command
    {
        refuse_while_daemon_runs(&args.config).await?;
    }
    let cfg =
        tokio::task::spawn_blocking(move || load_config(&args.config, &args.net_config, args.nft))
            .await??;
    match args.command {
        NetCommand::Plan => {
            let ruleset = render::render_base(&cfg);
            if json {
                print_json(&serde_json::json!({"ruleset": ruleset}))?;
            } else {
                print!("{ruleset}");
            }
        }
        NetCommand::Apply { dry_run: true, .. } => dry_run(cfg, json).await?,
        NetCommand::Apply { dry_run: false, .. } => {
            NftFirewall::new(cfg)?
                .ensure_base()
                .await
                .context("applying the ruleset")?;
            done(
                json,
                &serde_json::json!({"applied": true}),
                "AgentLab ruleset applied.",
            )?;
        }
        NetCommand::Delete { .. } => {
            NftFirewall::new(cfg)?
                .delete_tables()
                .await
                .context("deleting AgentLab's tables")?;
            done(
                json,
                &serde_json::json!({"deleted": true}),
                "AgentLab tables removed.",
            )?;
        }
        NetCommand::Bridge => {
            anyhow::ensure!(
                !std::path::Path::new("/etc/pve").exists(),
                "This is a Proxmox host: define the bridge in /etc/network/interfaces (docs/network.md)"
            );
            let name = cfg.bridge.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                bridge::create_bridge(&cfg, None)?;
                bridge::enable_forwarding(std::path::Path::new("/proc/sys"))?;
                Ok(())
            })
            .await??;
            let doc = serde_json::json!({"bridge": name, "forwarding": true});
            done(json, &doc, "Agent bridge ready, forwarding enabled.")?;
        }
        NetCommand::Check {
            reach,
            blocked,
            no_guest_listener,
            timeout_ms,
        } => {
            let mut opts = LiveCheckOptions::for_config(&cfg);
            opts.reach = reach;
            opts.blocked.extend(blocked);
            opts.expect_guest_listener = !no_guest_listener;
            opts.timeout = Duration::from_millis(timeout_ms);
            check(cfg, opts, json).await?;
        }
        NetCommand::Probe { .. } => {}
    }
    Ok(())
}

/// agentlabd owns its tables while it runs (it re-applies them when they change), so changing
/// them from here would be undone at once, or, for `delete`, open the host until it is.
async fn refuse_while_daemon_runs(config: &Option<PathBuf>) -> anyhow::Result<()> {
    let path = config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let socket = if path.exists() {
        let p = path.clone();
        tokio::task::spawn_blocking(move || Config::load(&p))
            .await?
            .map(|c| c.socket)
            .ok()
    } else {
        None
    }
    .or_else(|| std::env::var_os("AGENTLAB_SOCKET").map(PathBuf::from));
    let Some(socket) = socket else {
        return Ok(());
    };
    if tokio::net::UnixStream::connect(&socket).await.is_ok() {
        anyhow::bail!(
            "agentlabd is running (socket {}) and owns AgentLab's nftables tables: it re-applies \
             its base ruleset and every sandbox's entries as soon as they change, so this \
             change would be undone (and a delete would leave sandboxes unisolated until then). \
             Stop agentlabd first, or pass --force.",
            socket.display()
        );
    }
    Ok(())
}

fn load_config(
    config: &Option<PathBuf>,
    net_config: &Option<PathBuf>,
    nft: Option<PathBuf>,
) -> anyhow::Result<NetConfig> {
    let mut cfg = if let Some(path) = net_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        NetConfig::from_yaml_str(&text)?
    } else {
        let path = config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        if config.is_some() || path.exists() {
            NetConfig::from_daemon(&Config::load(&path)?)?
        } else {
            NetConfig::default()
        }
    };
    if let Some(nft) = nft {
        cfg.nft_path = nft;
    }
    Ok(cfg)
}

/// Prints `doc` as JSON when `json`, else `text` (one line).
fn done(json: bool, doc: &serde_json::Value, text: &str) -> anyhow::Result<()> {
    if json {
        print_json(doc)
    } else {
        println!("{text}");
        Ok(())
    }
}

async fn dry_run(cfg: NetConfig, json: bool) -> anyhow::Result<()> {
    let fw = NftFirewall::new(cfg.clone())?;
    let current = fw.listing().await?.unwrap_or_default();
    let planned = tokio::task::spawn_blocking(move || planned_listing(&cfg))
        .await?
        .context("rendering the plan in a scratch namespace")?;
    let diff = line_diff(&current, &planned);
    if json {
        return print_json(&serde_json::json!({"changes": !diff.is_empty(), "diff": diff}));
    }
    if diff.is_empty() {
        println!("No changes.");
    } else {
        print!("{diff}");
    }
    Ok(())
}

async fn check(cfg: NetConfig, opts: LiveCheckOptions, json: bool) -> anyhow::Result<()> {
    let runner = Arc::new(ProcessRunner::new(cfg.nft_path.clone()));
    let fw = NftFirewall::with_runner(cfg, runner)?;
    let program = std::env::current_exe().context("locating the agentlab binary")?;
    let probe = ProbeCommand {
        program,
        prefix: vec!["net".into(), "probe".into()],
    };
    let results = LiveCheck::new(&fw, probe, opts)
        .run()
        .await
        .context("running the probe matrix")?;
    let failed = results.iter().filter(|r| !r.passed()).count();
    if json {
        let probes: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.spec.name,
                    "netns": r.spec.netns,
                    "target": r.spec.target,
                    "bind": r.spec.bind,
                    "expect": if r.spec.expect == Expect::Reach { "reach" } else { "blocked" },
                    "outcome": r.outcome.to_string(),
                    "passed": r.passed(),
                })
            })
            .collect();
        print_json(&serde_json::json!({"passed": failed == 0, "probes": probes}))?;
    } else {
        print!("{}", render_table(&results));
    }
    anyhow::ensure!(failed == 0, "{failed} of {} probes failed", results.len());
    if !json {
        println!("All {} probes passed.", results.len());
    }
    Ok(())
}
