//! The answers `init` needs (backend, bridge, Proxmox connection): from flags, from
//! questions on a terminal, else defaults; and the config file written from them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use agentlab_core::config::BackendKind;

/// Flags of `agentlab init` that answer its questions.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AnswerArgs {
    /// Backend of the new config: local, qemu, pve or fake [default: local].
    #[arg(long, value_parser = ["local", "qemu", "pve", "fake"])]
    pub backend: Option<String>,
    /// Agent bridge [default: agentlab0; vmbr1 for pve].
    #[arg(long)]
    pub bridge: Option<String>,
    /// Proxmox API URL, https://HOST:8006 (backend pve).
    #[arg(long, value_name = "URL")]
    pub pve_url: Option<String>,
    /// Proxmox node for sandboxes [default: auto].
    #[arg(long, value_name = "NODE")]
    pub pve_node: Option<String>,
    /// Proxmox API token id, USER@REALM!TOKENID (default: agentlab@pve!agentlab).
    #[arg(long, value_name = "ID")]
    pub pve_token_id: Option<String>,
    /// File holding the token secret [default: /etc/agentlab/pve-token.secret].
    #[arg(long, value_name = "FILE")]
    pub pve_token_secret_file: Option<PathBuf>,
    /// Proxmox storage for clones and workspaces [default: local-lvm].
    #[arg(long, value_name = "STORAGE")]
    pub pve_storage: Option<String>,
    /// CA certificate of the Proxmox API (a copy of /etc/pve/pve-root-ca.pem).
    #[arg(long, value_name = "FILE")]
    pub pve_ca_file: Option<PathBuf>,
    /// Do not ask anything: flags, else defaults (also when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The Proxmox part of the answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PveAnswers {
    /// `pve.url`.
    pub url: String,
    /// `pve.node`.
    pub node: String,
    /// `pve.token_id`.
    pub token_id: String,
    /// `pve.token_secret_file`.
    pub token_secret_file: PathBuf,
    /// `pve.storage`.
    pub storage: String,
    /// `pve.ca_file`.
    pub ca_file: Option<PathBuf>,
}

/// Everything the new config is written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    /// `backend`.
    pub backend: BackendKind,
    /// `network.bridge` (and `local.bridge`).
    pub bridge: String,
    /// `pve:` for backend pve.
    pub pve: Option<PveAnswers>,
}

/// Reads answers from flags, asking on a terminal for what is missing unless `--yes`.
pub fn gather(args: &AnswerArgs) -> anyhow::Result<Answers> {
    let interactive =
        !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let ask = |question: &str, default: &str| -> anyhow::Result<String> {
        if !interactive {
            return Ok(default.to_owned());
        }
        eprint!("{question} [{default}]: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.trim();
        Ok(if line.is_empty() { default } else { line }.to_owned())
    };
    let backend = match &args.backend {
        Some(b) => b.clone(),
        None => ask("Backend (local, qemu, pve, fake)", "local")?,
    };
    let backend: BackendKind = match backend.as_str() {
        "local" => BackendKind::Local,
        "qemu" => BackendKind::Qemu,
        "pve" => BackendKind::Pve,
        "fake" => BackendKind::Fake,
        other => anyhow::bail!("unknown backend {other:?}: local, qemu, pve or fake"),
    };
    let default_bridge = if backend == BackendKind::Pve {
        "vmbr1"
    } else {
        "agentlab0"
    };
    let bridge = match &args.bridge {
        Some(b) => b.clone(),
        None => ask("Agent bridge", default_bridge)?,
    };
    let pve = if backend == BackendKind::Pve {
        let value = |flag: &Option<String>, q: &str, d: &str| match flag {
            Some(v) => Ok(v.clone()),
            None => ask(q, d),
        };
        let url = value(&args.pve_url, "Proxmox API URL", "")?;
        if url.is_empty() {
            anyhow::bail!("backend pve needs the API URL: pass --pve-url https://HOST:8006");
        }
        Some(PveAnswers {
            url,
            node: value(&args.pve_node, "Proxmox node", "auto")?,
            token_id: value(&args.pve_token_id, "API token id", "agentlab@pve!agentlab")?,
            token_secret_file: args
                .pve_token_secret_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(PVE_SECRET_FILE)),
            storage: value(&args.pve_storage, "Storage", "local-lvm")?,
            ca_file: args.pve_ca_file.clone(),
        })
    } else {
        None
    };
    Ok(Answers {
        backend,
        bridge,
        pve,
    })
}

/// Default `pve.token_secret_file`.
pub const PVE_SECRET_FILE: &str = "/etc/agentlab/pve-token.secret";

impl Answers {
    /// The text of `/etc/agentlab/config.yaml`.
    pub fn config_text(&self) -> String {
        let mut s = String::from(
            "# AgentLab daemon configuration, written by `agentlab init`. Edit freely: init\n\
             # never overwrites this file. Every key: docs/configuration.md; a commented\n\
             # example with all of them: examples/config.yaml.\n",
        );
        s.push_str(&format!("backend: {}\n", self.backend));
        s.push_str("# Members of this group may use the control socket (the CLI).\n");
        s.push_str(&format!("socket_group: {}\n", super::host::GROUP));
        s.push_str(&format!("network:\n  bridge: {}\n", self.bridge));
        match self.backend {
            BackendKind::Local => {
                s.push_str(&format!("local:\n  bridge: {}\n", self.bridge));
            }
            BackendKind::Qemu => s.push_str(
                "qemu:\n  # Build it with: sudo agentlab image build --out /var/lib/agentlab/images/default\n  \
                 image: /var/lib/agentlab/images/default\n  accel: auto\n  machine: q35\n",
            ),
            BackendKind::Pve => {
                if let Some(p) = &self.pve {
                    s.push_str(&format!(
                        "pve:\n  url: {}\n  node: {}\n  token_id: {:?}\n  token_secret_file: {}\n  storage: {}\n",
                        p.url,
                        p.node,
                        p.token_id,
                        p.token_secret_file.display(),
                        p.storage
                    ));
                    if let Some(ca) = &p.ca_file {
                        s.push_str(&format!("  ca_file: {}\n", ca.display()));
                    }
                }
            }
            BackendKind::Fake => {}
        }
        s
    }

    /// The shipped profiles, with their bridge set to ours.
    pub fn profiles_text(&self) -> String {
        PROFILES.replace("bridge: vmbr1", &format!("bridge: {}", self.bridge))
    }
}

/// `profiles/defaults.yaml` as shipped.
const PROFILES: &str = include_str!("../../../../../profiles/defaults.yaml");

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(backend: BackendKind) -> Answers {
        Answers {
            backend,
            bridge: "agentlab0".into(),
            pve: (backend == BackendKind::Pve).then(|| PveAnswers {
                url: "https://pve.example:8006".into(),
                node: "auto".into(),
                token_id: "agentlab@pve!agentlab".into(),
                token_secret_file: PVE_SECRET_FILE.into(),
                storage: "local-lvm".into(),
                ca_file: Some("/etc/agentlab/pve-ca.pem".into()),
            }),
        }
    }

    #[test]
    fn every_backend_config_is_valid_and_says_what_was_answered() {
        for b in [
            BackendKind::Local,
            BackendKind::Qemu,
            BackendKind::Pve,
            BackendKind::Fake,
        ] {
            let text = answers(b).config_text();
            let cfg = agentlab_core::config::Config::from_yaml_str(&text, "init")
                .unwrap_or_else(|e| panic!("{b}: {e}\n{text}"));
            assert_eq!(cfg.backend, b);
            assert_eq!(cfg.socket_group.as_deref(), Some("agentlab"));
            assert_eq!(cfg.network.bridge, "agentlab0");
            if b == BackendKind::Local {
                assert_eq!(cfg.local.bridge, "agentlab0");
            }
            if b == BackendKind::Pve {
                let pve = cfg.pve.expect("pve section");
                assert_eq!(pve.token_id, "agentlab@pve!agentlab");
                assert_eq!(pve.token_secret_file, Some(PVE_SECRET_FILE.into()));
            }
        }
    }

    #[test]
    fn profiles_follow_the_bridge_and_stay_valid() {
        let text = answers(BackendKind::Local).profiles_text();
        assert!(!text.contains("vmbr1"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("defaults.yaml"), &text).unwrap();
        let p = agentlab_core::profile::Profiles::load_dir(dir.path()).unwrap();
        assert_eq!(p.names().len(), 3);
    }
}
