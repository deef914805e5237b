//! End-to-end tests: the real `agent-runner` binary against a mock controller, a real local git
//! repository and scripted agent commands.

// Shared helpers; each test binary uses a subset.
#[cfg(test)]
#[allow(dead_code)]
mod common;

#[cfg(test)]
mod tests {
    use super::common::{self, Env, Mock, git, stderr};
    use agentlab_core::api::guest::{GuestJobState, LogStream};
    use agentlab_core::{SecretBundle, SecretValue};
    use base64::Engine as _;

    const API_KEY: &str = "sk-live-ABCDEFGHIJKL123456";
    const PASSWORD: &str = "p@ss/w0rd+secret=xyz";
    const PASSWORD_PERCENT: &str = "p%40ss%2Fw0rd%2Bsecret%3Dxyz";

    fn bundle() -> SecretBundle {
        let mut b = SecretBundle::default();
        b.env.insert("API_KEY".into(), SecretValue::new(API_KEY));
        b.env
            .insert("DB_PASSWORD".into(), SecretValue::new(PASSWORD));
        b
    }

    /// Every form of every secret that must not appear anywhere.
    fn forbidden_forms() -> Vec<String> {
        let mut out = Vec::new();
        out.push(PASSWORD_PERCENT.to_owned());
        for v in [API_KEY, PASSWORD, common::RUNNER_TOKEN] {
            out.push(v.to_owned());
            out.push(base64::engine::general_purpose::STANDARD.encode(v));
            out.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v));
        }
        out
    }

    fn assert_clean(what: &str, text: &str) {
        let flat: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        for f in forbidden_forms() {
            assert!(!flat.contains(&f), "{what} leaks {f:?}:\n{text}");
        }
    }

    const GOOD_AGENT: &str = r#"
    set -e
    echo "hello from agent: $1"
    echo "job is $AGENTLAB_JOB_ID"
    echo "raw key: $API_KEY"
    printf '%s' "$API_KEY" | base64
    echo "url: https://db.example.invalid/?pw=p%40ss%2Fw0rd%2Bsecret%3Dxyz"
    cat "$AGENTLAB_SECRETS_DIR/payload.json"; echo
    printf 'split: sk-live-ABCDEF\nGHIJKL123456 end\n'
    echo "warning on stderr" >&2
    echo "a line from the agent" >> README.md
    git commit -q -am "agent change"
    echo "made by the agent, key=$API_KEY" > "$AGENTLAB_ARTIFACTS_DIR/result.txt"
    "#;

    #[tokio::test(flavor = "multi_thread")]
    async fn completed_job_reports_commit_logs_and_artifacts() {
        let env = Env::new();
        let mock = Mock::start(|url| env.payload(url, GOOD_AGENT, 60, bundle())).await;
        mock.rate_limit_first(1);
        let boot = env.write_bootstrap(&mock.url);
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert!(out.status.success(), "runner failed: {}", stderr(&out));

        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Completed, "{report:?}");
        assert_eq!(
            report.exit_code,
            Some(0),
            "a successful agent reports exit code 0"
        );
        let head = git(&env.clone_path(), &["rev-parse", "HEAD"]);
        assert_eq!(report.commit.as_deref(), Some(head.as_str()));
        assert_eq!(
            git(&env.clone_path(), &["branch", "--show-current"]),
            "agentlab/job-0123abcd"
        );
        let summary = report.summary.unwrap();
        assert!(
            summary.contains("1 new commit(s)") && summary.contains("1 file changed"),
            "{summary}"
        );
        assert!(report.duration_ms.is_some());

        // Fetch retried after the 429; steps reported; artifacts uploaded before the final report.
        let events = mock.recorded(|r| (r.fetches, r.events.clone(), r.unauthorized));
        assert_eq!(events.0, 2);
        assert_eq!(events.2, 0);
        let steps: Vec<&str> = events.1.iter().map(String::as_str).collect();
        assert_eq!(
            steps,
            [
                "status:Running:bootstrap",
                "status:Running:clone",
                "status:Running:agent",
                "artifact:artifacts.tar.gz",
                "status:Completed:"
            ]
        );

        let logs = mock.log_text();
        assert!(
            logs.contains("hello from agent: Add a line to README.md"),
            "{logs}"
        );
        assert!(logs.contains("job is job-0123abcd"));
        assert!(logs.contains("raw key: [REDACTED]"), "{logs}");
        let stderr_lines = mock.recorded(|r| {
            r.logs
                .iter()
                .filter(|l| l.stream == LogStream::Stderr)
                .count()
        });
        assert!(stderr_lines >= 1);
        assert_clean("logs", &logs);

        let files = mock.bundle();
        let runner_log = String::from_utf8(files["runner.log"].clone()).unwrap();
        assert!(runner_log.contains("hello from agent"), "{runner_log}");
        assert_clean("runner.log", &runner_log);
        let report_json: serde_json::Value = serde_json::from_slice(&files["report.json"]).unwrap();
        assert_eq!(report_json["state"], "COMPLETED");
        assert_eq!(report_json["commit"], head.as_str());
        let result = String::from_utf8(files["artifacts/result.txt"].clone()).unwrap();
        assert_eq!(result, "made by the agent, key=[REDACTED]\n");
        let patch = String::from_utf8(files["changes.patch"].clone()).unwrap();
        assert!(patch.contains("+a line from the agent"));
        for (name, data) in &files {
            assert_clean(name, &String::from_utf8_lossy(data));
        }
        env.assert_secrets_wiped();
        assert_clean("runner stderr", &stderr(&out));

        // The bootstrap file is gone once read; the token is spent and the cache wiped: the
        // same file delivered again is refused, exit 2.
        assert!(!boot.exists(), "bootstrap file left on disk");
        let boot = env.write_bootstrap(&mock.url);
        let again = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
        assert!(stderr(&again).contains("Bootstrap token refused"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn failing_agent_reports_failed_with_exit_code() {
        let env = Env::new();
        let mock = Mock::start(|url| env.payload(url, "echo boom >&2; exit 3", 60, bundle())).await;
        let boot = env.write_bootstrap(&mock.url);
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Failed);
        assert_eq!(report.exit_code, Some(3));
        assert_eq!(report.failed_step.as_deref(), Some("agent"));
        assert!(mock.log_text().contains("boom"));
        assert!(mock.bundle().contains_key("runner.log"));
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn agent_past_timeout_is_killed_and_reported() {
        let env = Env::new();
        // The agent ignores SIGTERM (and so does its child), so the runner must escalate to SIGKILL.
        let cmd = "trap '' TERM; echo started; sleep 60; echo never";
        let mock = Mock::start(|url| env.payload(url, cmd, 1, bundle())).await;
        let boot = env.write_bootstrap(&mock.url);
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Timeout);
        assert_eq!(report.exit_code, Some(124));
        let logs = mock.log_text();
        assert!(
            logs.contains("started") && !logs.contains("never"),
            "{logs}"
        );
        assert!(mock.bundle().contains_key("report.json"));
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bad_repo_url_fails_the_clone_step() {
        let env = Env::new();
        let mock = Mock::start(|url| {
            let mut p = env.payload(url, "true", 60, bundle());
            p.job.repo = format!("file://{}", env.path("does-not-exist").display());
            p
        })
        .await;
        let boot = env.write_bootstrap(&mock.url);
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Failed);
        assert_eq!(report.failed_step.as_deref(), Some("clone"));
        let err = report.error.unwrap();
        assert!(err.contains("clone"), "{err}");
        assert!(mock.bundle().contains_key("runner.log"));
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bad_bootstrap_file_is_a_clear_final_error() {
        let env = Env::new();
        let boot = env.path("bootstrap.json");
        std::fs::write(
            &boot,
            r#"{"controller_url":"http://127.0.0.1:1","token":"tok-very-secret","vmid":"x"}"#,
        )
        .unwrap();
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.contains(&boot.display().to_string()) && err.contains("vmid"),
            "{err}"
        );
        assert!(!err.contains("tok-very-secret"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unreachable_controller_exits_for_a_restart() {
        let env = Env::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let boot = env.write_bootstrap(&format!("http://127.0.0.1:{port}"));
        let out = env.run_runner(&boot, &["--allow-non-tmpfs"]).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("unreachable"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn non_tmpfs_secrets_dir_is_refused_before_the_token_is_spent() {
        let env = Env::new();
        let fs_type = std::process::Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(env.tmp.path())
            .output()
            .unwrap();
        if String::from_utf8_lossy(&fs_type.stdout).trim() == "tmpfs" {
            eprintln!("skipping: the temp dir is on a tmpfs");
            return;
        }
        let mock = Mock::start(|url| env.payload(url, "true", 60, bundle())).await;
        let boot = env.write_bootstrap(&mock.url);
        let out = env.run_runner(&boot, &[]).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("not a tmpfs"), "{}", stderr(&out));
        assert_eq!(mock.recorded(|r| r.fetches), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cached_payload_resumes_without_the_token() {
        let env = Env::new();
        let mock = Mock::start(|_| unreachable_payload()).await;
        let payload = env.payload(&mock.url, "echo resumed", 60, bundle());
        std::fs::create_dir_all(env.secrets_dir()).unwrap();
        std::fs::write(
            env.secrets_dir().join("payload.json"),
            serde_json::to_vec(&payload).unwrap(),
        )
        .unwrap();
        let out = env
            .run_runner(&env.path("no-such-bootstrap.json"), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(mock.final_report().state, GuestJobState::Completed);
        assert_eq!(mock.recorded(|r| r.fetches), 0);
        assert!(mock.log_text().contains("resumed"));
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bootstrap_step_failures_are_still_reported() {
        // A bundle file escaping the secrets dir fails the bootstrap step.
        let env = Env::new();
        let mut secrets = bundle();
        secrets.files.push(agentlab_core::SecretFile {
            path: "../escape".into(),
            mode: None,
            content: SecretValue::new("file-content-secret"),
        });
        let mock = Mock::start(|url| env.payload(url, "true", 60, secrets)).await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Failed);
        assert_eq!(report.failed_step.as_deref(), Some("bootstrap"));
        assert!(mock.bundle().contains_key("runner.log"));
        assert!(!env.path("escape").exists());
        env.assert_secrets_wiped();

        // An unusable work dir: no log or bundle possible, the final report still goes out.
        let env = Env::new();
        let mock = Mock::start(|url| env.payload(url, "true", 60, bundle())).await;
        let blocker = env.path("not-a-dir");
        std::fs::write(&blocker, "").unwrap();
        let work = blocker.join("work").display().to_string();
        let out = env
            .run_runner(
                &env.write_bootstrap(&mock.url),
                &["--allow-non-tmpfs", "--work-dir", &work],
            )
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Failed);
        assert_eq!(report.failed_step.as_deref(), Some("bootstrap"));
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sigterm_stops_the_agent_and_still_reports() {
        let env = Env::new();
        let cmd = "echo agent started; sleep 60; echo never";
        let mock = Mock::start(|url| env.payload(url, cmd, 600, bundle())).await;
        let child = env.spawn_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"]);
        // Wait (bounded) until the agent is running, then stop the runner like systemd would.
        let mut started = false;
        for _ in 0..1500 {
            if mock.log_text().contains("agent started") {
                started = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(started, "agent never started: {}", mock.log_text());
        let pid = child.id().unwrap().to_string();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Failed);
        assert_eq!(report.failed_step.as_deref(), Some("agent"));
        assert_eq!(report.exit_code, Some(143));
        assert!(report.error.unwrap().contains("stopped"));
        assert!(!mock.log_text().contains("never"));
        assert!(mock.bundle().contains_key("runner.log"));
        env.assert_secrets_wiped();
    }

    fn unreachable_payload() -> agentlab_core::api::guest::BootstrapPayload {
        let env = Env::new();
        env.payload("http://127.0.0.1:1", "false", 1, SecretBundle::default())
    }
}
