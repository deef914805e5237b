//! `agentlab secrets …`: manage age-encrypted secret bundles on local files.
//!
//! These commands do not talk to the daemon: they read and write `<dir>/<name>.age` with the
//! identity file directly (run them on the host as the user owning the identity). Secret
//! values are read from stdin or files, never from argv.

mod edit;
mod view;

use std::path::PathBuf;

use agentlab_secrets::AgeSecretStore;

/// Arguments of `agentlab secrets`.
#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    /// Directory holding the bundles (`<name>.age`, `recipients.txt`).
    #[arg(
        long,
        global = true,
        env = "AGENTLAB_SECRETS_DIR",
        default_value = "/etc/agentlab/secrets"
    )]
    dir: PathBuf,
    /// age identity file (x25519 secret key, mode 0600).
    #[arg(
        long,
        global = true,
        env = "AGENTLAB_IDENTITY",
        default_value = "/etc/agentlab/age.key"
    )]
    identity: PathBuf,
    /// Bundle to operate on [default: default; `rotate` without it re-encrypts every bundle].
    #[arg(long, global = true, value_name = "NAME")]
    bundle: Option<String>,
    #[command(subcommand)]
    command: SecretsCommand,
}

/// `agentlab secrets` subcommands.
#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// Create the identity (if absent), recipients.txt and an empty bundle.
    Init,
    /// Set an environment variable; the value is read from stdin.
    SetEnv(edit::SetEnvArgs),
    /// Set git credentials: HTTPS token from stdin (--username), or an SSH deploy key file.
    SetGit(edit::SetGitArgs),
    /// Set Claude Code settings.json, read from stdin.
    SetClaude,
    /// Add (or replace) an extra file; the content is read from stdin.
    AddFile(edit::AddFileArgs),
    /// Remove an environment variable, the git credentials, the Claude settings or a file.
    Rm(edit::RmArgs),
    /// Show a bundle with values redacted (--reveal prints them).
    Show(view::ShowArgs),
    /// Re-encrypt bundles to new recipients.
    Rotate(view::RotateArgs),
    /// List bundle names.
    List,
    /// Print the identity's public key (age1…), to use as a recipient elsewhere.
    PublicKey,
}

/// Runs `agentlab secrets`; with `json`, each command prints one JSON document instead of
/// its text.
pub async fn run(args: SecretsArgs, json: bool) -> anyhow::Result<()> {
    let store = AgeSecretStore::new(args.dir, args.identity);
    let explicit = args.bundle;
    let bundle = explicit.clone().unwrap_or_else(|| "default".to_owned());
    match args.command {
        SecretsCommand::Init => view::init(store, bundle, json).await,
        SecretsCommand::SetEnv(a) => edit::set_env(store, bundle, a, json).await,
        SecretsCommand::SetGit(a) => edit::set_git(store, bundle, a, json).await,
        SecretsCommand::SetClaude => edit::set_claude(store, bundle, json).await,
        SecretsCommand::AddFile(a) => edit::add_file(store, bundle, a, json).await,
        SecretsCommand::Rm(a) => edit::rm(store, bundle, a, json).await,
        SecretsCommand::Show(a) => view::show(store, bundle, a, json).await,
        SecretsCommand::Rotate(a) => view::rotate(store, explicit, a, json).await,
        SecretsCommand::List => view::list(store, json).await,
        SecretsCommand::PublicKey => view::public_key(store, json).await,
    }
}

/// Prints `doc` as JSON when `json`, else `text` (one line).
fn done(json: bool, doc: &serde_json::Value, text: &str) -> anyhow::Result<()> {
    if json {
        crate::output::print_json(doc)
    } else {
        println!("{text}");
        Ok(())
    }
}

/// Runs blocking store work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, agentlab_secrets::SecretsError> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Adds a hint to "bundle not found" errors.
fn hint<T>(bundle: &str, result: anyhow::Result<T>) -> anyhow::Result<T> {
    result.map_err(
        |e| match e.downcast_ref::<agentlab_secrets::SecretsError>() {
            Some(agentlab_secrets::SecretsError::BundleNotFound(_)) => e.context(format!(
                "create it with `agentlab secrets init --bundle {bundle}`"
            )),
            _ => e,
        },
    )
}
