//! Tests of the forge calls against a fake endpoint on loopback.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};

use super::*;

const TOKEN: &str = "ghp_forge_token_0123456789";

fn spec(forge: &str, api_url: &str) -> PullRequestSpec {
    PullRequestSpec {
        forge: forge.to_owned(),
        api_url: api_url.to_owned(),
        owner: "you".to_owned(),
        repo: "app".to_owned(),
        title: "AgentLab job job-1".to_owned(),
        base: Some("main".to_owned()),
    }
}

type Calls = Arc<Mutex<Vec<(Method, String, HeaderMap, serde_json::Value)>>>;

/// A fake forge answering every request with `status` and `reply`; returns its URL and calls.
async fn fake_forge(status: StatusCode, reply: serde_json::Value) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let record = calls.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let (record, reply) = (record.clone(), reply.clone());
            async move {
                let json = serde_json::from_slice(&body).unwrap_or_default();
                record
                    .lock()
                    .unwrap()
                    .push((method, uri.path().to_owned(), headers, json));
                (status, axum::Json(reply))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

#[test]
fn endpoints_follow_each_forge_api() {
    let token = SecretValue::new(TOKEN);
    let s = spec("github", "https://api.github.com/");
    let pr = PullRequest {
        spec: &s,
        head: "agentlab/job-1",
        base: "main",
        body: "b",
    };
    let (url, headers) = endpoint(&pr, &token).unwrap();
    assert_eq!(url, "https://api.github.com/repos/you/app/pulls");
    assert_eq!(headers[AUTHORIZATION], format!("Bearer {TOKEN}").as_str());
    assert!(headers[AUTHORIZATION].is_sensitive());
    assert_eq!(headers[ACCEPT], "application/vnd.github+json");
    assert_eq!(headers["x-github-api-version"], "2022-11-28");
    for forge in ["gitea", "forgejo"] {
        let s = spec(forge, "http://127.0.0.1:3000");
        let pr = PullRequest { spec: &s, ..pr };
        let (url, headers) = endpoint(&pr, &token).unwrap();
        assert_eq!(url, "http://127.0.0.1:3000/api/v1/repos/you/app/pulls");
        assert_eq!(headers[AUTHORIZATION], format!("token {TOKEN}").as_str());
        assert_eq!(headers[ACCEPT], "application/json");
        assert!(!headers.contains_key("x-github-api-version"));
    }
    let s = spec("gitlab", "http://x");
    let err = endpoint(&PullRequest { spec: &s, ..pr }, &token).unwrap_err();
    assert!(err.to_string().contains("gitlab"));
}

#[tokio::test]
async fn github_pull_request_is_posted_with_bearer_token() {
    let (api, calls) = fake_forge(
        StatusCode::CREATED,
        serde_json::json!({"number": 3, "html_url": "https://github.test/you/app/pull/3"}),
    )
    .await;
    let s = spec("github", &api);
    let pr = PullRequest {
        spec: &s,
        head: "agentlab/job-1",
        base: "main",
        body: "Pushed by AgentLab job job-1.",
    };
    let url = open(&pr, &SecretValue::new(TOKEN)).await.unwrap();
    assert_eq!(url, "https://github.test/you/app/pull/3");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (method, path, headers, body) = &calls[0];
    assert_eq!(method, Method::POST);
    assert_eq!(path, "/repos/you/app/pulls");
    assert_eq!(headers["authorization"], format!("Bearer {TOKEN}").as_str());
    assert_eq!(headers["accept"], "application/vnd.github+json");
    assert_eq!(headers["x-github-api-version"], "2022-11-28");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        &serde_json::json!({
            "title": "AgentLab job job-1",
            "head": "agentlab/job-1",
            "base": "main",
            "body": "Pushed by AgentLab job job-1.",
        })
    );
}

#[tokio::test]
async fn forge_errors_carry_status_and_message_but_not_the_token() {
    let (api, _calls) = fake_forge(
        StatusCode::UNPROCESSABLE_ENTITY,
        serde_json::json!({"message": "Validation Failed: a pull request already exists"}),
    )
    .await;
    let s = spec("github", &api);
    let pr = PullRequest {
        spec: &s,
        head: "h",
        base: "main",
        body: "b",
    };
    let err = open(&pr, &SecretValue::new(TOKEN)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(
        err,
        GuestError::Step {
            step: "open_pr",
            ..
        }
    ));
    assert!(
        text.contains("422") && text.contains("already exists"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    // A 3xx answer is an error too (redirects are never followed).
    let (api, _calls) = fake_forge(StatusCode::MOVED_PERMANENTLY, serde_json::json!({})).await;
    let s = spec("gitea", &api);
    let err = open(&PullRequest { spec: &s, ..pr }, &SecretValue::new(TOKEN))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("301"), "{err}");
}
