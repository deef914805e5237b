//! Sanitizing an untrusted checkout before the runner runs git in it (see [`crate::git`]).

use std::fs;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::error::GuestError;
use crate::process;

/// Timeout for the `git config` calls.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Replaces `.git/config` with a minimal one and empties `.git/hooks` (see module docs).
pub async fn sanitize_repo(git_bin: &Path, dir: &Path, repo_url: &str) -> Result<(), GuestError> {
    let git_dir = dir.join(".git");
    let is_link = fs::symlink_metadata(&git_dir)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if is_link || !git_dir.is_dir() {
        return Err(GuestError::step(
            "clone",
            format!("{} is not a git checkout", dir.display()),
        ));
    }
    let config = git_dir.join("config");
    let cfg_query = |key: &str| {
        let mut c = Command::new(git_bin);
        c.env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        c.arg("config")
            .arg("--file")
            .arg(&config)
            .args(["--get", key]);
        c
    };
    let (_, fmt, _) = process::output(
        cfg_query("extensions.objectformat"),
        "git config",
        QUERY_TIMEOUT,
    )
    .await?;
    let fmt = String::from_utf8_lossy(&fmt).trim().to_owned();
    let mut text = format!(
        "[core]\n\trepositoryformatversion = {}\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n[remote \"origin\"]\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
        if fmt.is_empty() { 0 } else { 1 }
    );
    if fmt == "sha256" {
        text.push_str("[extensions]\n\tobjectformat = sha256\n");
    }
    let io = |e| {
        GuestError::step(
            "clone",
            format!("cannot sanitize {}: {e}", git_dir.display()),
        )
    };
    // Remove first so a planted symlink is replaced, not followed.
    let _ = fs::remove_file(&config);
    fs::write(&config, text).map_err(io)?;
    let hooks = git_dir.join("hooks");
    if hooks.exists() {
        fs::remove_dir_all(&hooks).map_err(io)?;
    }
    fs::create_dir_all(&hooks).map_err(io)?;
    let mut c = Command::new(git_bin);
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    c.arg("config")
        .arg("--file")
        .arg(&config)
        .arg("remote.origin.url")
        .arg(repo_url);
    let (code, _, _) = process::output(c, "git config", QUERY_TIMEOUT).await?;
    if code != 0 {
        return Err(GuestError::step("clone", "cannot set remote.origin.url"));
    }
    Ok(())
}
