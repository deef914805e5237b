//! `agentlab secrets init|show|rotate|list|public-key`.

use std::path::PathBuf;

use agentlab_secrets::AgeSecretStore;
use anyhow::Context;
use zeroize::Zeroizing;

use serde_json::json;

use super::{blocking, done, hint};

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

pub(super) async fn init(store: AgeSecretStore, bundle: String, json: bool) -> anyhow::Result<()> {
    let (identity, dir) = (store.identity_path().to_owned(), store.dir().to_owned());
    let b = bundle.clone();
    let report = blocking(move || store.init(&b)).await?;
    if json {
        return crate::output::print_json(&json!({
            "identity": identity,
            "identity_created": report.identity_created,
            "public_keys": report.public_keys,
            "recipients": dir.join("recipients.txt"),
            "recipients_created": report.recipients_created,
            "bundle": bundle,
            "bundle_created": report.bundle_created,
            "dir": dir,
        }));
    }
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

pub(super) async fn show(
    store: AgeSecretStore,
    bundle: String,
    a: ShowArgs,
    json: bool,
) -> anyhow::Result<()> {
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
    if json {
        let doc = json!({"bundle": bundle, "revealed": a.reveal, "content": shown});
        let text =
            Zeroizing::new(serde_json::to_string_pretty(&doc).context("cannot format the bundle")?);
        println!("{}", text.as_str());
        return Ok(());
    }
    let yaml = Zeroizing::new(serde_yaml::to_string(&shown).context("cannot format the bundle")?);
    println!("# bundle: {bundle}");
    print!("{}", yaml.as_str());
    Ok(())
}

pub(super) async fn rotate(
    store: AgeSecretStore,
    bundle: Option<String>,
    a: RotateArgs,
    json: bool,
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
    let text = format!(
        "Re-encrypted {} bundle(s) to {count} recipient(s): {}",
        report.bundles.len(),
        report.bundles.join(", ")
    );
    let doc = json!({
        "bundles": report.bundles,
        "recipients": count,
        "identity_can_decrypt": report.identity_can_decrypt,
    });
    done(json, &doc, &text)?;
    if !report.identity_can_decrypt {
        eprintln!(
            "warning: the identity {} is not among the new recipients and can no longer decrypt \
             these bundles; point --identity / AGENTLAB_IDENTITY at a new identity",
            identity.display()
        );
    }
    Ok(())
}

pub(super) async fn list(store: AgeSecretStore, json: bool) -> anyhow::Result<()> {
    let names = blocking(move || store.list_blocking()).await?;
    if json {
        return crate::output::print_json(&names);
    }
    for name in names {
        println!("{name}");
    }
    Ok(())
}

pub(super) async fn public_key(store: AgeSecretStore, json: bool) -> anyhow::Result<()> {
    let keys = blocking(move || store.public_keys()).await?;
    if json {
        return crate::output::print_json(&keys);
    }
    for key in keys {
        println!("{key}");
    }
    Ok(())
}
