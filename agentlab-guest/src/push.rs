//! Results back to git, after a successful agent step: the `push` step (commit leftovers,
//! refuse secrets and base branches, push the job branch to `origin`) and the `open_pr` step
//! ([`crate::forge`]).
//!
//! The checkout is untrusted after the agent ran, so it is sanitized first
//! ([`crate::git::sanitize_repo`]) and every git call keeps the runner's protections (no hooks,
//! no fsmonitor, no credential helper, no system or global config). Credentials reach git
//! exactly as for the clone: through the askpass script or `GIT_SSH_COMMAND`, never argv, the
//! environment or the URL. Leftovers are committed under a fixed identity with
//! `--no-verify`; the push names an explicit refspec without `+`, so it never rewrites an
//! existing branch. Before pushing, `base..HEAD` (as `format-patch --binary`, commit messages
//! included) is scanned for every bundle value in the encodings the redactor knows: a job
//! whose commits carry a secret fails instead of publishing it.

use agentlab_core::GitCredentials;
use agentlab_core::model::{JobPushed, JobResultSpec};
use agentlab_core::redact::Redactor;
use agentlab_core::redact::archive::bytes_contain_secret;

use crate::error::GuestError;
use crate::forge;
use crate::git::{Git, sanitize_repo};
use crate::process::{Limits, ProcessEnd};
use crate::steps::{StepCtx, report_step};

/// The identity of commits the runner makes for leftovers.
pub const BOT_NAME: &str = "AgentLab";
/// The e-mail address of [`BOT_NAME`].
pub const BOT_EMAIL: &str = "agentlab@agentlab.invalid";

/// Runs `push` (and `open_pr`) when the agent step succeeded and the job has a `result`.
/// Returns the steps' result (a push failure replaces the agent's success) and what was
/// pushed, which is kept even when opening the pull request fails.
pub(crate) async fn after_agent(
    ctx: &StepCtx<'_>,
    result: Result<ProcessEnd, GuestError>,
    checkout: Option<&(Git, String)>,
    redactor: &Redactor,
) -> (Result<ProcessEnd, GuestError>, Option<JobPushed>) {
    let (Ok(ProcessEnd::Exited(0)), Some(spec), Some((git, base))) =
        (&result, &ctx.payload.job.result, checkout)
    else {
        return (result, None);
    };
    let mut pushed = match push(ctx, git, base, spec, redactor).await {
        Ok(Some(p)) => p,
        Ok(None) => return (result, None),
        Err(e) => return (Err(e), None),
    };
    if let Some(pr) = &spec.pull_request {
        let opened = async {
            report_step(ctx, "open_pr").await?;
            let token = match &ctx.payload.secrets.git {
                Some(GitCredentials::Https { token, .. }) => token,
                _ => {
                    return Err(GuestError::step(
                        "open_pr",
                        "opening a pull request needs an HTTPS git token in the secrets bundle",
                    ));
                }
            };
            let base = match &pr.base {
                Some(b) => b.clone(),
                None => remote_default_branch(git).await?.ok_or_else(|| {
                    GuestError::step("open_pr", "the remote's default branch is unknown")
                })?,
            };
            let body = format!(
                "Pushed by AgentLab job {} (commit {}).",
                ctx.payload.job.job_id, pushed.commit
            );
            let req = forge::PullRequest {
                spec: pr,
                head: &pushed.branch,
                base: &base,
                body: &body,
            };
            forge::open(&req, token).await
        }
        .await;
        match opened {
            Ok(url) => {
                ctx.logs.runner(&format!("opened pull request {url}")).await;
                pushed.pr_url = Some(url);
            }
            Err(e) => return (Err(e), Some(pushed)),
        }
    }
    (result, Some(pushed))
}

/// The `push` step; `Ok(None)` when there is nothing to push (no new commit).
async fn push(
    ctx: &StepCtx<'_>,
    git: &Git,
    base: &str,
    spec: &JobResultSpec,
    redactor: &Redactor,
) -> Result<Option<JobPushed>, GuestError> {
    let fail = |why: String| GuestError::step("push", why);
    report_step(ctx, "push").await?;
    sanitize_repo(git.bin(), git.dir(), git.repo_url())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let limits = Limits {
        timeout: ctx.config.clone_timeout,
        grace: ctx.config.kill_grace,
        cancel: ctx.cancel.clone(),
    };
    if spec.commit_leftovers {
        commit_leftovers(ctx, git, &limits).await?;
    }
    let head = git
        .rev("HEAD")
        .await?
        .ok_or_else(|| fail("the work branch has no commit".to_owned()))?;
    if head == base {
        ctx.logs
            .runner("nothing to push: no new commit on the work branch")
            .await;
        return Ok(None);
    }
    if remote_default_branch(git).await?.as_deref() == Some(spec.branch.as_str()) {
        return Err(fail(format!(
            "refusing to push to {}, the remote's default branch",
            spec.branch
        )));
    }
    let patch = git.patch(base).await?;
    let scan_redactor = redactor.clone();
    let leaks = tokio::task::spawn_blocking(move || bytes_contain_secret(&patch, &scan_redactor))
        .await
        .map_err(|e| fail(format!("secret scan failed: {e}")))?;
    if leaks {
        return Err(fail(
            "refusing to push: the new commits contain a value from the secrets bundle".to_owned(),
        ));
    }
    ctx.logs
        .runner(&format!("pushing {head} to origin as {}", spec.branch))
        .await;
    let mut c = git.cmd(true);
    c.args(["push", "--porcelain", "--no-verify", "origin", "--"])
        .arg(format!("{head}:refs/heads/{}", spec.branch));
    git.streamed_step(c, "git push", "push", &limits, ctx.logs)
        .await?;
    ctx.logs
        .runner(&format!("pushed {head} to {}", spec.branch))
        .await;
    Ok(Some(JobPushed {
        branch: spec.branch.clone(),
        commit: head,
        pr_url: None,
    }))
}

/// `git add -A` and a commit under the bot identity, when the working tree is dirty.
async fn commit_leftovers(ctx: &StepCtx<'_>, git: &Git, limits: &Limits) -> Result<(), GuestError> {
    let (_, dirty) = git.query(&["status", "--porcelain"]).await?;
    if dirty.is_empty() {
        return Ok(());
    }
    ctx.logs
        .runner("committing changes the agent left uncommitted")
        .await;
    let mut add = git.cmd(true);
    add.args(["add", "--all", "--", "."]);
    git.streamed_step(add, "git add", "push", limits, ctx.logs)
        .await?;
    let mut commit = git.cmd(true);
    commit
        .arg("-c")
        .arg(format!("user.name={BOT_NAME}"))
        .arg("-c")
        .arg(format!("user.email={BOT_EMAIL}"))
        .args([
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--no-verify",
            "--quiet",
        ])
        .arg("-m")
        .arg(format!(
            "AgentLab: changes left uncommitted by job {}",
            ctx.payload.job.job_id
        ))
        .env("GIT_AUTHOR_NAME", BOT_NAME)
        .env("GIT_AUTHOR_EMAIL", BOT_EMAIL)
        .env("GIT_COMMITTER_NAME", BOT_NAME)
        .env("GIT_COMMITTER_EMAIL", BOT_EMAIL);
    git.streamed_step(commit, "git commit", "push", limits, ctx.logs)
        .await
}

/// The branch `origin/HEAD` points at in the checkout (set by the clone), if known.
async fn remote_default_branch(git: &Git) -> Result<Option<String>, GuestError> {
    let (code, out) = git
        .query(&["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"])
        .await?;
    Ok((code == 0)
        .then(|| out.strip_prefix("refs/remotes/origin/").map(str::to_owned))
        .flatten())
}
