//! Management operations behind `agentlab secrets …`: init, set, rm, show and rotate.
//!
//! All of them are blocking (file I/O and age); call them from `spawn_blocking` in async
//! code. Each modification decrypts the bundle, changes it in memory and re-encrypts it to the
//! bundle's recipients ([`AgeSecretStore::recipients_for`]) with an atomic replace. There is no
//! locking between concurrent writers: run management commands one at a time.

use age::x25519::Recipient;
use agentlab_core::{GitCredentials, SecretBundle, SecretFile, SecretValue};

use crate::error::SecretsError;
use crate::fsutil::{atomic_write, ensure_private_dir, remove_if_exists};
use crate::keys::{generate_identity_file, load_identities, parse_recipient, recipients_file_text};
use crate::names::{validate_bundle_name, validate_env_key, validate_file_path};
use crate::store::AgeSecretStore;
use crate::view::redacted;

/// What [`AgeSecretStore::init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// A new identity file was generated.
    pub identity_created: bool,
    /// `recipients.txt` was created with the identity's public key.
    pub recipients_created: bool,
    /// The (empty) bundle was created; `false` if it already existed.
    pub bundle_created: bool,
    /// Public keys (`age1…`) of the identity.
    pub public_keys: Vec<String>,
}

/// What [`AgeSecretStore::rm`] removes from a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// An environment variable.
    Env(String),
    /// The git credentials.
    Git,
    /// The Claude Code settings.
    ClaudeSettings,
    /// An extra file, by its path.
    File(String),
}

/// What [`AgeSecretStore::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// Bundles re-encrypted.
    pub bundles: Vec<String>,
    /// Whether the current identity can still decrypt them (it is among the new recipients).
    pub identity_can_decrypt: bool,
}

impl AgeSecretStore {
    /// Creates the identity (if absent), the directory (0700), `recipients.txt` (if absent,
    /// with the identity's public key) and an empty bundle `name` (if absent).
    pub fn init(&self, name: &str) -> Result<InitReport, SecretsError> {
        validate_bundle_name(name)?;
        let identity_created = !self.identity_path().exists();
        if identity_created {
            generate_identity_file(self.identity_path())?;
            tracing::info!(path = %self.identity_path().display(), "age identity created");
        }
        let publics: Vec<Recipient> = load_identities(self.identity_path())?
            .iter()
            .map(|i| i.to_public())
            .collect();
        ensure_private_dir(self.dir())?;
        let recipients_path = self.recipients_path();
        let recipients_created = !recipients_path.exists();
        if recipients_created {
            atomic_write(&recipients_path, recipients_file_text(&publics).as_bytes())?;
        }
        let bundle_created = !self.exists(name)?;
        if bundle_created {
            self.save(name, &SecretBundle::default())?;
        }
        Ok(InitReport {
            identity_created,
            recipients_created,
            bundle_created,
            public_keys: publics.iter().map(ToString::to_string).collect(),
        })
    }

    /// Public keys (`age1…`) of the identity file.
    pub fn public_keys(&self) -> Result<Vec<String>, SecretsError> {
        Ok(load_identities(self.identity_path())?
            .iter()
            .map(|i| i.to_public().to_string())
            .collect())
    }

    /// Decrypts bundle `name`, applies `change` and re-encrypts it.
    fn modify(
        &self,
        name: &str,
        change: impl FnOnce(&mut SecretBundle) -> Result<(), SecretsError>,
    ) -> Result<(), SecretsError> {
        let mut bundle = self.load_blocking(name)?;
        change(&mut bundle)?;
        self.save(name, &bundle)
    }

    /// Sets environment variable `key` (`[A-Z_][A-Z0-9_]*`) in bundle `name`.
    pub fn set_env(&self, name: &str, key: &str, value: SecretValue) -> Result<(), SecretsError> {
        validate_env_key(key)?;
        non_empty(&value, key)?;
        self.modify(name, |b| {
            b.env.insert(key.to_owned(), value);
            Ok(())
        })
    }

    /// Sets (replaces) the git credentials of bundle `name`.
    pub fn set_git(&self, name: &str, git: GitCredentials) -> Result<(), SecretsError> {
        match &git {
            GitCredentials::Https { token, .. } => non_empty(token, "git token")?,
            GitCredentials::Ssh { private_key, .. } => non_empty(private_key, "git SSH key")?,
        }
        self.modify(name, |b| {
            b.git = Some(git);
            Ok(())
        })
    }

    /// Sets the Claude Code `settings.json` of bundle `name` (must be valid JSON).
    pub fn set_claude_settings(&self, name: &str, json: SecretValue) -> Result<(), SecretsError> {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(json.expose()) {
            return Err(SecretsError::InvalidClaudeSettings {
                line: e.line(),
                column: e.column(),
            });
        }
        self.modify(name, |b| {
            b.claude_settings = Some(json);
            Ok(())
        })
    }

    /// Adds (or replaces, by path) an extra file in bundle `name`.
    pub fn add_file(&self, name: &str, file: SecretFile) -> Result<(), SecretsError> {
        validate_file_path(&file.path)?;
        self.modify(name, |b| {
            b.files.retain(|f| f.path != file.path);
            b.files.push(file);
            b.files.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(())
        })
    }

    /// Removes an item from bundle `name`; [`SecretsError::NotPresent`] if it is not there.
    pub fn rm(&self, name: &str, what: &Removal) -> Result<(), SecretsError> {
        self.modify(name, |b| {
            let present = match what {
                Removal::Env(key) => b.env.remove(key).is_some(),
                Removal::Git => b.git.take().is_some(),
                Removal::ClaudeSettings => b.claude_settings.take().is_some(),
                Removal::File(path) => {
                    let before = b.files.len();
                    b.files.retain(|f| &f.path != path);
                    b.files.len() != before
                }
            };
            if present {
                Ok(())
            } else {
                Err(SecretsError::NotPresent {
                    bundle: name.to_owned(),
                    item: describe(what),
                })
            }
        })
    }

    /// Bundle `name` with every secret value replaced by `[REDACTED]` (keys, usernames, file
    /// paths and known_hosts stay visible).
    pub fn show(&self, name: &str) -> Result<SecretBundle, SecretsError> {
        Ok(redacted(&self.load_blocking(name)?))
    }

    /// Bundle `name` with its values. Only for explicit `--reveal` requests.
    pub fn reveal(&self, name: &str) -> Result<SecretBundle, SecretsError> {
        self.load_blocking(name)
    }

    /// Re-encrypts bundle `name` (or all bundles if `None`) to `recipients` and records them:
    /// for all bundles in `recipients.txt` (dropping per-bundle overrides), for one bundle in
    /// `<name>.recipients`. Every bundle is decrypted before anything is written.
    pub fn rotate(
        &self,
        name: Option<&str>,
        recipients: &[String],
    ) -> Result<RotateReport, SecretsError> {
        let parsed = recipients
            .iter()
            .map(|r| parse_recipient(r))
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Err(SecretsError::NoRecipients);
        }
        let names = match name {
            Some(n) => vec![n.to_owned()],
            None => self.list_blocking()?,
        };
        let bundles = names
            .iter()
            .map(|n| self.load_blocking(n).map(|b| (n, b)))
            .collect::<Result<Vec<_>, _>>()?;
        for (n, bundle) in &bundles {
            self.write_bundle(n, bundle, &parsed)?;
        }
        let text = recipients_file_text(&parsed);
        match name {
            Some(n) => atomic_write(&self.bundle_recipients_path(n), text.as_bytes())?,
            None => {
                atomic_write(&self.recipients_path(), text.as_bytes())?;
                for n in &names {
                    remove_if_exists(&self.bundle_recipients_path(n))?;
                }
            }
        }
        let new: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        let identity_can_decrypt = self.public_keys()?.iter().any(|k| new.contains(k));
        tracing::info!(
            bundles = names.len(),
            recipients = new.len(),
            "secret bundles rotated"
        );
        Ok(RotateReport {
            bundles: names,
            identity_can_decrypt,
        })
    }
}

fn non_empty(value: &SecretValue, what: &str) -> Result<(), SecretsError> {
    if value.expose().is_empty() {
        Err(SecretsError::EmptyValue(what.to_owned()))
    } else {
        Ok(())
    }
}

fn describe(what: &Removal) -> String {
    match what {
        Removal::Env(key) => format!("env var {key:?}"),
        Removal::Git => "git credentials".to_owned(),
        Removal::ClaudeSettings => "Claude settings".to_owned(),
        Removal::File(path) => format!("file {path:?}"),
    }
}
