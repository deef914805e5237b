//! The bootstrap token's life in the runner: the delivered file is deleted once read, the
//! token lives on only in the secrets tmpfs and only while a fetch may still succeed, a give-up
//! is reported, and the artifact upload is retried.

// Shared helpers; each test binary uses a subset.
#[cfg(test)]
#[allow(dead_code)]
mod common;

#[cfg(test)]
mod tests {
    use agentlab_core::SecretBundle;
    use agentlab_core::api::guest::GuestJobState;
    use axum::http::StatusCode;

    use super::common::{BOOT_TOKEN, Env, Mock, stderr};

    fn kept_token(env: &Env) -> std::path::PathBuf {
        env.secrets_dir().join(".runner").join("bootstrap.json")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_finished_job_leaves_no_bootstrap_file() {
        let env = Env::new();
        let mock = Mock::start(|url| env.payload(url, "true", 60, SecretBundle::default())).await;
        let boot = env.write_bootstrap(&mock.url);
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(mock.final_report().state, GuestJobState::Completed);
        assert!(!boot.exists(), "the bootstrap file was left on disk");
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refused_token_is_forgotten() {
        let env = Env::new();
        let mock = Mock::start(|url| env.payload(url, "true", 60, SecretBundle::default())).await;
        let boot = env.path("bootstrap.json");
        let json = serde_json::json!({"controller_url": mock.url, "token": "wrong-token-123", "vmid": 9001});
        std::fs::write(&boot, json.to_string()).unwrap();
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
        assert!(!boot.exists());
        assert!(!kept_token(&env).exists());
        // The controller recorded the refusal itself; no give-up call with a refused token.
        assert!(mock.recorded(|r| r.abandons.is_empty()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_runner_that_gives_up_says_why_and_forgets_the_token() {
        let env = Env::new();
        let mock = Mock::start(|url| env.payload(url, "true", 60, SecretBundle::default())).await;
        mock.fail_fetch_with(StatusCode::BAD_REQUEST);
        let boot = env.write_bootstrap(&mock.url);
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let reasons = mock.recorded(|r| r.abandons.clone());
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("400"), "{reasons:?}");
        assert!(!reasons[0].contains(BOOT_TOKEN));
        assert!(!boot.exists());
        assert!(!kept_token(&env).exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_controller_keeps_the_token_only_in_tmpfs_for_the_restart() {
        let env = Env::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let boot = env.write_bootstrap(&url);
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(!boot.exists(), "the bootstrap file was left on disk");
        let kept = kept_token(&env);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The controller comes back; the restarted runner fetches with the kept token.
        let mock = Mock::start_on(&format!("127.0.0.1:{port}"), |url| {
            env.payload(url, "echo resumed", 60, SecretBundle::default())
        })
        .await;
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(mock.final_report().state, GuestJobState::Completed);
        assert!(mock.log_text().contains("resumed"));
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_upload_is_retried() {
        let env = Env::new();
        let mock = Mock::start(|url| env.payload(url, "true", 60, SecretBundle::default())).await;
        mock.fail_uploads(2);
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(mock.recorded(|r| r.upload_attempts), 3);
        let report = mock.final_report();
        assert!(
            report
                .summary
                .as_deref()
                .is_none_or(|s| !s.contains("upload failed")),
            "{report:?}"
        );
        assert!(mock.bundle().contains_key("report.json"));
    }
}
