//! The agent command line and environment.
//!
//! - A job `command` runs as `sh -c <command> agent <task>`: the task is `$1` and
//!   `$AGENTLAB_TASK`.
//! - Presets (mode `yolo` / `interactive`):
//!   - `claude`: `claude -p <task> --dangerously-skip-permissions` / `claude -p <task>`;
//!   - `codex`: `codex exec --dangerously-bypass-approvals-and-sandbox <task>` /
//!     `codex exec --full-auto <task>`;
//!   - `opencode`: `opencode run <task>` (both modes; permissions come from its config).
//! - With policy `inner_sandbox: bubblewrap` the command is wrapped in
//!   `bwrap --die-with-parent --ro-bind / / --dev /dev --tmpfs /tmp --bind <repo> <repo>
//!   --bind <artifacts> <artifacts> --bind <home> <home> --ro-bind <secrets> <secrets>
//!   --tmpfs <secrets>/.runner --dev-bind /dev/null <secrets>/payload.json --chdir <repo>
//!   <inner_sandbox_args…> -- <command…>` (the `.runner` and `payload.json` masks hide the
//!   runner token and git credentials from the agent).
//!
//! Environment: the runner's own environment, then the bundle's `env`, then `AGENTLAB_TASK`,
//! `AGENTLAB_JOB_ID`, `AGENTLAB_ARTIFACTS_DIR`, `AGENTLAB_SECRETS_DIR`, `HOME`, and
//! `CLAUDE_CONFIG_DIR=<secrets>/claude` when the bundle carries Claude settings. Git
//! identity variables default to `AgentLab agent <agent@agentlab.invalid>` when neither the
//! runner's environment nor the bundle sets them.

use std::path::{Path, PathBuf};

use agentlab_core::api::guest::{BootstrapPayload, GuestAgent};

use crate::error::GuestError;
use crate::secrets_dir::{PAYLOAD_FILE, RUNNER_SUBDIR};

/// Where things are, for the agent's command line and environment.
#[derive(Debug, Clone)]
pub struct AgentPaths {
    /// The checkout (working directory).
    pub repo: PathBuf,
    /// `$AGENTLAB_ARTIFACTS_DIR`.
    pub artifacts: PathBuf,
    /// The secrets directory.
    pub secrets: PathBuf,
    /// `$HOME`.
    pub home: PathBuf,
    /// `$CLAUDE_CONFIG_DIR`, when Claude settings were installed.
    pub claude_config: Option<PathBuf>,
}

/// The agent's argv (before any inner sandbox).
pub fn agent_argv(agent: &GuestAgent, mode: &str, task: &str) -> Result<Vec<String>, GuestError> {
    let yolo = match mode {
        "yolo" => true,
        "interactive" => false,
        other => {
            return Err(GuestError::step(
                "agent",
                format!("unknown mode {other:?} (expected yolo or interactive)"),
            ));
        }
    };
    let task = task.to_owned();
    if let Some(cmd) = &agent.command {
        return Ok(vec![
            "sh".into(),
            "-c".into(),
            cmd.clone(),
            "agent".into(),
            task,
        ]);
    }
    let argv: Vec<String> = match (agent.preset.as_deref(), yolo) {
        (Some("claude"), true) => vec![
            "claude".into(),
            "-p".into(),
            task,
            "--dangerously-skip-permissions".into(),
        ],
        (Some("claude"), false) => vec!["claude".into(), "-p".into(), task],
        (Some("codex"), true) => vec![
            "codex".into(),
            "exec".into(),
            "--dangerously-bypass-approvals-and-sandbox".into(),
            task,
        ],
        (Some("codex"), false) => vec!["codex".into(), "exec".into(), "--full-auto".into(), task],
        (Some("opencode"), _) => vec!["opencode".into(), "run".into(), task],
        (Some(other), _) => {
            return Err(GuestError::step(
                "agent",
                format!("unknown agent preset {other:?} (expected claude, codex or opencode)"),
            ));
        }
        (None, _) => {
            return Err(GuestError::step(
                "agent",
                "job has neither an agent command nor a preset",
            ));
        }
    };
    Ok(argv)
}

/// Wraps `argv` in bubblewrap when `policy` says so.
pub fn sandboxed_argv(
    payload: &BootstrapPayload,
    bwrap_bin: &Path,
    paths: &AgentPaths,
    argv: Vec<String>,
) -> Result<Vec<String>, GuestError> {
    match payload.policy.inner_sandbox.as_str() {
        "none" | "" => return Ok(argv),
        "bubblewrap" => {}
        other => {
            return Err(GuestError::step(
                "agent",
                format!("unknown inner sandbox {other:?} (expected none or bubblewrap)"),
            ));
        }
    }
    let p = |path: &Path| path.display().to_string();
    let mut out = vec![p(bwrap_bin), "--die-with-parent".into()];
    let mut push = |args: &[&str]| out.extend(args.iter().map(|s| (*s).to_owned()));
    let (repo, artifacts, home, secrets) = (
        p(&paths.repo),
        p(&paths.artifacts),
        p(&paths.home),
        p(&paths.secrets),
    );
    push(&["--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/tmp"]);
    push(&["--bind", &repo, &repo, "--bind", &artifacts, &artifacts]);
    if paths.home.is_dir() && paths.home != Path::new("/") {
        push(&["--bind", &home, &home]);
    }
    push(&["--ro-bind", &secrets, &secrets]);
    let runner_dir = paths.secrets.join(RUNNER_SUBDIR);
    if runner_dir.exists() {
        push(&["--tmpfs", &p(&runner_dir)]);
    }
    let payload_file = paths.secrets.join(PAYLOAD_FILE);
    if payload_file.exists() {
        push(&["--dev-bind", "/dev/null", &p(&payload_file)]);
    }
    if let Some(claude) = &paths.claude_config {
        let c = p(claude);
        push(&["--bind", &c, &c]);
    }
    push(&["--chdir", &repo]);
    out.extend(payload.policy.inner_sandbox_args.iter().cloned());
    out.push("--".into());
    out.extend(argv);
    Ok(out)
}

/// The variables added to the runner's environment for the agent (later entries win).
pub fn agent_env(payload: &BootstrapPayload, paths: &AgentPaths) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (key, default) in [
        ("GIT_AUTHOR_NAME", "AgentLab agent"),
        ("GIT_AUTHOR_EMAIL", "agent@agentlab.invalid"),
        ("GIT_COMMITTER_NAME", "AgentLab agent"),
        ("GIT_COMMITTER_EMAIL", "agent@agentlab.invalid"),
    ] {
        if std::env::var_os(key).is_none() && !payload.secrets.env.contains_key(key) {
            env.push((key.to_owned(), default.to_owned()));
        }
    }
    env.extend(
        payload
            .secrets
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned())),
    );
    let p = |path: &Path| path.display().to_string();
    env.push(("AGENTLAB_TASK".into(), payload.job.task.clone()));
    env.push(("AGENTLAB_JOB_ID".into(), payload.job.job_id.to_string()));
    env.push(("AGENTLAB_ARTIFACTS_DIR".into(), p(&paths.artifacts)));
    env.push(("AGENTLAB_SECRETS_DIR".into(), p(&paths.secrets)));
    env.push(("HOME".into(), p(&paths.home)));
    if let Some(c) = &paths.claude_config {
        env.push(("CLAUDE_CONFIG_DIR".into(), p(c)));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(command: Option<&str>, preset: Option<&str>) -> GuestAgent {
        GuestAgent {
            command: command.map(str::to_owned),
            preset: preset.map(str::to_owned),
        }
    }

    #[test]
    fn presets_and_commands() {
        assert_eq!(
            agent_argv(&agent(None, Some("claude")), "yolo", "fix it").unwrap(),
            ["claude", "-p", "fix it", "--dangerously-skip-permissions"]
        );
        assert_eq!(
            agent_argv(&agent(None, Some("claude")), "interactive", "t").unwrap(),
            ["claude", "-p", "t"]
        );
        assert_eq!(
            agent_argv(&agent(None, Some("opencode")), "yolo", "t").unwrap(),
            ["opencode", "run", "t"]
        );
        assert_eq!(
            agent_argv(&agent(Some("echo hi"), Some("claude")), "yolo", "t").unwrap(),
            ["sh", "-c", "echo hi", "agent", "t"]
        );
        assert!(agent_argv(&agent(None, Some("vim")), "yolo", "t").is_err());
        assert!(agent_argv(&agent(None, None), "yolo", "t").is_err());
        assert!(agent_argv(&agent(Some("x"), None), "chaos", "t").is_err());
    }
}
