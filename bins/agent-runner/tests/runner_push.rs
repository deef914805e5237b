//! Results back to git with the real binary: the job branch pushed over smart HTTP (`git
//! http-backend` behind Basic auth, credentials from the bundle through askpass), a refused
//! push failing the job with a redacted error, and a pull request opened on a fake Gitea API.

// Shared helpers; each test binary uses a subset.
#[cfg(test)]
#[allow(dead_code)]
mod common;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use agentlab_core::api::guest::GuestJobState;
    use agentlab_core::model::{JobResultSpec, PullRequestSpec};
    use agentlab_core::{GitCredentials, SecretBundle, SecretValue};
    use axum::http::{HeaderMap, Method, StatusCode, Uri};

    use super::common::{Env, Mock, git, git_http, stderr};

    const TOKEN: &str = "ghp_push_token_0123456789";
    const BRANCH: &str = "agentlab/job-0123abcd";
    /// The agent commits one change and leaves another uncommitted (a new file).
    const AGENT: &str =
        "echo more >> README.md && git commit -qam 'agent work' && echo left > left.txt";

    fn bundle(token: &str) -> SecretBundle {
        SecretBundle {
            git: Some(GitCredentials::Https {
                username: "bob".into(),
                token: SecretValue::new(token),
            }),
            ..SecretBundle::default()
        }
    }

    fn result(pull_request: Option<PullRequestSpec>) -> JobResultSpec {
        JobResultSpec {
            branch: BRANCH.to_owned(),
            commit_leftovers: true,
            pull_request,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn push_commits_leftovers_and_pushes_the_job_branch_over_https() {
        let env = Env::new();
        git(&env.origin, &["config", "http.receivepack", "true"]);
        let (base, _seen) = git_http::serve(env.tmp.path().to_owned(), "bob", TOKEN).await;
        let repo_url = format!("{base}/origin");
        let mock = Mock::start(|url| {
            let mut p = env.payload(url, AGENT, 60, bundle(TOKEN));
            p.job.repo = repo_url.clone();
            p.job.result = Some(result(None));
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
        let pushed = report.pushed.clone().expect("pushed");
        assert_eq!(pushed.branch, BRANCH);
        // The server's repository has the branch at the reported commit.
        let on_server = git(&env.origin, &["rev-parse", &format!("refs/heads/{BRANCH}")]);
        assert_eq!(pushed.commit, on_server);
        assert_eq!(report.commit.as_deref(), Some(on_server.as_str()));
        // The leftover was committed by the bot on top of the agent's commit.
        let spec = format!("{BRANCH}:left.txt");
        assert_eq!(git(&env.origin, &["show", &spec]), "left");
        let authors = git(&env.origin, &["log", "--format=%an <%ae>|%s", "-2", BRANCH]);
        let lines: Vec<&str> = authors.lines().collect();
        assert!(
            lines[0].starts_with("AgentLab <agentlab@agentlab.invalid>|AgentLab: changes"),
            "{authors}"
        );
        assert!(lines[1].ends_with("|agent work"), "{authors}");
        // Each is a step, and the token shows up nowhere.
        let steps = mock.recorded(|r| r.events.clone());
        assert!(
            steps.iter().any(|e| e == "status:Running:push"),
            "{steps:?}"
        );
        assert!(!logs.contains(TOKEN) && !stderr(&out).contains(TOKEN));
        assert!(
            logs.contains(&format!("pushed {on_server} to {BRANCH}")),
            "{logs}"
        );
        env.assert_secrets_wiped();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn refused_push_fails_the_job_with_a_redacted_git_error() {
        let env = Env::new();
        git(&env.origin, &["config", "http.receivepack", "true"]);
        // The bundle's token may clone but not push.
        let (base, _seen) =
            git_http::serve_split(env.tmp.path().to_owned(), "bob", TOKEN, "other-push-token")
                .await;
        let repo_url = format!("{base}/origin");
        let mock = Mock::start(|url| {
            let mut p = env.payload(url, AGENT, 60, bundle(TOKEN));
            p.job.repo = repo_url.clone();
            p.job.result = Some(result(None));
            p
        })
        .await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Failed, "{report:?}");
        assert_eq!(report.failed_step.as_deref(), Some("push"));
        let error = report.error.clone().unwrap();
        assert!(error.contains("git push failed"), "{error}");
        assert!(
            error.contains("Authentication failed") || error.contains("401"),
            "{error}"
        );
        assert!(!error.contains(TOKEN) && !mock.log_text().contains(TOKEN));
        assert_eq!(report.pushed, None);
        let branches = git(&env.origin, &["branch", "--list", BRANCH]);
        assert!(branches.is_empty(), "nothing was pushed: {branches}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_secret_in_the_commits_is_never_pushed() {
        let env = Env::new();
        git(&env.origin, &["config", "http.receivepack", "true"]);
        let (base, _seen) = git_http::serve(env.tmp.path().to_owned(), "bob", TOKEN).await;
        let repo_url = format!("{base}/origin");
        let mut secrets = bundle(TOKEN);
        secrets.env.insert(
            "API_KEY".into(),
            SecretValue::new("sk-live-abcdef0123456789"),
        );
        let mock = Mock::start(|url| {
            let mut p = env.payload(url, "echo \"$API_KEY\" > key.txt", 60, secrets);
            p.job.repo = repo_url.clone();
            p.job.result = Some(result(None));
            p
        })
        .await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Failed, "{report:?}");
        assert_eq!(report.failed_step.as_deref(), Some("push"));
        assert!(report.error.unwrap().contains("secrets bundle"));
        assert!(git(&env.origin, &["branch", "--list", BRANCH]).is_empty());
    }

    /// One request the fake forge received.
    #[derive(Debug, Clone)]
    struct Seen {
        method: Method,
        path: String,
        headers: HeaderMap,
        body: serde_json::Value,
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn open_pr_calls_the_gitea_api_with_the_bundle_token() {
        let env = Env::new();
        git(&env.origin, &["config", "http.receivepack", "true"]);
        let (base, _seen) = git_http::serve(env.tmp.path().to_owned(), "bob", TOKEN).await;
        let repo_url = format!("{base}/origin");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push(Seen {
                        method,
                        path: uri.path().to_owned(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or_default(),
                    });
                    (
                        StatusCode::CREATED,
                        axum::Json(serde_json::json!({
                            "number": 7, "html_url": "http://forge.test/o/r/pulls/7"
                        })),
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let pr = PullRequestSpec {
            forge: "gitea".into(),
            api_url: api,
            owner: "o".into(),
            repo: "r".into(),
            title: "AgentLab job job-0123abcd".into(),
            base: None,
        };
        let mock = Mock::start(|url| {
            let mut p = env.payload(url, AGENT, 60, bundle(TOKEN));
            p.job.repo = repo_url.clone();
            p.job.result = Some(result(Some(pr)));
            p
        })
        .await;
        let out = env
            .run_runner(&env.write_bootstrap(&mock.url), &["--allow-non-tmpfs"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let report = mock.final_report();
        assert_eq!(report.state, GuestJobState::Completed, "{report:?}");
        let pushed = report.pushed.unwrap();
        assert_eq!(
            pushed.pr_url.as_deref(),
            Some("http://forge.test/o/r/pulls/7")
        );
        let calls = seen.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        let c = &calls[0];
        assert_eq!(c.method, Method::POST);
        assert_eq!(c.path, "/api/v1/repos/o/r/pulls");
        assert_eq!(
            c.headers["authorization"].to_str().unwrap(),
            format!("token {TOKEN}")
        );
        assert_eq!(c.headers["accept"], "application/json");
        assert_eq!(c.headers["content-type"], "application/json");
        // No base in the spec: the remote's default branch, as the clone saw it.
        let default_branch = git(&env.origin, &["symbolic-ref", "--short", "HEAD"]);
        assert_eq!(c.body["base"], default_branch.as_str());
        assert_eq!(c.body["head"], BRANCH);
        assert_eq!(c.body["title"], "AgentLab job job-0123abcd");
        assert!(
            c.body["body"].as_str().unwrap().contains(&pushed.commit),
            "{:?}",
            c.body
        );
        let steps = mock.recorded(|r| r.events.clone());
        let push = steps.iter().position(|e| e == "status:Running:push");
        let open = steps.iter().position(|e| e == "status:Running:open_pr");
        assert!(push.is_some() && open > push, "{steps:?}");
    }
}
