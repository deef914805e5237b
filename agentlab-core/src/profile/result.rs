//! Results back to git: the profile's `result:` section, the per-job override of the job
//! request, and their resolution into the [`JobResultSpec`] a job carries.
//!
//! Pushing is denied unless it is clearly safe: the branch template must contain `{job}` (so
//! every job pushes a branch of its own, never an existing one), the rendered name must be a
//! valid git branch name, and it may not be a well-known default branch name nor the job's
//! `git_ref`. The runner also refuses the remote's default branch and never force-pushes.
//! The forge API URL comes from the profile only: a job request cannot send the bundle's
//! token to a URL of its choosing.

use serde::{Deserialize, Serialize};

use crate::model::{JobResultSpec, PullRequestSpec};
use crate::yaml::yaml_enum;

/// The default branch template.
pub const DEFAULT_BRANCH_TEMPLATE: &str = "agentlab/{job}";

/// Branch names a job never pushes to, whatever the template says.
const PROTECTED_BRANCHES: [&str; 6] = ["main", "master", "trunk", "develop", "HEAD", "default"];

yaml_enum!(
    /// A GitHub-compatible forge (`result.pr.forge`).
    Forge {
        /// GitHub (`POST {api}/repos/{owner}/{repo}/pulls`, `Authorization: Bearer`).
        #[default]
        Github => "github",
        /// Gitea (`POST {api}/api/v1/repos/{owner}/{repo}/pulls`, `Authorization: token`).
        Gitea => "gitea",
        /// Forgejo (the Gitea API).
        Forgejo => "forgejo",
    }
);

/// `result:` section: push the job's branch back to the repository's remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultProfile {
    /// Push the job branch to `origin` after the agent (default `false`).
    pub push: bool,
    /// Branch template; `{job}` (required) and `{profile}` are replaced (default
    /// `agentlab/{job}`).
    pub branch: String,
    /// Commit what the agent left uncommitted before pushing (default `true`).
    pub commit_leftovers: bool,
    /// Open a pull request after the push (default `false`; needs `push`).
    pub open_pr: bool,
    /// Pull request settings.
    pub pr: PrProfile,
}

impl Default for ResultProfile {
    fn default() -> Self {
        Self {
            push: false,
            branch: DEFAULT_BRANCH_TEMPLATE.to_owned(),
            commit_leftovers: true,
            open_pr: false,
            pr: PrProfile::default(),
        }
    }
}

/// `result.pr:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrProfile {
    /// Title template (`{job}`, `{profile}`); default `AgentLab job {job}`.
    pub title: Option<String>,
    /// Branch to merge into; default the job's `git_ref`, else the remote's default branch.
    pub base: Option<String>,
    /// Which forge API to call (default `github`).
    pub forge: Forge,
    /// REST API base URL; derived (`https://api.github.com`) for github.com repositories,
    /// required otherwise.
    pub api_url: Option<String>,
}

/// The per-job override in `POST /v1/jobs` (`result`): every field falls back to the
/// profile's. The forge and its API URL are the profile's only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultOverride {
    /// Push (or, with `false`, do not push) the job branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<bool>,
    /// Branch template (must contain `{job}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Commit leftovers before pushing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_leftovers: Option<bool>,
    /// Open a pull request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_pr: Option<bool>,
    /// Pull request title template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_title: Option<String>,
    /// Pull request base branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_base: Option<String>,
}

/// The job a result is resolved for.
#[derive(Debug, Clone, Copy)]
pub struct ResultContext<'a> {
    /// Job id (`{job}`).
    pub job: &'a str,
    /// Profile name (`{profile}`).
    pub profile: &'a str,
    /// Repository URL the job clones.
    pub repo: &'a str,
    /// The job's `git_ref`, if any.
    pub git_ref: Option<&'a str>,
}

/// Replaces `{job}` and `{profile}` in `template`; any other `{…}` is an error.
pub fn render_template(template: &str, job: &str, profile: &str) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + job.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in {template:?}"))?;
        match &after[..end] {
            "job" => out.push_str(job),
            "profile" => out.push_str(profile),
            other => {
                return Err(format!(
                    "unknown placeholder {{{other}}} in {template:?}; use {{job}} or {{profile}}"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unmatched `}}` in {template:?}"));
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks `name` against git's branch name rules (`git check-ref-format --branch`), stricter
/// where git is lenient: at most 200 bytes, no leading `-`, no `refs/` prefix.
pub fn check_branch_name(name: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{name:?} is not a valid branch name: {why}"));
    if name.is_empty() || name.len() > 200 {
        return fail("must have 1 to 200 bytes");
    }
    if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        return fail("must not start with `-` or `/` nor end with `/`");
    }
    if name.ends_with('.') || name == "@" || name.contains("@{") || name.contains("..") {
        return fail("must not end with `.`, be `@`, or contain `@{` or `..`");
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        return fail(&format!("must not contain {c:?}"));
    }
    if name.starts_with("refs/") {
        return fail("give the branch name without `refs/`");
    }
    for part in name.split('/') {
        if part.is_empty() || part.starts_with('.') || part.ends_with(".lock") {
            return fail("components must be non-empty, not start with `.` nor end with `.lock`");
        }
    }
    Ok(())
}

/// Splits a repository URL into (host, owner, repository) for the forge API: `https://`,
/// `http://`, `ssh://` and scp-like `user@host:owner/repo(.git)`.
pub fn repo_coordinates(url: &str) -> Option<(String, String, String)> {
    let (host, path) = if let Some((_, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?;
        let host = host.split(':').next()?;
        (host, path)
    } else {
        let (user_host, path) = url.split_once(':')?;
        (user_host.rsplit('@').next()?, path)
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, repo) = path.rsplit_once('/')?;
    let owner = owner.rsplit('/').next()?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(host) && ok(owner) && ok(repo) && !host.is_empty())
        .then(|| (host.to_ascii_lowercase(), owner.to_owned(), repo.to_owned()))
}

/// Checks the parts of a `result:` section that do not depend on a job (used when profiles
/// load); returns the field and why.
pub(super) fn validate_profile(r: &ResultProfile) -> Result<(), (&'static str, String)> {
    check_template(&r.branch).map_err(|e| ("result.branch", e))?;
    if r.open_pr && !r.push {
        return Err(("result.open_pr", "needs `push: true`".to_owned()));
    }
    if let Some(t) = &r.pr.title {
        render_template(t, "job", "profile").map_err(|e| ("result.pr.title", e))?;
    }
    if let Some(b) = &r.pr.base {
        check_branch_name(b).map_err(|e| ("result.pr.base", e))?;
    }
    if let Some(u) = &r.pr.api_url {
        check_api_url(u).map_err(|e| ("result.pr.api_url", e))?;
    } else if r.open_pr && r.pr.forge != Forge::Github {
        return Err((
            "result.pr.api_url",
            format!("is required for forge {}", r.pr.forge),
        ));
    }
    Ok(())
}

fn check_template(t: &str) -> Result<(), String> {
    if !t.contains("{job}") {
        return Err(format!(
            "{t:?} must contain {{job}}, so every job pushes a branch of its own"
        ));
    }
    check_branch_name(&render_template(t, "job-0123456789abcdef", "profile")?)
}

fn check_api_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u:?} must be an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') || u.contains(['?', '#', ' ', '@']) {
        return Err(format!("{u:?} must be a plain base URL with a host"));
    }
    Ok(())
}

/// Merges the profile's `result:` with a job's override and resolves it for `ctx`: `None`
/// when nothing is pushed; `Err` (a message for the caller) when the combination is unsafe
/// or invalid.
pub fn resolve(
    profile: &ResultProfile,
    over: Option<&ResultOverride>,
    ctx: ResultContext<'_>,
) -> Result<Option<JobResultSpec>, String> {
    let none = ResultOverride::default();
    let o = over.unwrap_or(&none);
    let push = o.push.unwrap_or(profile.push);
    let open_pr = o.open_pr.unwrap_or(profile.open_pr && push);
    if !push {
        return match open_pr {
            true => Err("result.open_pr needs result.push".to_owned()),
            false => Ok(None),
        };
    }
    let template = o.branch.as_deref().unwrap_or(&profile.branch);
    check_template(template).map_err(|e| format!("result.branch: {e}"))?;
    let branch = render_template(template, ctx.job, ctx.profile)?;
    check_branch_name(&branch)?;
    if PROTECTED_BRANCHES.contains(&branch.as_str()) || Some(branch.as_str()) == ctx.git_ref {
        return Err(format!(
            "result.branch: refusing to push to {branch:?}, a base branch"
        ));
    }
    let pull_request = if open_pr {
        Some(pull_request(profile, o, ctx, &branch)?)
    } else {
        None
    };
    Ok(Some(JobResultSpec {
        branch,
        commit_leftovers: o.commit_leftovers.unwrap_or(profile.commit_leftovers),
        pull_request,
    }))
}

fn pull_request(
    profile: &ResultProfile,
    o: &ResultOverride,
    ctx: ResultContext<'_>,
    branch: &str,
) -> Result<PullRequestSpec, String> {
    let pr = &profile.pr;
    let (host, owner, repo) = repo_coordinates(ctx.repo).ok_or_else(|| {
        format!(
            "result.open_pr: cannot tell the forge owner and repository from {:?}",
            ctx.repo
        )
    })?;
    let api_url = match (&pr.api_url, pr.forge) {
        (Some(u), _) => u.trim_end_matches('/').to_owned(),
        (None, Forge::Github) if host == "github.com" => "https://api.github.com".to_owned(),
        (None, forge) => {
            return Err(format!(
                "result.open_pr: the profile must set result.pr.api_url for {forge} on {host}"
            ));
        }
    };
    let title = o
        .pr_title
        .as_deref()
        .or(pr.title.as_deref())
        .unwrap_or("AgentLab job {job}");
    let title = render_template(title, ctx.job, ctx.profile)?;
    if title.trim().is_empty() || title.chars().count() > 256 {
        return Err("result.pr.title must have 1 to 256 characters".to_owned());
    }
    let base = o
        .pr_base
        .clone()
        .or_else(|| pr.base.clone())
        .or_else(|| ctx.git_ref.map(str::to_owned));
    if let Some(b) = &base {
        check_branch_name(b).map_err(|e| format!("result.pr.base: {e}"))?;
        if b == branch {
            return Err("result.pr.base must differ from the pushed branch".to_owned());
        }
    }
    Ok(PullRequestSpec {
        forge: pr.forge.as_str().to_owned(),
        api_url,
        owner,
        repo,
        title,
        base,
    })
}
