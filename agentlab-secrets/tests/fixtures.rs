//! Compatibility: bundles written by earlier versions must keep loading (STYLE.md §19).
//!
//! `fixtures/v1` was written by `agentlab secrets` of the first release (test-only key).

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use agentlab_core::{GitCredentials, SecretBundle, SecretStore};
    use agentlab_secrets::AgeSecretStore;

    fn copy_fixture(version: &str) -> tempfile::TempDir {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(version);
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("secrets")).unwrap();
        for name in ["default.age", "recipients.txt"] {
            std::fs::copy(src.join(name), tmp.path().join("secrets").join(name)).unwrap();
        }
        let key = tmp.path().join("age.key");
        std::fs::copy(src.join("age.key"), &key).unwrap();
        // git does not keep 0600.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        tmp
    }

    #[tokio::test]
    async fn v1_bundle_loads() {
        let tmp = copy_fixture("v1");
        let store = AgeSecretStore::new(tmp.path().join("secrets"), tmp.path().join("age.key"));
        assert_eq!(store.list().await.unwrap(), vec!["default"]);
        let b = store.load("default").await.unwrap();
        assert_eq!(b.env["API_KEY"].expose(), "fixture-env-value-1");
        match &b.git {
            Some(GitCredentials::Https { username, token }) => {
                assert_eq!(username, "x-access-token");
                assert_eq!(token.expose(), "fixture-git-token");
            }
            other => panic!("unexpected git credentials {other:?}"),
        }
        assert_eq!(
            b.claude_settings.as_ref().unwrap().expose(),
            r#"{"model":"fixture"}"#
        );
        assert_eq!(b.files[0].path, "cfg/a.txt");
        assert_eq!(b.files[0].mode, Some(0o640));
        assert_eq!(b.files[0].content.expose(), "fixture-file-body");
        // And it can be modified and re-read with the recorded recipients.
        store
            .set_env(
                "default",
                "MORE",
                agentlab_core::SecretValue::new("more-value"),
            )
            .unwrap();
        assert_eq!(store.load("default").await.unwrap().env.len(), 2);
    }

    #[test]
    fn hand_written_yaml_forms_parse() {
        let yaml = "env:\n  K: v\nfiles:\n  - path: a\n    mode: 0o600\n    content: x\n\
                    git:\n  kind: ssh\n  private_key: |\n    line1\n    line2\n";
        let b: SecretBundle = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(b.files[0].mode, Some(0o600));
        assert!(matches!(
            &b.git,
            Some(GitCredentials::Ssh {
                known_hosts: None,
                ..
            })
        ));
    }
}
