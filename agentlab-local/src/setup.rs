//! Daemon wiring for `backend: local`: [`LocalHypervisor::from_config`] builds the options from
//! the config, checks the tools, creates the agent bridge (`local.bridge`, addressed with
//! `network.gateway`/`network.subnet`) and enables forwarding.

use std::net::Ipv6Addr;
use std::path::Path;

use agentlab_core::config::Config;
use agentlab_net::NetConfig;
use tracing::warn;

use crate::error::LocalError;
use crate::hypervisor::LocalHypervisor;
use crate::net::setup_bridge;
use crate::options::LocalOptions;

/// The bridge settings for `cfg`: `local.bridge` with the `network:` subnets and gateways.
pub fn bridge_net_config(cfg: &Config) -> NetConfig {
    let n = &cfg.network;
    NetConfig {
        bridge: cfg.local.bridge.clone(),
        subnet_v4: n.subnet,
        gateway_v4: n.gateway,
        subnet_v6: n.subnet6,
        gateway_v6: n
            .subnet6
            .map(|net| Ipv6Addr::from(u128::from(net.network()).wrapping_add(1))),
        ..NetConfig::default()
    }
}

/// Fails unless the programs the backend runs exist.
pub(crate) fn check_tools(opts: &LocalOptions) -> Result<(), LocalError> {
    let tools = [
        opts.bwrap_path.as_path(),
        Path::new("/usr/bin/nsenter"),
        Path::new("/usr/bin/setsid"),
        Path::new("/usr/bin/unshare"),
    ];
    if let Some(t) = tools.iter().find(|t| !t.exists()) {
        return Err(LocalError::Missing(format!(
            "{} not found (apt-get install bubblewrap util-linux iproute2)",
            t.display()
        )));
    }
    if !opts.runner_path.is_file() {
        return Err(LocalError::Missing(format!(
            "agent-runner not found at {} (set local.runner_path)",
            opts.runner_path.display()
        )));
    }
    Ok(())
}

impl LocalHypervisor {
    /// The backend for the daemon config `cfg` ([`LocalOptions::from_config`]), after
    /// checking `bwrap`/`nsenter`/`setsid`/the runner, creating the state directory and the
    /// bridge [`bridge_net_config`] (idempotent) and enabling forwarding. Needs root.
    pub async fn from_config(cfg: &Config) -> Result<Self, LocalError> {
        let opts = LocalOptions::from_config(cfg);
        if cfg.network.bridge != cfg.local.bridge {
            warn!(local_bridge = %cfg.local.bridge, network_bridge = %cfg.network.bridge,
                "local.bridge differs from network.bridge: the firewall filters network.bridge");
        }
        let net = bridge_net_config(cfg);
        let checked = opts.clone();
        tokio::task::spawn_blocking(move || {
            check_tools(&checked)?;
            crate::layout::Layout::mkdir(&checked.state_dir)?;
            // Root only: sandbox homes and volumes below may hold files an agent made setuid.
            let perms = std::os::unix::fs::PermissionsExt::from_mode(0o700);
            std::fs::set_permissions(&checked.state_dir, perms)
                .map_err(LocalError::io("chmod", &checked.state_dir))?;
            setup_bridge(&net, checked.bridge_netns.as_deref())
        })
        .await
        .map_err(|e| LocalError::Missing(format!("Setup task failed: {e}")))??;
        Ok(Self::new(opts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_maps_onto_options_and_bridge() {
        let yaml = "backend: local\ndata_dir: /var/lib/al\nnetwork:\n  bridge: agentlab0\n  subnet: 10.88.0.0/16\n  gateway: 10.88.0.1\nlocal:\n  runner_path: /opt/agent-runner\n";
        let cfg = Config::from_yaml_str(yaml, "test").unwrap();
        let opts = LocalOptions::from_config(&cfg);
        assert_eq!(opts.state_dir, Path::new("/var/lib/al/local"));
        assert_eq!(opts.runner_path, Path::new("/opt/agent-runner"));
        assert_eq!(opts.bridge, "agentlab0");
        let net = bridge_net_config(&cfg);
        assert_eq!(net.bridge, "agentlab0");
        assert_eq!(net.gateway_v4.to_string(), "10.88.0.1");
        assert_eq!(
            net.gateway_v6, None,
            "sandboxes get no IPv6 (network.subnet6 is refused)"
        );
        net.validate().unwrap();
    }

    #[test]
    fn missing_tools_are_reported_by_name() {
        let mut opts = LocalOptions::new("/tmp/x", "/nonexistent/agent-runner");
        opts.bwrap_path = "/nonexistent/bwrap".into();
        let err = check_tools(&opts).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/bwrap"), "{err}");
    }
}
