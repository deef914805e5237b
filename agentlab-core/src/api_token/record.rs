//! API token records, issuing and checking.
//!
//! A token's text is `alab_<id>_<secret>`: `id` (12 lowercase hex characters) names the record
//! and is safe to show and log; `secret` is 256 random bits (base64url) of which only the
//! SHA-256 is stored. Checking looks the record up by id and compares the secret's hash in
//! constant time, then refuses revoked and expired tokens with their own reasons.

use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::scope::{Required, Scope};
use crate::secrets::SecretValue;
use crate::time::Timestamp;
use crate::token::{generate_token, hash_token, token_matches};

/// How every token's text starts.
pub const TOKEN_PREFIX: &str = "alab_";

/// A stored API token (no secret: only its hash, which never leaves the daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Public id (12 hex characters), shown by `token list` and used by `token revoke`.
    pub id: String,
    /// Operator-chosen name (unique among tokens not revoked).
    pub name: String,
    /// What the token may do.
    pub scopes: Vec<Scope>,
    /// Profiles the token may create sandboxes and jobs with; empty means every profile.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working; `None` for a token issued with `--ttl never`.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// When a request last presented it (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
    /// SHA-256 of the secret part, lowercase hex.
    #[serde(skip)]
    pub hash: String,
}

/// Why a presented token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Not of the form `alab_<id>_<secret>`.
    #[error("the token is malformed (expected alab_<id>_<secret>)")]
    Malformed,
    /// No such token, or the secret does not match.
    #[error("the token is not valid")]
    Unknown,
    /// Revoked.
    #[error("the token {name:?} ({id}) was revoked")]
    Revoked {
        /// Token id.
        id: String,
        /// Token name.
        name: String,
    },
    /// Past its expiry.
    #[error("the token {name:?} ({id}) expired at {expired_at}")]
    Expired {
        /// Token id.
        id: String,
        /// Token name.
        name: String,
        /// When.
        expired_at: Timestamp,
    },
}

impl TokenRefusal {
    /// Stable machine code for the API's error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed | Self::Unknown => "token_invalid",
            Self::Revoked { .. } => "token_revoked",
            Self::Expired { .. } => "token_expired",
        }
    }
}

/// What `token create` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    /// Name (1–64 characters of `[A-Za-z0-9._-]`).
    pub name: String,
    /// Scopes (at least one).
    pub scopes: Vec<Scope>,
    /// Profile limit (empty: every profile).
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Lifetime in seconds; `None` never expires.
    pub ttl_secs: Option<u64>,
}

/// The answer to `POST /v1/tokens`: the record and, this once, the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedApiToken {
    /// The token text to give the client (`alab_<id>_<secret>`); never shown again.
    pub token: String,
    /// The stored record.
    #[serde(flatten)]
    pub record: ApiToken,
}

/// Why a token cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// Bad name.
    #[error("token name {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    Name(String),
    /// No scope.
    #[error("a token needs at least one --scope")]
    NoScope,
    /// TTL zero or too large.
    #[error("ttl must be between 1 second and 10 years")]
    Ttl,
}

impl NewApiToken {
    /// Issues the token at `now`: the record to store and the one-time token text.
    pub fn issue(&self, now: Timestamp) -> Result<(ApiToken, SecretValue), IssueError> {
        let name_ok = (1..=64).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(IssueError::Name(self.name.clone()));
        }
        if self.scopes.is_empty() {
            return Err(IssueError::NoScope);
        }
        let expires_at = match self.ttl_secs {
            None => None,
            Some(s) if s == 0 || s > 10 * 366 * 86_400 => return Err(IssueError::Ttl),
            Some(s) => Some(now + chrono::Duration::seconds(i64::try_from(s).unwrap_or(0))),
        };
        let mut id_bytes = [0u8; 6];
        rand::thread_rng().fill_bytes(&mut id_bytes);
        let id = hex::encode(id_bytes);
        let secret = generate_token();
        let record = ApiToken {
            id: id.clone(),
            name: self.name.clone(),
            scopes: self.scopes.clone(),
            profiles: self.profiles.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            hash: hash_token(secret.expose()),
        };
        let text = SecretValue::new(format!("{TOKEN_PREFIX}{id}_{}", secret.expose()));
        Ok((record, text))
    }
}

/// Splits a presented token into its id and secret parts.
pub fn split_token(presented: &str) -> Result<(&str, &str), TokenRefusal> {
    let rest = presented
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenRefusal::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(TokenRefusal::Malformed)?;
    let id_ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !id_ok || secret.is_empty() || secret.len() > 128 {
        return Err(TokenRefusal::Malformed);
    }
    Ok((id, secret))
}

impl ApiToken {
    /// Checks `secret` against this record at `now`.
    pub fn check(&self, secret: &str, now: Timestamp) -> Result<(), TokenRefusal> {
        if !token_matches(secret, &self.hash) {
            return Err(TokenRefusal::Unknown);
        }
        if self.revoked_at.is_some() {
            return Err(TokenRefusal::Revoked {
                id: self.id.clone(),
                name: self.name.clone(),
            });
        }
        if let Some(at) = self.expires_at
            && at <= now
        {
            return Err(TokenRefusal::Expired {
                id: self.id.clone(),
                name: self.name.clone(),
                expired_at: at,
            });
        }
        Ok(())
    }

    /// Whether one of the token's scopes covers `required`.
    pub fn allows(&self, required: Required) -> bool {
        self.scopes.iter().any(|s| s.allows(required))
    }

    /// Whether the token may use `profile` (for creating sandboxes and jobs).
    pub fn allows_profile(&self, profile: &str) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|p| p == profile)
    }

    /// Whether the token works at `now` (neither revoked nor expired).
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Parses a lifetime: `30d`, `12h`, `90m`, `45s`, `2w`, or `never` (`None`).
pub fn parse_ttl(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    if t == "never" {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("ttl {text:?}: expected a number and a unit (s, m, h, d, w) or never")
    })?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "ttl {text:?}: unknown unit {unit:?} (use s, m, h, d or w, or never)"
            ));
        }
    };
    if n == 0 {
        return Err(format!("ttl {text:?} must be positive"));
    }
    Ok(Some(Duration::from_secs(n.saturating_mul(secs))))
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
