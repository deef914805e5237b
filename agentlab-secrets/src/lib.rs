//! # agentlab-secrets
//!
//! Secret bundles for AgentLab: YAML of [`SecretBundle`](agentlab_core::SecretBundle)
//! encrypted with [age](https://age-encryption.org) to one or more x25519 recipients, one
//! armored file per bundle (`<dir>/<name>.age`). [`AgeSecretStore`] implements
//! [`SecretStore`](agentlab_core::SecretStore) for the daemon and offers the management
//! operations behind `agentlab secrets …` (init, set, rm, show, rotate).
//!
//! On-disk layout (see `docs/secrets.md`):
//!
//! ```text
//! <dir>/                 0700
//!   <name>.age           0600  armored age file, YAML bundle inside
//!   recipients.txt       0600  default recipients (one `age1…` per line, `#` comments)
//!   <name>.recipients    0600  optional per-bundle override written by `rotate --bundle`
//! <identity>             0600  age-keygen style x25519 identity; refused if group/world readable
//! ```
//!
//! Decryption happens in memory only; plaintext buffers are zeroized after use.
//!
//! ```no_run
//! use agentlab_core::SecretStore;
//! use agentlab_secrets::AgeSecretStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = AgeSecretStore::new("/etc/agentlab/secrets", "/etc/agentlab/age.key");
//! let bundle = store.load("default").await?;
//! println!("{} env vars", bundle.env.len());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod admin;
mod codec;
mod error;
mod fsutil;
mod keys;
mod names;
mod store;
mod view;

pub use admin::{InitReport, Removal, RotateReport};
pub use error::SecretsError;
pub use keys::generate_identity_file;
pub use names::{validate_bundle_name, validate_env_key, validate_file_path};
pub use store::AgeSecretStore;
pub use view::redacted;
