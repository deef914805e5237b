//! Git operations of the runner, with the real `git` binary.
//!
//! **Credentials.** HTTPS tokens reach git through a `GIT_ASKPASS` script in the secrets
//! directory that `cat`s the username/token files next to it: the token is never in argv, the
//! environment or the remote URL. SSH keys are written to the secrets directory and used via
//! `GIT_SSH_COMMAND` with `IdentitiesOnly`, `BatchMode` and `StrictHostKeyChecking=yes`
//! against the bundle's `known_hosts` (without it, SSH clones fail closed).
//!
//! **Untrusted checkouts.** A checkout the runner did not just create (a reused workspace,
//! or the repository after the agent ran) is untrusted: before the runner runs git in it,
//! [`sanitize_repo`] replaces `.git/config` with a minimal one (keeping only the object format
//! and the origin remote) and empties `.git/hooks`, so planted `core.fsmonitor`,
//! `core.sshCommand`, `filter.*`, `diff.external`, `core.pager`, `credential.helper`,
//! `core.worktree`, `include.path` and hooks are gone. Every git call also passes
//! `-c core.hooksPath=/dev/null -c core.fsmonitor=false -c credential.helper=
//! -c protocol.ext.allow=never -c safe.directory=<clone_path>`, and runs with
//! `GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_TERMINAL_PROMPT=0`,
//! `GIT_PAGER=cat` and the inherited `GIT_DIR`/`GIT_WORK_TREE`/… variables removed. Diffs use
//! `--no-ext-diff --no-textconv`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentlab_core::GitCredentials;
use agentlab_core::api::guest::GuestJobSpec;
use tokio::process::Command;

use crate::error::GuestError;
use crate::logs::LogHandle;
use crate::process::{self, Limits};
use crate::secrets_dir::{SecretsDir, write_private};

pub use crate::git_sanitize::sanitize_repo;

/// Timeout for short local git queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Inherited variables that would redirect git.
const SCRUBBED_ENV: [&str; 9] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_NAMESPACE",
];

/// Runs git for one job's checkout.
#[derive(Debug, Clone)]
pub struct Git {
    bin: PathBuf,
    dir: PathBuf,
    repo_url: String,
    env: Vec<(String, String)>,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Git {
    /// Prepares credentials (files under the secrets dir's runner sub-directory) and env.
    pub fn new(
        bin: &Path,
        spec: &GuestJobSpec,
        secrets: &SecretsDir,
        creds: Option<&GitCredentials>,
    ) -> Result<Self, GuestError> {
        let mut env: Vec<(String, String)> = [
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_PAGER", "cat"),
            ("GIT_EDITOR", "true"),
            ("LC_ALL", "C"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let ssh_base = "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes";
        match creds {
            Some(GitCredentials::Https { username, token }) => {
                let dir = secrets.runner_dir()?;
                write_private(&dir.join("git-username"), username.as_bytes(), 0o600)?;
                write_private(&dir.join("git-token"), token.expose().as_bytes(), 0o600)?;
                let q = |name: &str| shell_quote(&dir.join(name).display().to_string());
                let script = format!(
                    "#!/bin/sh\ncase \"$1\" in\n  Username*|username*) exec cat {} ;;\n  *) exec cat {} ;;\nesac\n",
                    q("git-username"),
                    q("git-token")
                );
                let askpass = dir.join("git-askpass");
                write_private(&askpass, script.as_bytes(), 0o700)?;
                env.push(("GIT_ASKPASS".to_owned(), askpass.display().to_string()));
                env.push(("GIT_SSH_COMMAND".to_owned(), ssh_base.to_owned()));
            }
            Some(GitCredentials::Ssh {
                private_key,
                known_hosts,
            }) => {
                let dir = secrets.runner_dir()?;
                let key = dir.join("ssh-key");
                let mut key_text = private_key.expose().to_owned();
                if !key_text.ends_with('\n') {
                    key_text.push('\n');
                }
                write_private(&key, key_text.as_bytes(), 0o600)?;
                let kh = dir.join("known_hosts");
                write_private(&kh, known_hosts.as_deref().unwrap_or("").as_bytes(), 0o600)?;
                env.push((
                    "GIT_SSH_COMMAND".to_owned(),
                    format!(
                        "{ssh_base} -o IdentitiesOnly=yes -i {} -o UserKnownHostsFile={}",
                        shell_quote(&key.display().to_string()),
                        shell_quote(&kh.display().to_string())
                    ),
                ));
            }
            None => env.push(("GIT_SSH_COMMAND".to_owned(), ssh_base.to_owned())),
        }
        Ok(Self {
            bin: bin.to_owned(),
            dir: PathBuf::from(&spec.clone_path),
            repo_url: spec.repo.clone(),
            env,
        })
    }

    /// A git command with the safety options; runs in the checkout when `in_repo`.
    pub(crate) fn cmd(&self, in_repo: bool) -> Command {
        let mut c = Command::new(&self.bin);
        for k in SCRUBBED_ENV {
            c.env_remove(k);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        for opt in [
            "core.hooksPath=/dev/null".to_owned(),
            "core.fsmonitor=false".to_owned(),
            "credential.helper=".to_owned(),
            "protocol.ext.allow=never".to_owned(),
            format!("safe.directory={}", self.dir.display()),
        ] {
            c.arg("-c").arg(opt);
        }
        if in_repo {
            c.arg("-C").arg(&self.dir);
        }
        c
    }

    pub(crate) async fn query(&self, args: &[&str]) -> Result<(i32, String), GuestError> {
        let mut c = self.cmd(true);
        c.args(args);
        let (code, out, _) = process::output(c, "git", QUERY_TIMEOUT).await?;
        Ok((code, String::from_utf8_lossy(&out).trim().to_owned()))
    }

    async fn streamed(
        &self,
        c: Command,
        what: &str,
        limits: &Limits,
        logs: &LogHandle,
    ) -> Result<(), GuestError> {
        self.streamed_step(c, what, "clone", limits, logs).await
    }

    /// Runs `c` with its output in the log; a failure is a [`GuestError::Step`] of `step`
    /// carrying the last lines of git's stderr.
    pub(crate) async fn streamed_step(
        &self,
        c: Command,
        what: &str,
        step: &'static str,
        limits: &Limits,
        logs: &LogHandle,
    ) -> Result<(), GuestError> {
        let run = process::run_streamed(c, what, limits, logs)
            .await
            .map_err(|e| GuestError::step(step, e.to_string()))?;
        if run.end.success() {
            return Ok(());
        }
        let tail: Vec<&str> = run
            .stderr_tail
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
        Err(GuestError::step(
            step,
            format!(
                "{what} failed (exit code {}): {}",
                run.end.code(),
                tail.join(" | ")
            ),
        ))
    }

    /// The directory of the checkout.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The git binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The `origin` URL.
    pub fn repo_url(&self) -> &str {
        &self.repo_url
    }

    /// Clones (or refreshes a reused checkout), checks out the ref onto the work branch and
    /// returns the starting commit. Errors are [`GuestError::Step`] with step `clone`.
    pub async fn checkout(
        &self,
        spec: &GuestJobSpec,
        limits: &Limits,
        logs: &LogHandle,
    ) -> Result<String, GuestError> {
        let reused = self.dir.join(".git").exists();
        if reused {
            logs.runner(&format!(
                "reusing checkout at {} (sanitizing .git)",
                self.dir.display()
            ))
            .await;
            sanitize_repo(&self.bin, &self.dir, &self.repo_url).await?;
            let mut c = self.cmd(true);
            c.args(["fetch", "--prune", "--tags", "origin"]);
            self.streamed(c, "git fetch", limits, logs).await?;
        } else {
            if let Some(parent) = self.dir.parent() {
                fs::create_dir_all(parent).map_err(|e| {
                    GuestError::step("clone", format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            logs.runner(&format!(
                "cloning {} into {}",
                self.repo_url,
                self.dir.display()
            ))
            .await;
            let mut c = self.cmd(false);
            c.args(["clone", "--no-checkout", "--"])
                .arg(&self.repo_url)
                .arg(&self.dir);
            self.streamed(c, "git clone", limits, logs).await?;
        }
        let target = self.resolve(spec.git_ref.as_deref(), limits, logs).await?;
        let mut c = self.cmd(true);
        c.args(["checkout", "--force", "-B", &spec.work_branch, &target]);
        self.streamed(c, "git checkout", limits, logs).await?;
        logs.runner(&format!("checked out {target} as {}", spec.work_branch))
            .await;
        Ok(target)
    }

    async fn resolve(
        &self,
        git_ref: Option<&str>,
        limits: &Limits,
        logs: &LogHandle,
    ) -> Result<String, GuestError> {
        let candidates: Vec<String> = match git_ref {
            None => vec!["refs/remotes/origin/HEAD".into(), "HEAD".into()],
            Some(r) if r.starts_with('-') || r.is_empty() => {
                return Err(GuestError::step("clone", format!("invalid ref {r:?}")));
            }
            Some(r) => vec![
                format!("refs/remotes/origin/{r}"),
                format!("refs/tags/{r}"),
                r.to_owned(),
            ],
        };
        for cand in &candidates {
            if let Some(sha) = self.rev(cand).await? {
                return Ok(sha);
            }
        }
        if let Some(r) = git_ref {
            let mut c = self.cmd(true);
            c.args(["fetch", "origin", "--", r]);
            self.streamed(c, "git fetch of the ref", limits, logs)
                .await?;
            if let Some(sha) = self.rev("FETCH_HEAD").await? {
                return Ok(sha);
            }
        }
        Err(GuestError::step(
            "clone",
            format!(
                "ref {:?} not found in {}",
                git_ref.unwrap_or("HEAD"),
                self.repo_url
            ),
        ))
    }

    pub(crate) async fn rev(&self, name: &str) -> Result<Option<String>, GuestError> {
        let spec = format!("{name}^{{commit}}");
        let (code, out) = self
            .query(&["rev-parse", "--verify", "--quiet", &spec])
            .await?;
        Ok((code == 0 && !out.is_empty()).then_some(out))
    }

    /// After the agent: sanitizes the checkout, returns `(HEAD, summary)` against `base`.
    pub async fn outcome(
        &self,
        base: &str,
        branch: &str,
    ) -> Result<(Option<String>, String), GuestError> {
        sanitize_repo(&self.bin, &self.dir, &self.repo_url).await?;
        let head = self.rev("HEAD").await?;
        let range = format!("{base}..HEAD");
        let (_, count) = self.query(&["rev-list", "--count", &range]).await?;
        let (_, stat) = self
            .query(&[
                "diff",
                "--shortstat",
                "--no-ext-diff",
                "--no-textconv",
                base,
                "HEAD",
            ])
            .await?;
        let (_, dirty) = self.query(&["status", "--porcelain"]).await?;
        let mut summary = format!(
            "{} new commit(s) on {branch}: {}",
            count.parse::<u64>().unwrap_or(0),
            if stat.is_empty() {
                "no changes"
            } else {
                stat.as_str()
            }
        );
        if !dirty.is_empty() {
            summary.push_str("; uncommitted changes left in the working tree");
        }
        Ok((head, summary))
    }

    /// `git format-patch --stdout base..HEAD` (empty when there are no new commits).
    pub async fn patch(&self, base: &str) -> Result<Vec<u8>, GuestError> {
        let mut c = self.cmd(true);
        c.args(["format-patch", "--stdout", "--binary", "--no-ext-diff"])
            .arg(format!("{base}..HEAD"));
        let (_, out, _) = process::output(c, "git format-patch", QUERY_TIMEOUT).await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use agentlab_core::api::guest::GuestAgent;
    use agentlab_core::{GitCredentials, SecretValue};

    use super::*;

    fn spec(dir: &Path) -> GuestJobSpec {
        GuestJobSpec {
            job_id: "job-1".parse().unwrap(),
            repo: "https://git.example.invalid/r.git".into(),
            git_ref: None,
            task: "t".into(),
            agent: GuestAgent::default(),
            mode: "yolo".into(),
            timeout_secs: 1,
            clone_path: dir.join("checkout").display().to_string(),
            work_branch: "agentlab/job-1".into(),
            result: None,
        }
    }

    #[tokio::test]
    async fn https_token_reaches_git_only_through_askpass() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretsDir::prepare(&dir.path().join("s"), true).unwrap();
        let creds = GitCredentials::Https {
            username: "bob".into(),
            token: SecretValue::new("ghp_token_abcdef123"),
        };
        let git = Git::new(Path::new("git"), &spec(dir.path()), &secrets, Some(&creds)).unwrap();
        assert!(
            git.env
                .iter()
                .all(|(_, v)| !v.contains("ghp_token_abcdef123"))
        );
        let askpass = &git.env.iter().find(|(k, _)| k == "GIT_ASKPASS").unwrap().1;
        let mode = fs::metadata(askpass).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let ask = |prompt: &str| {
            let out = std::process::Command::new(askpass)
                .arg(prompt)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(
            ask("Password for 'https://bob@git.example.invalid': "),
            "ghp_token_abcdef123"
        );
        assert_eq!(ask("Username for 'https://git.example.invalid': "), "bob");
        let token_file = secrets.path().join(".runner/git-token");
        assert_eq!(
            fs::metadata(token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[tokio::test]
    async fn ssh_key_is_used_through_git_ssh_command() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretsDir::prepare(&dir.path().join("s"), true).unwrap();
        let creds = GitCredentials::Ssh {
            private_key: SecretValue::new(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
            ),
            known_hosts: Some("git.example.invalid ssh-ed25519 AAAA".into()),
        };
        let git = Git::new(Path::new("git"), &spec(dir.path()), &secrets, Some(&creds)).unwrap();
        let ssh = &git
            .env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .unwrap()
            .1;
        assert!(ssh.contains("StrictHostKeyChecking=yes") && ssh.contains("IdentitiesOnly=yes"));
        assert!(!ssh.contains("OPENSSH PRIVATE KEY"));
        let key = fs::read_to_string(secrets.path().join(".runner/ssh-key")).unwrap();
        assert!(key.ends_with("-----\n"));
    }
}
