//! Opening a pull request on a GitHub-compatible forge through its REST API.
//!
//! - GitHub: `POST {api}/repos/{owner}/{repo}/pulls` with `Authorization: Bearer <token>`,
//!   `Accept: application/vnd.github+json` and `X-GitHub-Api-Version: 2022-11-28`.
//! - Gitea and Forgejo: `POST {api}/api/v1/repos/{owner}/{repo}/pulls` with
//!   `Authorization: token <token>` and `Accept: application/json`.
//!
//! Both take the JSON body `{"title", "head", "base", "body"}` and answer `201` with the pull
//! request, whose `html_url` is reported. Redirects are not followed (the token is never sent
//! anywhere but the configured API URL); the request times out after 30 s.

use std::time::Duration;

use agentlab_core::SecretValue;
use agentlab_core::model::PullRequestSpec;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, USER_AGENT};
use serde::Serialize;

use crate::error::GuestError;

/// How long the forge may take to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One pull request to open.
#[derive(Debug, Clone, Copy)]
pub struct PullRequest<'a> {
    /// Forge, API URL, repository and title.
    pub spec: &'a PullRequestSpec,
    /// The pushed branch.
    pub head: &'a str,
    /// The branch to merge into.
    pub base: &'a str,
    /// Description text.
    pub body: &'a str,
}

/// The JSON body both APIs take.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PullRequestBody<'a> {
    /// Title.
    pub title: &'a str,
    /// Source branch.
    pub head: &'a str,
    /// Target branch.
    pub base: &'a str,
    /// Description.
    pub body: &'a str,
}

/// The URL and headers of the create call for `pr` (the token is only in the headers).
pub fn endpoint(
    pr: &PullRequest<'_>,
    token: &SecretValue,
) -> Result<(String, HeaderMap), GuestError> {
    let s = pr.spec;
    let api = s.api_url.trim_end_matches('/');
    let bad = |why: &str| GuestError::step("open_pr", why.to_owned());
    let (url, auth, accept) = match s.forge.as_str() {
        "github" => (
            format!("{api}/repos/{}/{}/pulls", s.owner, s.repo),
            format!("Bearer {}", token.expose()),
            "application/vnd.github+json",
        ),
        "gitea" | "forgejo" => (
            format!("{api}/api/v1/repos/{}/{}/pulls", s.owner, s.repo),
            format!("token {}", token.expose()),
            "application/json",
        ),
        other => return Err(bad(&format!("unknown forge {other:?}"))),
    };
    let mut headers = HeaderMap::new();
    let mut auth = HeaderValue::from_str(&auth)
        .map_err(|_| bad("the git token is not usable in an HTTP header"))?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    headers.insert(ACCEPT, HeaderValue::from_static(accept));
    headers.insert(USER_AGENT, HeaderValue::from_static("agentlab-runner"));
    if s.forge == "github" {
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
    }
    Ok((url, headers))
}

/// Opens the pull request and returns its `html_url`. Errors are [`GuestError::Step`] of
/// `open_pr` with the HTTP status and the forge's `message` (never the token).
pub async fn open(pr: &PullRequest<'_>, token: &SecretValue) -> Result<String, GuestError> {
    let fail = |why: String| GuestError::step("open_pr", why);
    let (url, headers) = endpoint(pr, token)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
    let body = PullRequestBody {
        title: &pr.spec.title,
        head: pr.head,
        base: pr.base,
        body: pr.body,
    };
    let resp = client
        .post(&url)
        .headers(headers)
        .json(&body)
        .send()
        .await
        .map_err(|e| fail(format!("POST {url} failed: {}", e.without_url())))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if !status.is_success() {
        let msg = json
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or(text.as_str());
        let msg: String = msg.chars().take(300).collect();
        return Err(fail(format!("POST {url} answered {status}: {msg}")));
    }
    json.get("html_url")
        .and_then(|u| u.as_str())
        .map(str::to_owned)
        .ok_or_else(|| fail(format!("POST {url} answered {status} without html_url")))
}

#[cfg(test)]
#[path = "forge_tests.rs"]
mod tests;
