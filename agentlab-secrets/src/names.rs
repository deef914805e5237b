//! Validation of bundle names, environment variable names and secret file paths.

use std::path::{Component, Path};

use crate::error::SecretsError;

/// Checks a bundle name: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn validate_bundle_name(name: &str) -> Result<(), SecretsError> {
    let bytes = name.as_bytes();
    let ok = matches!(bytes.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SecretsError::InvalidBundleName(name.to_owned()))
    }
}

/// Checks an environment variable name: `[A-Z_][A-Z0-9_]*`.
pub fn validate_env_key(key: &str) -> Result<(), SecretsError> {
    let bytes = key.as_bytes();
    let ok = matches!(bytes.first(), Some(b) if b.is_ascii_uppercase() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SecretsError::InvalidEnvKey(key.to_owned()))
    }
}

/// Checks a secret file path: relative, non-empty, only normal components.
pub fn validate_file_path(path: &str) -> Result<(), SecretsError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.contains('\0')
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(SecretsError::InvalidFilePath(path.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names() {
        for ok in ["default", "a", "0", "team-a_1", &"a".repeat(63)] {
            assert!(validate_bundle_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a.b",
            "a/b",
            "../x",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(validate_bundle_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_keys() {
        for ok in ["A", "_", "ANTHROPIC_API_KEY", "K1"] {
            assert!(validate_env_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "a", "A-B", "A B", "É"] {
            assert!(validate_env_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_paths() {
        for ok in ["a", "dir/file.json", ".config/x"] {
            assert!(validate_file_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./a", "a\0b"] {
            assert!(validate_file_path(bad).is_err(), "{bad}");
        }
    }
}
