//! `agentlab uninstall`: reverses `agentlab init`. Stops and disables agentlabd.service,
//! removes the unit, the tmpfiles.d entry, the socket directory and the installed binaries;
//! with `--purge` also `/etc/agentlab` (config, profiles, secrets identity), the data
//! directory and the `agentlab` group. Idempotent; `--dry-run` changes nothing.

use crate::commands::init::{self, CommonArgs, plan};
use crate::exit::Code;

/// Arguments of `agentlab uninstall`.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Also remove /etc/agentlab (config, profiles, secrets identity and bundles), the data
    /// directory (state database, artifacts, images) and the agentlab group.
    #[arg(long)]
    purge: bool,
}

/// Runs `agentlab uninstall`.
pub async fn run(args: UninstallArgs, json: bool) -> anyhow::Result<Code> {
    tokio::task::spawn_blocking(move || {
        let host = init::host_for(&args.common)?;
        // The data directory and secret paths come from the config when it can be read.
        let cfg = match plan::existing_config(&host) {
            Ok(Some(c)) => c,
            Ok(None) => agentlab_core::config::Config::default(),
            Err(e) => {
                eprintln!("agentlab uninstall: {e:#}; using the default paths");
                agentlab_core::config::Config::default()
            }
        };
        // Without systemd nothing here can stop a daemon started by hand: refuse to pull its
        // binaries and socket directory from under it.
        if host.root.is_none()
            && !host.systemd
            && !args.common.dry_run
            && std::os::unix::net::UnixStream::connect(&cfg.socket).is_ok()
        {
            anyhow::bail!(
                "agentlabd answers on {} and systemd does not run it: stop the daemon first",
                cfg.socket.display()
            );
        }
        let steps = plan::uninstall_steps(&host, &cfg, args.purge);
        init::execute(&host, &steps, args.common.dry_run, json)
    })
    .await?
}
