//! `agentlab secrets set-env|set-git|set-claude|add-file|rm`: change a bundle.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use agentlab_core::{GitCredentials, SecretFile, SecretValue};
use agentlab_secrets::{AgeSecretStore, Removal};
use anyhow::Context;
use zeroize::Zeroizing;

use serde_json::json;

use super::{blocking, done, hint};

/// Arguments of `set-env`.
#[derive(Debug, clap::Args)]
pub(super) struct SetEnvArgs {
    /// Variable name (`[A-Z_][A-Z0-9_]*`). The value is read from stdin, never from argv.
    key: String,
}

/// Arguments of `set-git`.
#[derive(Debug, clap::Args)]
pub(super) struct SetGitArgs {
    /// HTTPS username (e.g. `x-access-token`); the token is read from stdin.
    #[arg(long, conflicts_with = "ssh_key_file")]
    username: Option<String>,
    /// SSH deploy key (OpenSSH private key file).
    #[arg(long, value_name = "PATH")]
    ssh_key_file: Option<PathBuf>,
    /// known_hosts lines to trust for the SSH key.
    #[arg(long, value_name = "PATH", requires = "ssh_key_file")]
    known_hosts_file: Option<PathBuf>,
}

/// Arguments of `add-file`.
#[derive(Debug, clap::Args)]
pub(super) struct AddFileArgs {
    /// Path relative to the guest's secrets directory.
    #[arg(long)]
    path: String,
    /// Octal file mode in the guest [default: 600].
    #[arg(long, value_parser = parse_mode)]
    mode: Option<u32>,
}

/// Arguments of `rm`.
#[derive(Debug, clap::Args)]
#[group(id = "what", required = true, args = ["key", "git", "claude", "file"])]
pub(super) struct RmArgs {
    /// Environment variable to remove.
    #[arg(conflicts_with_all = ["git", "claude", "file"])]
    key: Option<String>,
    /// Remove the git credentials.
    #[arg(long)]
    git: bool,
    /// Remove the Claude settings.
    #[arg(long)]
    claude: bool,
    /// Remove the extra file with this path.
    #[arg(long, value_name = "PATH")]
    file: Option<String>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("{s:?} is not an octal file mode like 600")),
    }
}

/// Reads all of stdin; `trim` drops one trailing line break (for single-line values).
fn read_stdin(what: &str, trim: bool) -> anyhow::Result<SecretValue> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Reading {what} from stdin; end with Ctrl-D.");
    }
    let mut text = Zeroizing::new(String::with_capacity(64 * 1024));
    stdin
        .read_to_string(&mut text)
        .context("cannot read the value from stdin")?;
    if trim {
        let keep = text.strip_suffix('\n').map_or(text.len(), str::len);
        let keep = text[..keep].strip_suffix('\r').map_or(keep, str::len);
        text.truncate(keep);
    }
    anyhow::ensure!(!text.is_empty(), "empty {what} on stdin");
    Ok(SecretValue::new(std::mem::take(&mut *text)))
}

fn read_secret_file(path: &Path) -> anyhow::Result<SecretValue> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    Ok(SecretValue::new(text.as_str()))
}

pub(super) async fn set_env(
    store: AgeSecretStore,
    bundle: String,
    a: SetEnvArgs,
    json: bool,
) -> anyhow::Result<()> {
    agentlab_secrets::validate_env_key(&a.key)?;
    let value = read_stdin(&format!("the value of {}", a.key), true)?;
    let (b, key) = (bundle.clone(), a.key.clone());
    hint(
        &bundle,
        blocking(move || store.set_env(&b, &key, value)).await,
    )?;
    let text = format!("Set {} in bundle {bundle:?}", a.key);
    done(
        json,
        &json!({"bundle": bundle, "set": "env", "key": a.key}),
        &text,
    )
}

pub(super) async fn set_git(
    store: AgeSecretStore,
    bundle: String,
    a: SetGitArgs,
    json: bool,
) -> anyhow::Result<()> {
    let git = match (a.username, a.ssh_key_file) {
        (Some(username), _) => GitCredentials::Https {
            username,
            token: read_stdin("the git token", true)?,
        },
        (None, Some(key)) => GitCredentials::Ssh {
            private_key: read_secret_file(&key)?,
            known_hosts: match a.known_hosts_file {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?,
                ),
                None => None,
            },
        },
        (None, None) => anyhow::bail!("give --username (token on stdin) or --ssh-key-file"),
    };
    let b = bundle.clone();
    hint(&bundle, blocking(move || store.set_git(&b, git)).await)?;
    let text = format!("Set git credentials in bundle {bundle:?}");
    done(json, &json!({"bundle": bundle, "set": "git"}), &text)
}

pub(super) async fn set_claude(
    store: AgeSecretStore,
    bundle: String,
    json: bool,
) -> anyhow::Result<()> {
    let settings = read_stdin("Claude settings JSON", false)?;
    let b = bundle.clone();
    hint(
        &bundle,
        blocking(move || store.set_claude_settings(&b, settings)).await,
    )?;
    let text = format!("Set Claude settings in bundle {bundle:?}");
    done(
        json,
        &json!({"bundle": bundle, "set": "claude_settings"}),
        &text,
    )
}

pub(super) async fn add_file(
    store: AgeSecretStore,
    bundle: String,
    a: AddFileArgs,
    json: bool,
) -> anyhow::Result<()> {
    agentlab_secrets::validate_file_path(&a.path)?;
    let content = read_stdin(&format!("the content of {}", a.path), false)?;
    let file = SecretFile {
        path: a.path.clone(),
        mode: a.mode,
        content,
    };
    let b = bundle.clone();
    hint(&bundle, blocking(move || store.add_file(&b, file)).await)?;
    let text = format!("Added file {} to bundle {bundle:?}", a.path);
    done(
        json,
        &json!({"bundle": bundle, "set": "file", "path": a.path}),
        &text,
    )
}

pub(super) async fn rm(
    store: AgeSecretStore,
    bundle: String,
    a: RmArgs,
    json: bool,
) -> anyhow::Result<()> {
    let what = match (a.key, a.file) {
        (Some(key), _) => Removal::Env(key),
        (None, Some(path)) => Removal::File(path),
        (None, None) if a.git => Removal::Git,
        (None, None) if a.claude => Removal::ClaudeSettings,
        (None, None) => anyhow::bail!("say what to remove: KEY, --git, --claude or --file PATH"),
    };
    let (b, w) = (bundle.clone(), what.clone());
    hint(&bundle, blocking(move || store.rm(&b, &w)).await)?;
    let item = match &what {
        Removal::Env(key) => key.clone(),
        Removal::Git => "git credentials".to_owned(),
        Removal::ClaudeSettings => "Claude settings".to_owned(),
        Removal::File(path) => format!("file {path}"),
    };
    let text = format!("Removed {item} from bundle {bundle:?}");
    done(json, &json!({"bundle": bundle, "removed": item}), &text)
}
