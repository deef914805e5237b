//! Validation of control API request bodies against the daemon's [`LimitsConfig`]: repository
//! URLs, git refs, sandbox names, lease lengths and workspace sizes. A request that fails
//! gets a [`RequestError`] naming the field and the rule, before anything is provisioned.

use crate::config::LimitsConfig;

use super::control::{
    CreateSandboxRequest, CreateWorkspaceRequest, RebindWorkspaceRequest, RunJobRequest,
};

/// Longest repository URL accepted.
pub const MAX_REPO_URL_LEN: usize = 2048;
/// Longest git ref accepted.
pub const MAX_GIT_REF_LEN: usize = 255;
/// Longest sandbox name accepted.
pub const MAX_SANDBOX_NAME_LEN: usize = 63;

/// Why a request body was refused; [`RequestError::code`] is the API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The repository URL is malformed, uses a refused scheme or could be read as an option.
    #[error("Invalid repo URL: {reason}")]
    RepoUrl {
        /// Why.
        reason: String,
    },
    /// The git ref breaks a `git check-ref-format` rule or could be read as an option.
    #[error("Invalid git_ref: {reason}")]
    GitRef {
        /// Why.
        reason: String,
    },
    /// The sandbox name has characters outside the allowed set or is too long.
    #[error("Invalid sandbox name: {reason}")]
    Name {
        /// Why.
        reason: String,
    },
    /// A number outside its bounds.
    #[error("{field} must be between {min} and {max} (got {value})")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// The value given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed (from `limits:` where configurable).
        max: u64,
    },
}

impl RequestError {
    /// The stable API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RepoUrl { .. } => "invalid_repo_url",
            Self::GitRef { .. } => "invalid_git_ref",
            Self::Name { .. } => "invalid_name",
            Self::OutOfRange { .. } => "out_of_range",
        }
    }

    /// Structured details for the error envelope.
    pub fn details(&self) -> serde_json::Value {
        match self {
            Self::RepoUrl { .. } => serde_json::json!({"field": "repo"}),
            Self::GitRef { .. } => serde_json::json!({"field": "git_ref"}),
            Self::Name { .. } => serde_json::json!({"field": "name"}),
            Self::OutOfRange {
                field,
                value,
                min,
                max,
            } => serde_json::json!({"field": field, "value": value, "min": min, "max": max}),
        }
    }
}

/// A character no URL, ref or name may hold: C0 controls, DEL, C1 controls and whitespace.
fn is_control_or_space(c: char) -> bool {
    c.is_control() || c.is_whitespace()
}

/// Checks a job's repository URL: `scheme://host/…` with a scheme from
/// `limits.repo_schemes`, scp-like `[user@]host:path` when `ssh` is allowed, and `file://` or
/// a local path only with `limits.allow_file_repos`. Refuses control characters, a leading
/// `-` (git would read an option), git's `<transport>::` remote helpers (`ext::`) and URLs
/// longer than [`MAX_REPO_URL_LEN`].
pub fn repo_url(url: &str, limits: &LimitsConfig) -> Result<(), RequestError> {
    let bad = |reason: String| Err(RequestError::RepoUrl { reason });
    if url.is_empty() {
        return bad("must not be empty".into());
    }
    if url.len() > MAX_REPO_URL_LEN {
        return bad(format!("longer than {MAX_REPO_URL_LEN} bytes"));
    }
    if url.chars().any(is_control_or_space) {
        return bad("contains whitespace or control characters".into());
    }
    if url.starts_with('-') {
        return bad("must not start with '-'".into());
    }
    let first_slash = url.find('/').unwrap_or(url.len());
    if url[..first_slash].contains("::") {
        return bad("remote helper URLs (<transport>::…) are not allowed".into());
    }
    let allowed = |s: &str| limits.repo_schemes.iter().any(|a| a == s);
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "file" {
            return if limits.allow_file_repos {
                Ok(())
            } else {
                bad("file:// repositories are disabled (limits.allow_file_repos)".into())
            };
        }
        if !allowed(&scheme) {
            return bad(format!(
                "scheme {scheme:?} is not allowed (limits.repo_schemes: {})",
                limits.repo_schemes.join(", ")
            ));
        }
        let host = rest.split('/').next().unwrap_or_default();
        let host = host.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || host.starts_with('-') {
            return bad("needs a host".into());
        }
        return Ok(());
    }
    // git reads `host:path` as scp-like ssh when no '/' comes before the first ':'.
    if let Some(colon) = url.find(':')
        && colon < first_slash
    {
        let host = url[..colon].rsplit('@').next().unwrap_or_default();
        if host.is_empty() || host.starts_with('-') {
            return bad("needs a host before ':'".into());
        }
        return if allowed("ssh") {
            Ok(())
        } else {
            bad("scp-like ssh URLs are not allowed (limits.repo_schemes has no ssh)".into())
        };
    }
    if limits.allow_file_repos {
        Ok(())
    } else {
        bad("local paths are disabled (limits.allow_file_repos); use scheme://host/path".into())
    }
}

/// Checks a git ref by the rules of `git check-ref-format` (applied to branch, tag or
/// commit names): no leading `-`, no `..`, `@{`, `//`, control characters, space, `~ ^ : ? * [
/// \`, no component starting with `.` or ending with `.lock`, not `@`, not ending with `/` or
/// `.`, at most [`MAX_GIT_REF_LEN`] bytes.
pub fn git_ref(r: &str) -> Result<(), RequestError> {
    let bad = |reason: &str| {
        Err(RequestError::GitRef {
            reason: reason.to_owned(),
        })
    };
    if r.is_empty() {
        return bad("must not be empty");
    }
    if r.len() > MAX_GIT_REF_LEN {
        return bad("longer than 255 bytes");
    }
    if r.starts_with('-') {
        return bad("must not start with '-'");
    }
    if r.chars().any(is_control_or_space) {
        return bad("contains whitespace or control characters");
    }
    if let Some(c) = r.chars().find(|c| "~^:?*[\\".contains(*c)) {
        return bad(&format!("contains {c:?}"));
    }
    if r.contains("..") || r.contains("@{") || r.contains("//") {
        return bad("contains '..', '@{' or '//'");
    }
    if r == "@" || r.ends_with('/') || r.ends_with('.') || r.starts_with('/') {
        return bad("must not be '@', start with '/' or end with '/' or '.'");
    }
    if r.split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        return bad("a component starts with '.' or ends with '.lock'");
    }
    Ok(())
}

/// Checks a sandbox name: 1 to [`MAX_SANDBOX_NAME_LEN`] ASCII letters, digits, `-` and `.`,
/// starting with a letter or digit (a valid host name label set; no `/`, no `..`).
pub fn sandbox_name(name: &str) -> Result<(), RequestError> {
    let bad = |reason: String| Err(RequestError::Name { reason });
    if name.is_empty() || name.len() > MAX_SANDBOX_NAME_LEN {
        return bad(format!("must be 1 to {MAX_SANDBOX_NAME_LEN} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("must start with a letter or digit".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return bad("use only letters, digits, '-' and '.'".into());
    }
    if name.contains("..") {
        return bad("must not contain '..'".into());
    }
    Ok(())
}

/// Checks a number against `min..=max`.
pub fn in_range(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), RequestError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RequestError::OutOfRange {
            field,
            value: value.into(),
            min: min.into(),
            max: max.into(),
        })
    }
}

/// Checks an optional lease length against `1..=limits.max_ttl_minutes`.
pub fn ttl_minutes(ttl: Option<u32>, limits: &LimitsConfig) -> Result<(), RequestError> {
    ttl.map_or(Ok(()), |t| {
        in_range("ttl_minutes", t, 1, limits.max_ttl_minutes)
    })
}

impl CreateSandboxRequest {
    /// Checks the name and lease length.
    pub fn validate(&self, limits: &LimitsConfig) -> Result<(), RequestError> {
        if let Some(name) = &self.name {
            sandbox_name(name)?;
        }
        ttl_minutes(self.ttl_minutes, limits)
    }
}

impl RunJobRequest {
    /// Checks the repository URL, the git ref and the lease length.
    pub fn validate(&self, limits: &LimitsConfig) -> Result<(), RequestError> {
        repo_url(&self.repo, limits)?;
        if let Some(r) = self.git_ref.as_deref().filter(|r| !r.is_empty()) {
            git_ref(r)?;
        }
        ttl_minutes(self.ttl_minutes, limits)
    }
}

impl CreateWorkspaceRequest {
    /// Checks the size against `1..=limits.max_workspace_gb`.
    pub fn validate(&self, limits: &LimitsConfig) -> Result<(), RequestError> {
        in_range("size_gb", self.size_gb, 1, limits.max_workspace_gb)
    }
}

impl RebindWorkspaceRequest {
    /// Checks the lease length.
    pub fn validate(&self, limits: &LimitsConfig) -> Result<(), RequestError> {
        ttl_minutes(self.ttl_minutes, limits)
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
