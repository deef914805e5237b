//! Backend sections of the [`Config`](super::Config): `pve`, `local`, `qemu` and `fake`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::secrets::SecretValue;
use crate::yaml::{ErrorDetails, ErrorKind, yaml_enum};

use super::load::ConfigError;

yaml_enum!(
    /// How the bootstrap file reaches a PVE guest.
    BootstrapDelivery {
        /// Written into the guest's tmpfs through the QEMU guest agent (no token on host disk).
        #[default]
        GuestAgent => "guest_agent",
        /// A per-sandbox cloud-init snippet (for templates without a guest agent).
        Snippet => "snippet",
    }
);

/// `pve:` the Proxmox VE connection.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PveConfig {
    /// API base URL, e.g. `https://pve1.example:8006`.
    pub url: String,
    /// Node to create sandboxes on; `auto` (default) places them.
    #[serde(default = "default_node")]
    pub node: String,
    /// API token id, `USER@REALM!TOKENID`.
    pub token_id: String,
    /// The token secret inline (prefer `token_secret_file`). Never logged or shown.
    #[serde(default)]
    pub token_secret: Option<SecretValue>,
    /// File holding the token secret (mode 0600).
    #[serde(default)]
    pub token_secret_file: Option<PathBuf>,
    /// CA certificate to trust (e.g. a copy of `/etc/pve/pve-root-ca.pem`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Pinned SHA-256 certificate fingerprint (`AB:CD:…`, 32 bytes).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Skip TLS verification (loudly warned about; never with `ca_file`/`fingerprint`).
    #[serde(default)]
    pub insecure: bool,
    /// Storage for clones and workspace volumes (default `local-lvm`).
    #[serde(default = "default_storage")]
    pub storage: String,
    /// Storage with `snippets` content; required for `bootstrap: snippet`.
    #[serde(default)]
    pub snippets_storage: Option<String>,
    /// Bootstrap delivery (default `guest_agent`).
    #[serde(default)]
    pub bootstrap: BootstrapDelivery,
    /// Clones running at once (default 4).
    #[serde(default = "default_max_clones")]
    pub max_concurrent_clones: u32,
    /// Clone tasks running at once on one node (default 3); `node: auto` places new sandboxes
    /// on another usable node, or waits, when a node is at the limit.
    #[serde(default = "default_clones_per_node")]
    pub max_clones_per_node: u32,
}

fn default_node() -> String {
    "auto".to_owned()
}

fn default_storage() -> String {
    "local-lvm".to_owned()
}

fn default_max_clones() -> u32 {
    4
}

fn default_clones_per_node() -> u32 {
    3
}

impl std::fmt::Debug for PveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SecretValue already redacts; spelled out so the rule is visible here.
        f.debug_struct("PveConfig")
            .field("url", &self.url)
            .field("node", &self.node)
            .field("token_id", &self.token_id)
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("token_secret_file", &self.token_secret_file)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("insecure", &self.insecure)
            .field("storage", &self.storage)
            .field("snippets_storage", &self.snippets_storage)
            .field("bootstrap", &self.bootstrap)
            .field("max_concurrent_clones", &self.max_concurrent_clones)
            .field("max_clones_per_node", &self.max_clones_per_node)
            .finish()
    }
}

impl PveConfig {
    /// The node to pin to, or `None` for automatic placement (`auto`).
    pub fn pinned_node(&self) -> Option<&str> {
        Some(self.node.as_str()).filter(|n| *n != "auto")
    }

    /// The token secret: inline, or read from `token_secret_file` (surrounding whitespace
    /// trimmed). Errors name the file, never its content.
    pub fn resolve_token_secret(&self) -> Result<SecretValue, ConfigError> {
        if let Some(secret) = &self.token_secret {
            return Ok(secret.clone());
        }
        let Some(path) = &self.token_secret_file else {
            return Err(ErrorDetails::file(
                ErrorKind::Invalid,
                "<config>",
                "pve: set token_secret or token_secret_file",
            )
            .into());
        };
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::from(ErrorDetails::file(
                ErrorKind::Io,
                &file,
                format!("cannot read the PVE token secret file: {}", e.kind()),
            ))
        })?;
        let secret = SecretValue::new(text.trim());
        if secret.expose().is_empty() {
            return Err(ErrorDetails::file(
                ErrorKind::Invalid,
                &file,
                "the PVE token secret file is empty",
            )
            .into());
        }
        Ok(secret)
    }
}

/// `local:` the local (namespaces + bubblewrap) backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Read-only root filesystem; `None` = a read-only bind of the host's `/usr` with a
    /// minimal `/etc`.
    pub rootfs: Option<PathBuf>,
    /// `agent-runner` binary to run inside; `None` = the backend's built-in choice.
    pub runner_path: Option<PathBuf>,
    /// Bridge for local sandboxes (default `agentlab0`).
    pub bridge: String,
    /// Run sandboxes without resource limits when the host's cgroups cannot enforce them
    /// (default `false`: such a sandbox is refused, naming the missing controller).
    pub allow_unlimited: bool,
    /// First host uid/gid of the sandboxes' subordinate ranges: the sandbox in slot `n` maps
    /// its uids 0..65536 to `uid_base + n * 65536` (default 1879048192).
    pub uid_base: u32,
    /// How many 65536-id ranges (and so concurrent sandboxes) follow `uid_base` (default 4096).
    pub uid_slots: u32,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            rootfs: None,
            runner_path: None,
            bridge: "agentlab0".to_owned(),
            allow_unlimited: false,
            uid_base: 1_879_048_192,
            uid_slots: 4096,
        }
    }
}

/// `fake:` the in-memory backend (demos and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeConfig {
    /// Program (and arguments) started when a fake VM starts, with env `AGENTLAB_BOOTSTRAP`
    /// pointing at the bootstrap file; `None` = nothing runs.
    pub boot_command: Option<Vec<String>>,
    /// `agent-runner` binary for the boot command to use.
    pub runner_path: Option<PathBuf>,
    /// Working directory for fake VMs' files; `None` = the backend's built-in choice.
    pub work_dir: Option<PathBuf>,
    /// Sticky injected failures per operation (`create`, `configure`, `start`, `stop`,
    /// `destroy`, `status`, `guest_address`, `list_managed`, `used_ids`, `create_volume`,
    /// `delete_volume`, `attach_volume`, `detach_volume`) → error message. For tests.
    pub faults: std::collections::BTreeMap<String, String>,
    /// Added latency per operation in milliseconds (same names). For tests.
    pub latency_ms: std::collections::BTreeMap<String, u64>,
}

yaml_enum!(
    /// `qemu.accel`: how QEMU executes the guest.
    QemuAccel {
        /// KVM when the CPU has vmx/svm and `/dev/kvm` opens (and a probe VM runs), else TCG.
        #[default]
        Auto => "auto",
        /// Hardware virtualisation; refused at start-up when unavailable.
        Kvm => "kvm",
        /// QEMU's software emulation (slow, works everywhere).
        Tcg => "tcg",
    }
);

yaml_enum!(
    /// `qemu.machine`: the QEMU machine type.
    QemuMachine {
        /// A PC (SeaBIOS) booting the image's `disk.qcow2`, like a Proxmox template.
        #[default]
        Q35 => "q35",
        /// QEMU's minimal machine: direct boot of the image's kernel and initrd.
        Microvm => "microvm",
    }
);

/// `qemu:` the QEMU backend (real VMs on this host, driven over QMP and the guest agent).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QemuConfig {
    /// Image directory from `agentlab image build` (`disk.qcow2`, `vmlinuz`, `initrd.img`,
    /// `manifest.json`; default `/var/lib/agentlab/images/default`).
    pub image: PathBuf,
    /// The QEMU binary (default `qemu-system-x86_64`, looked up in `PATH`).
    pub binary: PathBuf,
    /// Acceleration (default `auto`).
    pub accel: QemuAccel,
    /// Machine type (default `q35`).
    pub machine: QemuMachine,
    /// Seconds a boot may take until the guest agent answers before the VM is killed
    /// (default 300, the engine's boot timeout).
    pub boot_timeout_secs: u64,
    /// Extra kernel command-line arguments for direct kernel boot (`microvm`).
    pub kernel_args: Option<String>,
}

impl Default for QemuConfig {
    fn default() -> Self {
        Self {
            image: PathBuf::from("/var/lib/agentlab/images/default"),
            binary: PathBuf::from("qemu-system-x86_64"),
            accel: QemuAccel::Auto,
            machine: QemuMachine::Q35,
            boot_timeout_secs: 300,
            kernel_args: None,
        }
    }
}
