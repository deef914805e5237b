//! Redacted views of bundles for `agentlab secrets show`.

use agentlab_core::redact::PLACEHOLDER;
use agentlab_core::{GitCredentials, SecretBundle, SecretFile, SecretValue};

/// A copy of `bundle` with every secret value replaced by `[REDACTED]`. Names, usernames,
/// file paths and modes, and `known_hosts` (public data) are kept.
pub fn redacted(bundle: &SecretBundle) -> SecretBundle {
    let hidden = || SecretValue::new(PLACEHOLDER);
    SecretBundle {
        env: bundle.env.keys().map(|k| (k.clone(), hidden())).collect(),
        git: bundle.git.as_ref().map(|g| match g {
            GitCredentials::Https { username, .. } => GitCredentials::Https {
                username: username.clone(),
                token: hidden(),
            },
            GitCredentials::Ssh { known_hosts, .. } => GitCredentials::Ssh {
                private_key: hidden(),
                known_hosts: known_hosts.clone(),
            },
        }),
        claude_settings: bundle.claude_settings.as_ref().map(|_| hidden()),
        files: bundle
            .files
            .iter()
            .map(|f| SecretFile {
                path: f.path.clone(),
                mode: f.mode,
                content: hidden(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_view_keeps_structure_hides_values() {
        let mut b = SecretBundle::default();
        b.env
            .insert("KEY_A".into(), SecretValue::new("value-a-secret"));
        b.git = Some(GitCredentials::Ssh {
            private_key: SecretValue::new("-----BEGIN OPENSSH PRIVATE KEY-----"),
            known_hosts: Some("github.com ssh-ed25519 AAAA".into()),
        });
        b.claude_settings = Some(SecretValue::new("{\"k\":\"v-secret\"}"));
        b.files.push(SecretFile {
            path: "a/b".into(),
            mode: Some(0o600),
            content: SecretValue::new("file-secret"),
        });
        let r = redacted(&b);
        let yaml = serde_yaml::to_string(&r).unwrap();
        for v in b.values() {
            assert!(!yaml.contains(v), "{yaml}");
        }
        assert!(yaml.contains("KEY_A") && yaml.contains("a/b") && yaml.contains("github.com"));
        assert_eq!(r.values().iter().filter(|v| **v == PLACEHOLDER).count(), 4);
    }
}
