//! End-to-end tests of `AgeSecretStore` on real files in temp directories.

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use agentlab_core::{GitCredentials, SecretFile, SecretStore, SecretStoreError, SecretValue};
    use agentlab_secrets::{AgeSecretStore, Removal, SecretsError, generate_identity_file};

    const VALUE: &str = "sk-test-DistinctiveValue-1234";

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn setup() -> (tempfile::TempDir, AgeSecretStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store =
            AgeSecretStore::new(tmp.path().join("secrets"), tmp.path().join("keys/age.key"));
        let report = store.init("default").unwrap();
        assert!(report.identity_created && report.recipients_created && report.bundle_created);
        (tmp, store)
    }

    #[tokio::test]
    async fn init_set_load_list() {
        let (_tmp, store) = setup();
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(store.identity_path()), 0o600);
        assert_eq!(mode(&store.bundle_path("default").unwrap()), 0o600);
        assert_eq!(mode(&store.recipients_path()), 0o600);

        // init again is idempotent.
        let again = store.init("default").unwrap();
        assert!(!again.identity_created && !again.recipients_created && !again.bundle_created);
        assert_eq!(again.public_keys, store.public_keys().unwrap());

        store
            .set_env("default", "API_KEY", SecretValue::new(VALUE))
            .unwrap();
        store
            .set_git(
                "default",
                GitCredentials::Https {
                    username: "x-access-token".into(),
                    token: SecretValue::new("ghp_abcdefgh"),
                },
            )
            .unwrap();
        store
            .set_claude_settings("default", SecretValue::new(r#"{"model":"opus"}"#))
            .unwrap();
        store
            .add_file(
                "default",
                SecretFile {
                    path: "cfg/a.json".into(),
                    mode: None,
                    content: SecretValue::new("filedata"),
                },
            )
            .unwrap();
        store.init("other").unwrap();

        let raw = std::fs::read_to_string(store.bundle_path("default").unwrap()).unwrap();
        assert!(raw.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!raw.contains(VALUE));

        let b = store.load("default").await.unwrap();
        assert_eq!(b.env["API_KEY"].expose(), VALUE);
        assert_eq!(
            b.claude_settings.as_ref().unwrap().expose(),
            r#"{"model":"opus"}"#
        );
        assert_eq!(b.files[0].content.expose(), "filedata");
        assert_eq!(store.list().await.unwrap(), vec!["default", "other"]);

        // No temp files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn show_redacts_and_rm_removes() {
        let (_tmp, store) = setup();
        store
            .set_env("default", "API_KEY", SecretValue::new(VALUE))
            .unwrap();
        store
            .set_env("default", "OTHER", SecretValue::new("other-value"))
            .unwrap();
        let shown = serde_yaml::to_string(&store.show("default").unwrap()).unwrap();
        assert!(shown.contains("API_KEY") && shown.contains("[REDACTED]"));
        assert!(!shown.contains(VALUE));
        assert_eq!(
            store.reveal("default").unwrap().env["API_KEY"].expose(),
            VALUE
        );

        store
            .rm("default", &Removal::Env("API_KEY".into()))
            .unwrap();
        assert!(matches!(
            store.rm("default", &Removal::Env("API_KEY".into())),
            Err(SecretsError::NotPresent { .. })
        ));
        assert!(matches!(
            store.rm("default", &Removal::Git),
            Err(SecretsError::NotPresent { .. })
        ));
        let b = store.load("default").await.unwrap();
        assert!(!b.env.contains_key("API_KEY"));
        assert!(b.env.contains_key("OTHER"));
    }

    #[tokio::test]
    async fn validation_errors() {
        let (_tmp, store) = setup();
        for key in ["lower", "1X", "A-B", ""] {
            assert!(matches!(
                store.set_env("default", key, SecretValue::new(VALUE)),
                Err(SecretsError::InvalidEnvKey(_))
            ));
        }
        assert!(matches!(
            store.set_env("default", "K", SecretValue::new("")),
            Err(SecretsError::EmptyValue(_))
        ));
        assert!(matches!(
            store.set_env("nope", "K", SecretValue::new(VALUE)),
            Err(SecretsError::BundleNotFound(_))
        ));
        assert!(matches!(
            store.init("Bad/Name"),
            Err(SecretsError::InvalidBundleName(_))
        ));
        let err = store
            .set_claude_settings("default", SecretValue::new("{not json secret-ish"))
            .unwrap_err();
        assert!(matches!(err, SecretsError::InvalidClaudeSettings { .. }));
        assert!(!err.to_string().contains("secret-ish"));
        let bad_file = SecretFile {
            path: "../escape".into(),
            mode: None,
            content: SecretValue::new("x"),
        };
        assert!(matches!(
            store.add_file("default", bad_file),
            Err(SecretsError::InvalidFilePath(_))
        ));
        // Store errors for the daemon.
        assert!(matches!(
            store.load("missing").await,
            Err(SecretStoreError::NotFound(_))
        ));
        assert!(matches!(
            store.load("../etc/passwd").await,
            Err(SecretStoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn refuses_group_readable_identity_without_leaking() {
        let (_tmp, store) = setup();
        store
            .set_env("default", "API_KEY", SecretValue::new(VALUE))
            .unwrap();
        std::fs::set_permissions(
            store.identity_path(),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        match store.load("default").await {
            Err(SecretStoreError::Unreadable { name, reason }) => {
                assert_eq!(name, "default");
                assert!(reason.contains("chmod 600"), "{reason}");
                assert!(
                    reason.contains(&store.identity_path().display().to_string()),
                    "{reason}"
                );
            }
            other => panic!("expected Unreadable, got {other:?}"),
        }
        assert!(matches!(
            store.set_env("default", "K", SecretValue::new(VALUE)),
            Err(SecretsError::IdentityPermissions { mode: 0o644, .. })
        ));
    }

    #[tokio::test]
    async fn wrong_identity_is_unreadable() {
        let (tmp, store) = setup();
        store
            .set_env("default", "API_KEY", SecretValue::new(VALUE))
            .unwrap();
        let other_key = tmp.path().join("other.key");
        generate_identity_file(&other_key).unwrap();
        let other = AgeSecretStore::new(store.dir(), &other_key);
        match other.load("default").await {
            Err(SecretStoreError::Unreadable { reason, .. }) => assert!(!reason.contains(VALUE)),
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn rotate_all_to_new_recipient() {
        let (tmp, store) = setup();
        store
            .set_env("default", "API_KEY", SecretValue::new(VALUE))
            .unwrap();
        store.init("second").unwrap();
        let new_key = tmp.path().join("new.key");
        let new_pub = generate_identity_file(&new_key).unwrap();

        // Invalid recipients change nothing.
        assert!(matches!(
            store.rotate(None, &["age1bogus".into()]),
            Err(SecretsError::InvalidRecipient { .. })
        ));
        assert!(matches!(
            store.rotate(None, &[]),
            Err(SecretsError::NoRecipients)
        ));

        let report = store.rotate(None, std::slice::from_ref(&new_pub)).unwrap();
        assert_eq!(report.bundles, vec!["default", "second"]);
        assert!(!report.identity_can_decrypt);
        assert!(
            std::fs::read_to_string(store.recipients_path())
                .unwrap()
                .contains(&new_pub)
        );

        // Old identity can no longer decrypt, new one can.
        assert!(matches!(
            store.load("default").await,
            Err(SecretStoreError::Unreadable { .. })
        ));
        let rotated = AgeSecretStore::new(store.dir(), &new_key);
        assert_eq!(
            rotated.load("default").await.unwrap().env["API_KEY"].expose(),
            VALUE
        );
        // Later writes go to the new recipients too.
        rotated
            .set_env("second", "K2", SecretValue::new("second-value"))
            .unwrap();
        assert_eq!(
            rotated.load("second").await.unwrap().env["K2"].expose(),
            "second-value"
        );
    }

    #[tokio::test]
    async fn rotate_one_bundle_to_two_recipients() {
        let (tmp, store) = setup();
        store.init("team").unwrap();
        store
            .set_env("team", "API_KEY", SecretValue::new(VALUE))
            .unwrap();
        let new_key = tmp.path().join("new.key");
        let new_pub = generate_identity_file(&new_key).unwrap();
        let mut recipients = store.public_keys().unwrap();
        recipients.push(new_pub);
        let report = store.rotate(Some("team"), &recipients).unwrap();
        assert_eq!(report.bundles, vec!["team"]);
        assert!(report.identity_can_decrypt);
        assert!(store.dir().join("team.recipients").is_file());

        let rotated = AgeSecretStore::new(store.dir(), &new_key);
        assert_eq!(
            rotated.load("team").await.unwrap().env["API_KEY"].expose(),
            VALUE
        );
        assert_eq!(
            store.load("team").await.unwrap().env["API_KEY"].expose(),
            VALUE
        );
        // The other bundle stays readable only by the original identity.
        assert!(rotated.load("default").await.is_err());
        // A later write to the rotated bundle keeps both recipients.
        store
            .set_env("team", "MORE", SecretValue::new("more-value"))
            .unwrap();
        assert_eq!(
            rotated.load("team").await.unwrap().env["MORE"].expose(),
            "more-value"
        );
    }

    #[tokio::test]
    async fn list_of_missing_dir_is_empty_and_ignores_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AgeSecretStore::new(tmp.path().join("none"), tmp.path().join("k"));
        assert!(store.list().await.unwrap().is_empty());
        let (_t, store) = setup();
        std::fs::write(store.dir().join("Not-Valid.age"), "x").unwrap();
        std::fs::write(store.dir().join("notes.txt"), "x").unwrap();
        assert_eq!(store.list().await.unwrap(), vec!["default"]);
    }
}
