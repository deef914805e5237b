//! Hardening tests: untrusted checkouts (planted git filters and hooks, after the agent and in
//! a reused workspace) and the bubblewrap inner sandbox, with the real binary.

// Shared helpers; each test binary uses a subset.
#[cfg(test)]
#[allow(dead_code)]
mod common;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use agentlab_core::api::guest::GuestJobState;
    use agentlab_core::{GitCredentials, SecretBundle, SecretValue};

    use super::common::{Env, Mock, git, git_http, stderr};

    fn markers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn planted_git_config_and_hooks_never_run_in_the_runner() {
        let env = Env::new();
        let m = env.path("markers");
        std::fs::create_dir_all(&m).unwrap();
        let m = m.display().to_string();
        // The agent plants a clean filter and a hook, proves the filter works by running
        // `git status` itself, and leaves a stat-dirty tracked file behind.
        let agent = format!(
            r#"set -e
git config filter.evil.clean 'touch {m}/filter-${{AGENTLAB_JOB_ID:-runner}}; cat'
echo '* filter=evil' > .gitattributes
printf '#!/bin/sh\ntouch {m}/hook-${{AGENTLAB_JOB_ID:-runner}}\n' > .git/hooks/post-checkout
chmod +x .git/hooks/post-checkout
touch -d 2000-01-01 README.md
git status --porcelain > /dev/null
touch -d 2001-01-01 README.md
"#
        );
        let mock = Mock::start(|url| env.payload(url, &agent, 60, SecretBundle::default())).await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Completed);
        assert!(report.summary.unwrap().contains("uncommitted changes"));
        assert_eq!(markers(Path::new(&m)), ["filter-job-0123abcd"]);

        // A tampered reused workspace: hooks, hooksPath and the filter planted again.
        let checkout = env.clone_path();
        git(
            &checkout,
            &[
                "config",
                "filter.evil.clean",
                &format!("touch {m}/filter-reuse; cat"),
            ],
        );
        let hooks2 = env.path("hooks2");
        std::fs::create_dir_all(&hooks2).unwrap();
        for dir in [hooks2.clone(), checkout.join(".git/hooks")] {
            let hook = dir.join("post-checkout");
            std::fs::write(&hook, format!("#!/bin/sh\ntouch {m}/hook-reuse\n")).unwrap();
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(&hook)
                .status()
                .unwrap();
        }
        git(
            &checkout,
            &["config", "core.hooksPath", &hooks2.display().to_string()],
        );
        // Leftovers of the earlier job in the work dir must not reach the new bundle.
        std::fs::write(env.path("work/changes.patch"), "stale").unwrap();
        let mock2 =
            Mock::start(|url| env.payload(url, "echo second run", 60, SecretBundle::default()))
                .await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock2.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(mock2.final_report().state, GuestJobState::Completed);
        assert!(mock2.log_text().contains("reusing checkout"));
        assert!(!mock2.bundle().contains_key("changes.patch"));
        assert_eq!(markers(Path::new(&m)), ["filter-job-0123abcd"]);
        // The forced checkout restored the tracked file.
        assert_eq!(
            std::fs::read_to_string(checkout.join("README.md")).unwrap(),
            "hello\n"
        );
    }

    fn bwrap_works() -> bool {
        std::process::Command::new("bwrap")
            .args([
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "true",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bubblewrap_inner_sandbox_confines_the_agent() {
        if !bwrap_works() {
            assert!(std::env::var_os("CI").is_none(), "bwrap is required in CI");
            eprintln!("skipping: bwrap is not installed or cannot create a sandbox here");
            return;
        }
        let env = Env::new();
        let agent = r#"
if { echo x > /etc/agentlab-bwrap-probe; } 2>/dev/null; then echo "root is WRITABLE"; else echo "root is read-only"; fi
echo "payload bytes: $(wc -c < "$AGENTLAB_SECRETS_DIR/payload.json")"
echo "runner dir entries: $(ls -A "$AGENTLAB_SECRETS_DIR/.runner" | wc -l)"
echo "a line from the sandbox" >> README.md
git commit -q -am "sandboxed change"
echo artifact > "$AGENTLAB_ARTIFACTS_DIR/made-in-bwrap.txt"
"#;
        let mock = Mock::start(|url| {
            // HTTPS credentials make the runner create `.runner/`, which must be masked.
            let secrets = SecretBundle {
                git: Some(GitCredentials::Https {
                    username: "x-access-token".into(),
                    token: SecretValue::new("ghp_bwrap_test_token_123"),
                }),
                ..SecretBundle::default()
            };
            let mut p = env.payload(url, agent, 60, secrets);
            p.policy.inner_sandbox = "bubblewrap".into();
            p.policy.inner_sandbox_args = vec!["--setenv".into(), "INNER".into(), "1".into()];
            p
        })
        .await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        let logs = mock.log_text();
        assert_eq!(report.state, GuestJobState::Completed, "{report:?}\n{logs}");
        assert!(logs.contains("root is read-only"), "{logs}");
        assert!(logs.contains("payload bytes: 0"), "{logs}");
        assert!(logs.contains("runner dir entries: 0"), "{logs}");
        assert!(!logs.contains("ghp_bwrap_test_token_123"));
        assert!(!Path::new("/etc/agentlab-bwrap-probe").exists());
        let head = git(&env.clone_path(), &["rev-parse", "HEAD"]);
        assert_eq!(report.commit.as_deref(), Some(head.as_str()));
        assert!(mock.bundle().contains_key("artifacts/made-in-bwrap.txt"));
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn https_clone_authenticates_through_askpass_only() {
        const TOKEN: &str = "ghp_http_token_0123456789";
        let env = Env::new();
        git(&env.origin, &["config", "http.receivepack", "true"]);
        let (base, seen) = git_http::serve(env.tmp.path().to_owned(), "bob", TOKEN).await;
        let repo_url = format!("{base}/origin");
        let secrets = SecretBundle {
            git: Some(GitCredentials::Https {
                username: "bob".into(),
                token: SecretValue::new(TOKEN),
            }),
            ..SecretBundle::default()
        };
        let mock = Mock::start(|url| {
            let mut p = env.payload(url, "echo cloned over https", 60, secrets);
            p.job.repo = repo_url.clone();
            p
        })
        .await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        let logs = mock.log_text();
        assert_eq!(report.state, GuestJobState::Completed, "{report:?}\n{logs}");
        assert!(logs.contains("cloned over https"));
        let (authorized, challenged) = {
            let s = seen.lock().unwrap();
            (s.authorized, s.challenged)
        };
        assert!(
            authorized >= 1 && challenged >= 1,
            "{authorized} {challenged}"
        );
        // The token is in neither the remote URL nor any log.
        assert_eq!(
            git(&env.clone_path(), &["config", "remote.origin.url"]),
            repo_url
        );
        assert!(!logs.contains(TOKEN) && !stderr(&out).contains(TOKEN));
        env.assert_secrets_wiped();
    }
}
