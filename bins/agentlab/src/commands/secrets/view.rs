//! `agentlab secrets init|show|rotate|list|public-key`.

use std::path::PathBuf;

use agentlab_secrets::AgeSecretStore;
use anyhow::Context;
use zeroize::Zeroizing;

use super::{blocking, hint};

/// Arguments of `show`.
#[derive(Debug, clap::Args)]
pub(super) struct ShowArgs {
    /// Print the secret values in clear text (prints a warning to stderr).
    #[arg(long)]
    reveal: bool,
}

/// Arguments of `rotate`.
#[derive(Debug, clap::Args)]
#[group(id = "to", required = true, multiple = true, args = ["recipients", "recipients_file"])]
pub(super) struct RotateArgs {
    /// New recipient (age1… public key); repeat for several.
    #[arg(long = "recipient", value_name = "AGE1…")]
    recipients: Vec<String>,
    /// File with one recipient per line (`#` comments allowed).
    #[arg(long, value_name = "PATH")]
    recipients_file: Option<PathBuf>,
}

pub(super) async fn init(store: AgeSecretStore, bundle: String) -> anyhow::Result<()> {
    let (identity, dir) = (store.identity_path().to_owned(), store.dir().to_owned());
    let b = bundle.clone();
    let report = blocking(move || store.init(&b)).await?;
    let created = |yes: bool| if yes { "Created" } else { "Kept existing" };
    println!(
        "{} identity {}",
        created(report.identity_created),
        identity.display()
    );
    for key in &report.public_keys {
        println!("Public key: {key}");
    }
    println!(
        "{} {}",
        created(report.recipients_created),
        dir.join("recipients.txt").display()
    );
    println!(
        "{} bundle {bundle:?} in {}",
        created(report.bundle_created),
        dir.display()
    );
    Ok(())
}

pub(super) async fn show(store: AgeSecretStore, bundle: String, a: ShowArgs) -> anyhow::Result<()> {
    let b = bundle.clone();
    let shown = if a.reveal {
        eprintln!(
            "warning: printing secret values of bundle {bundle:?} in clear text; \
             do not paste this output into logs, tickets or chats"
        );
        hint(&bundle, blocking(move || store.reveal(&b)).await)?
    } else {
        hint(&bundle, blocking(move || store.show(&b)).await)?
    };
    let yaml = Zeroizing::new(serde_yaml::to_string(&shown).context("cannot format the bundle")?);
    println!("# bundle: {bundle}");
    print!("{}", yaml.as_str());
    Ok(())
}

pub(super) async fn rotate(
    store: AgeSecretStore,
    bundle: Option<String>,
    a: RotateArgs,
) -> anyhow::Result<()> {
    let mut recipients = a.recipients;
    if let Some(path) = &a.recipients_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        recipients.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    let count = recipients.len();
    let identity = store.identity_path().to_owned();
    let report = blocking(move || store.rotate(bundle.as_deref(), &recipients)).await?;
    println!(
        "Re-encrypted {} bundle(s) to {count} recipient(s): {}",
        report.bundles.len(),
        report.bundles.join(", ")
    );
    if !report.identity_can_decrypt {
        eprintln!(
            "warning: the identity {} is not among the new recipients and can no longer decrypt \
             these bundles; point --identity / AGENTLAB_IDENTITY at a new identity",
            identity.display()
        );
    }
    Ok(())
}

pub(super) async fn list(store: AgeSecretStore) -> anyhow::Result<()> {
    for name in blocking(move || store.list_blocking()).await? {
        println!("{name}");
    }
    Ok(())
}

pub(super) async fn public_key(store: AgeSecretStore) -> anyhow::Result<()> {
    for key in blocking(move || store.public_keys()).await? {
        println!("{key}");
    }
    Ok(())
}
