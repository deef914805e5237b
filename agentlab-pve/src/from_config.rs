//! Building [`PveOptions`] from the daemon's [`Config`] (`pve:` and `network:` sections), so
//! the daemon's wiring is one call.

use std::path::PathBuf;

use agentlab_core::config::{BootstrapDelivery as CoreDelivery, Config};

use crate::error::PveError;
use crate::options::{BootstrapDelivery, PveOptions, TlsOptions};

/// Where PVE keeps a storage's snippets: `/var/lib/vz/snippets` for `local`, otherwise the
/// mount point PVE uses for network storages (`/mnt/pve/<id>/snippets`).
pub fn default_snippets_dir(storage: &str) -> PathBuf {
    if storage == "local" {
        PathBuf::from("/var/lib/vz/snippets")
    } else {
        PathBuf::from(format!("/mnt/pve/{storage}/snippets"))
    }
}

impl PveOptions {
    /// Options from the daemon config: connection, TLS, storage, bootstrap and clone limit from
    /// `pve:`, the agent subnet and bridge from `network:`; everything else defaults.
    pub fn from_config(cfg: &Config) -> Result<Self, PveError> {
        let pve = cfg
            .pve
            .as_ref()
            .ok_or_else(|| PveError::Setup("backend pve needs a pve: section".into()))?;
        let secret = pve
            .resolve_token_secret()
            .map_err(|e| PveError::Setup(e.to_string()))?;
        let mut o = PveOptions::new(&pve.url, &pve.token_id, secret, &pve.storage);
        o.node.clone_from(&pve.node);
        o.tls = TlsOptions {
            ca_file: pve.ca_file.clone(),
            fingerprint: pve.fingerprint.clone(),
            insecure: pve.insecure,
        };
        o.bootstrap = match pve.bootstrap {
            CoreDelivery::Snippet => BootstrapDelivery::Snippet,
            _ => BootstrapDelivery::GuestAgent,
        };
        o.snippets_storage.clone_from(&pve.snippets_storage);
        o.snippets_dir = pve.snippets_storage.as_deref().map(default_snippets_dir);
        o.max_concurrent_clones = usize::try_from(pve.max_concurrent_clones.max(1)).unwrap_or(1);
        o.max_clones_per_node = usize::try_from(pve.max_clones_per_node.max(1)).unwrap_or(1);
        o.agent_subnet = ipnet::IpNet::V4(cfg.network.subnet);
        o.bridge = Some(cfg.network.bridge.clone());
        o.task_journal_dir = Some(cfg.data_dir.join("pve-tasks"));
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_daemon_config() {
        let yaml = "backend: pve\nnetwork:\n  bridge: agentlab0\n  subnet: 10.88.0.0/16\n  gateway: 10.88.0.1\npve:\n  url: https://pve1:8006\n  node: pve1\n  token_id: agentlab@pve!ci\n  token_secret: s3cret\n  fingerprint: \"AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB\"\n  storage: shared-nfs\n  snippets_storage: local\n  bootstrap: snippet\n  max_concurrent_clones: 2\n";
        let cfg = Config::from_yaml_str(yaml, "test").unwrap();
        let o = PveOptions::from_config(&cfg).unwrap();
        assert_eq!(
            (o.url.as_str(), o.node.as_str(), o.storage.as_str()),
            ("https://pve1:8006", "pve1", "shared-nfs")
        );
        assert_eq!(o.token_secret.expose(), "s3cret");
        assert_eq!(
            o.tls.fingerprint.as_deref(),
            Some(
                "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB"
            )
        );
        assert_eq!(o.bootstrap, BootstrapDelivery::Snippet);
        assert_eq!(o.snippets_dir, Some(PathBuf::from("/var/lib/vz/snippets")));
        assert_eq!(o.max_concurrent_clones, 2);
        assert_eq!(o.agent_subnet.to_string(), "10.88.0.0/16");
        assert_eq!(o.bridge.as_deref(), Some("agentlab0"));
        let no_pve = Config::from_yaml_str("backend: fake\n", "test").unwrap();
        assert!(matches!(
            PveOptions::from_config(&no_pve),
            Err(PveError::Setup(_))
        ));
    }
}
