//! The [`SecretStore`] trait and the secret types it hands out.
//!
//! Secret values are wrapped in [`SecretValue`]: `Debug` and `Display` print `[REDACTED]`, the
//! memory is zeroized on drop, and the raw text is reachable only through
//! [`SecretValue::expose`]. Serialization writes the raw value, because bundles must travel to
//! the guest; never serialize a bundle into logs, events or the database.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A secret string. Redacted in `Debug`/`Display`, zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The raw secret. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Git credentials for cloning private repositories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GitCredentials {
    /// HTTPS with a username and token (used through a credential helper, never in URLs).
    Https {
        /// Username (often `x-access-token` or `oauth2`).
        username: String,
        /// The token.
        token: SecretValue,
    },
    /// SSH deploy key.
    Ssh {
        /// Private key in OpenSSH format.
        private_key: SecretValue,
        /// `known_hosts` lines to trust.
        #[serde(default)]
        known_hosts: Option<String>,
    },
}

/// An extra file to place in the guest (mode defaults to 0600).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    /// Path relative to the guest's secrets directory.
    pub path: String,
    /// File mode, e.g. `0o600`.
    #[serde(default)]
    pub mode: Option<u32>,
    /// Content.
    pub content: SecretValue,
}

/// A named set of secrets handed to one job's guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBundle {
    /// Environment variables for the agent (LLM keys, …).
    #[serde(default)]
    pub env: BTreeMap<String, SecretValue>,
    /// Git credentials.
    #[serde(default)]
    pub git: Option<GitCredentials>,
    /// Claude Code `settings.json` content.
    #[serde(default)]
    pub claude_settings: Option<SecretValue>,
    /// Extra files.
    #[serde(default)]
    pub files: Vec<SecretFile>,
}

impl SecretBundle {
    /// Every secret value in the bundle, for redaction.
    pub fn values(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.env.values().map(SecretValue::expose).collect();
        match &self.git {
            Some(GitCredentials::Https { token, .. }) => out.push(token.expose()),
            Some(GitCredentials::Ssh { private_key, .. }) => out.push(private_key.expose()),
            None => {}
        }
        if let Some(c) = &self.claude_settings {
            out.push(c.expose());
        }
        out.extend(self.files.iter().map(|f| f.content.expose()));
        out.retain(|v| !v.is_empty());
        out
    }
}

/// Errors of a [`SecretStore`].
#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// No bundle with that name.
    #[error("Secret bundle {0:?} not found")]
    NotFound(String),
    /// The bundle exists but cannot be read (permissions, bad identity, corrupt file).
    #[error("Secret bundle {name:?} is unreadable: {reason}")]
    Unreadable {
        /// Bundle name.
        name: String,
        /// Why (never contains secret values).
        reason: String,
    },
    /// The store itself is unavailable.
    #[error("Secret store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where secret bundles come from.
#[async_trait]
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// Loads and decrypts the bundle `name` (in memory only).
    async fn load(&self, name: &str) -> Result<SecretBundle, SecretStoreError>;
    /// Names of the available bundles, sorted.
    async fn list(&self) -> Result<Vec<String>, SecretStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let mut b = SecretBundle::default();
        b.env.insert(
            "ANTHROPIC_API_KEY".into(),
            SecretValue::new("sk-very-secret"),
        );
        b.git = Some(GitCredentials::Https {
            username: "x".into(),
            token: SecretValue::new("ghp_secret"),
        });
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("sk-very-secret"));
        assert!(!dbg.contains("ghp_secret"));
        assert!(dbg.contains("[REDACTED]"));
        assert_eq!(b.values(), vec!["sk-very-secret", "ghp_secret"]);
    }
}
