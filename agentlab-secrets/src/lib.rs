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
//!
//! The whole round trip in a temporary directory — what `agentlab secrets init` and
//! `set-env` do, then the daemon's read — with the bundle encrypted on disk:
//!
//! ```
//! use agentlab_core::{SecretStore, SecretValue};
//! use agentlab_secrets::AgeSecretStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = AgeSecretStore::new(dir.path().join("secrets"), dir.path().join("age.key"));
//! store.init("default")?; // identity, recipients.txt and an empty bundle
//! store.set_env("default", "ANTHROPIC_API_KEY", SecretValue::new("sk-example-123"))?;
//!
//! let on_disk = std::fs::read_to_string(dir.path().join("secrets/default.age"))?;
//! assert!(on_disk.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
//! assert!(!on_disk.contains("sk-example-123"));
//!
//! let bundle = store.load("default").await?;
//! assert_eq!(bundle.env["ANTHROPIC_API_KEY"].expose(), "sk-example-123");
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
