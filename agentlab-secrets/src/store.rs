//! [`AgeSecretStore`]: age-encrypted bundle files in a directory, implementing
//! [`SecretStore`].
//!
//! Every `load` re-reads the identity (so permission fixes and key rotations take effect
//! without a restart) and decrypts on a blocking thread. Nothing is cached.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use age::x25519::Recipient;
use agentlab_core::{SecretBundle, SecretStore, SecretStoreError};
use async_trait::async_trait;

use crate::codec::{decrypt_bundle, encrypt_bundle};
use crate::error::SecretsError;
use crate::fsutil::atomic_write;
use crate::keys::{load_identities, parse_recipients};
use crate::names::validate_bundle_name;

/// File name of the default recipients list inside the bundle directory.
pub(crate) const RECIPIENTS_FILE: &str = "recipients.txt";

/// Secret bundles stored as `<dir>/<name>.age`, decrypted with the identity at
/// `identity_path`.
#[derive(Debug, Clone)]
pub struct AgeSecretStore {
    dir: PathBuf,
    identity_path: PathBuf,
}

impl AgeSecretStore {
    /// A store over `dir` using the identity file at `identity_path`. Touches nothing on disk.
    pub fn new(dir: impl Into<PathBuf>, identity_path: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            identity_path: identity_path.into(),
        }
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identity file.
    pub fn identity_path(&self) -> &Path {
        &self.identity_path
    }

    /// Path of bundle `name` (validated).
    pub fn bundle_path(&self, name: &str) -> Result<PathBuf, SecretsError> {
        validate_bundle_name(name)?;
        Ok(self.dir.join(format!("{name}.age")))
    }

    /// Path of the default recipients list, `<dir>/recipients.txt`.
    pub fn recipients_path(&self) -> PathBuf {
        self.dir.join(RECIPIENTS_FILE)
    }

    /// Path of the per-bundle recipients override, `<dir>/<name>.recipients`.
    pub(crate) fn bundle_recipients_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.recipients"))
    }

    /// Whether bundle `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool, SecretsError> {
        Ok(self.bundle_path(name)?.is_file())
    }

    /// Decrypts bundle `name` (blocking; use [`SecretStore::load`] from async code).
    pub fn load_blocking(&self, name: &str) -> Result<SecretBundle, SecretsError> {
        let path = self.bundle_path(name)?;
        let ciphertext = match fs::read(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(SecretsError::BundleNotFound(name.to_owned()));
            }
            Err(e) => return Err(SecretsError::Io { path, source: e }),
        };
        let identities = load_identities(&self.identity_path)?;
        decrypt_bundle(name, &ciphertext, &identities)
    }

    /// Sorted names of the bundles in the directory (empty if it does not exist; blocking).
    pub fn list_blocking(&self) -> Result<Vec<String>, SecretsError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(SecretsError::Io {
                    path: self.dir.clone(),
                    source: e,
                });
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(SecretsError::io(&self.dir))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".age")) else {
                continue;
            };
            if validate_bundle_name(name).is_ok() && entry.path().is_file() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The recipients bundle `name` is encrypted to on save: `<name>.recipients` if present,
    /// else `recipients.txt`, else the public keys of the identity file.
    pub fn recipients_for(&self, name: &str) -> Result<Vec<Recipient>, SecretsError> {
        for path in [self.bundle_recipients_path(name), self.recipients_path()] {
            match fs::read_to_string(&path) {
                Ok(text) => {
                    let list = parse_recipients(&text)?;
                    if list.is_empty() {
                        return Err(SecretsError::NoRecipients);
                    }
                    return Ok(list);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(SecretsError::Io { path, source: e }),
            }
        }
        Ok(load_identities(&self.identity_path)?
            .iter()
            .map(|i| i.to_public())
            .collect())
    }

    /// Encrypts `bundle` to `recipients` and writes it atomically as bundle `name` (blocking).
    pub(crate) fn write_bundle(
        &self,
        name: &str,
        bundle: &SecretBundle,
        recipients: &[Recipient],
    ) -> Result<(), SecretsError> {
        let path = self.bundle_path(name)?;
        let ciphertext = encrypt_bundle(name, bundle, recipients)?;
        atomic_write(&path, &ciphertext)?;
        tracing::debug!(
            bundle = name,
            recipients = recipients.len(),
            "secret bundle written"
        );
        Ok(())
    }

    /// Encrypts `bundle` to its configured recipients and writes it as bundle `name`
    /// (blocking).
    pub fn save(&self, name: &str, bundle: &SecretBundle) -> Result<(), SecretsError> {
        validate_bundle_name(name)?;
        let recipients = self.recipients_for(name)?;
        self.write_bundle(name, bundle, &recipients)
    }
}

fn to_store_error(name: &str, e: SecretsError) -> SecretStoreError {
    match e {
        SecretsError::BundleNotFound(_) | SecretsError::InvalidBundleName(_) => {
            SecretStoreError::NotFound(name.to_owned())
        }
        SecretsError::Io { ref source, .. } if source.kind() != ErrorKind::PermissionDenied => {
            SecretStoreError::Unavailable(Box::new(e))
        }
        other => SecretStoreError::Unreadable {
            name: name.to_owned(),
            reason: other.to_string(),
        },
    }
}

#[async_trait]
impl SecretStore for AgeSecretStore {
    async fn load(&self, name: &str) -> Result<SecretBundle, SecretStoreError> {
        let store = self.clone();
        let owned = name.to_owned();
        let result = tokio::task::spawn_blocking(move || store.load_blocking(&owned))
            .await
            .map_err(|e| SecretStoreError::Unavailable(Box::new(e)))?;
        result.map_err(|e| {
            tracing::warn!(bundle = name, error = %e, "cannot load secret bundle");
            to_store_error(name, e)
        })
    }

    async fn list(&self) -> Result<Vec<String>, SecretStoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.list_blocking())
            .await
            .map_err(|e| SecretStoreError::Unavailable(Box::new(e)))?
            .map_err(|e| SecretStoreError::Unavailable(Box::new(e)))
    }
}
