//! The daemon configuration (`/etc/agentlab/config.yaml`), loaded as strictly as profiles.
//!
//! [`Config`] holds every daemon setting with a documented default (`docs/configuration.md`,
//! `examples/config.yaml`); unknown keys are errors with a "did you mean" suggestion, and
//! [`Config::validate`] checks ranges and cross-field rules (gateway inside the subnet, VMID
//! range fits the subnet, a `pve` section when `backend: pve`, exactly one token secret
//! source). The file's path comes from `--config`, else `AGENTLAB_CONFIG`, else
//! [`DEFAULT_CONFIG_PATH`] ([`resolve_path`]). Errors never contain the PVE token secret.

mod backends;
mod limits;
mod load;
mod metrics;
mod quotas;
mod remote;
mod schema;
mod validate;

pub use backends::{
    BootstrapDelivery, FakeConfig, LocalConfig, PveConfig, QemuAccel, QemuConfig, QemuMachine,
};
pub use limits::LimitsConfig;
pub use load::{CONFIG_ENV, ConfigError, DEFAULT_CONFIG_PATH, resolve_path};
pub use metrics::MetricsConfig;
pub use quotas::QuotasConfig;
pub use remote::RemoteConfig;
pub use schema::{
    BackendKind, Config, GuestListenerConfig, LogConfig, LogFormat, NetworkConfig, RetentionConfig,
    SecretsConfig, VmidRange,
};
