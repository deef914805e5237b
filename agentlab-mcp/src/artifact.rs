//! `read_artifact`: an artifact's text inline up to [`INLINE_MAX`] bytes; inside a `.tar.gz`
//! bundle (up to [`BUNDLE_MAX`] bytes), its file list or one file's text. Anything larger or
//! binary is described instead, with the CLI command that downloads it.

use agentlab_client::Client;
use agentlab_core::JobId;
use rmcp::model::CallToolResult;

use crate::bundle::{self, Member};
use crate::render::{client_failure, failure, text};

/// Largest text returned inline (a plain artifact or a file inside a bundle).
pub const INLINE_MAX: u64 = 256 * 1024;

/// Largest `.tar.gz` artifact read to list or extract its files.
pub const BUNDLE_MAX: u64 = 32 * 1024 * 1024;

type Answer = Result<CallToolResult, CallToolResult>;

/// Reads artifact `name` of job `id`, or the file `path` inside it when it is a bundle.
pub async fn read(client: &Client, id: &JobId, name: &str, path: Option<String>) -> Answer {
    let list = client
        .list_artifacts(id)
        .await
        .map_err(|e| client_failure(&e))?;
    let Some(artifact) = list.iter().find(|a| a.name == name) else {
        let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
        return Err(failure(
            "artifact_not_found",
            &format!(
                "Job {id} has no artifact named {name:?} (it has: {})",
                names.join(", ")
            ),
        ));
    };
    let download = format!("agentlab job artifacts download {id} --name {name}");
    let is_bundle = bundle::is_bundle(name);
    if path.is_some() && !is_bundle {
        return Err(failure(
            "not_an_archive",
            &format!("Artifact {name} of {id} is not a .tar.gz archive; read it without `path`"),
        ));
    }
    let max = if is_bundle { BUNDLE_MAX } else { INLINE_MAX };
    if artifact.size > max {
        return Ok(text(format!(
            "Artifact {name} of {id} is {} bytes, over the {max}-byte limit for reading it \
             here (sha256 {}); download it with `{download}`.",
            artifact.size, artifact.sha256
        )));
    }
    let bytes = fetch(client, id, name, max, &download).await?;
    if !is_bundle {
        return Ok(inline(
            bytes,
            &format!("Artifact {name} of {id}"),
            &download,
        ));
    }
    let label = format!("{name} of {id}");
    tokio::task::spawn_blocking(move || inside(&bytes, &label, path.as_deref(), &download))
        .await
        .unwrap_or_else(|e| {
            Err(failure(
                "internal",
                &format!("Reading the archive failed: {e}"),
            ))
        })
}

async fn fetch(
    client: &Client,
    id: &JobId,
    name: &str,
    max: u64,
    download: &str,
) -> Result<Vec<u8>, CallToolResult> {
    let mut dl = client
        .download_artifact(id, name)
        .await
        .map_err(|e| client_failure(&e))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = dl.next_chunk().await.map_err(|e| client_failure(&e))? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max {
            return Err(failure(
                "artifact_too_large",
                &format!(
                    "Artifact {name} of {id} is larger than listed; download it with `{download}`"
                ),
            ));
        }
    }
    Ok(bytes)
}

/// UTF-8 text as is; anything else described.
fn inline(bytes: Vec<u8>, what: &str, download: &str) -> CallToolResult {
    match String::from_utf8(bytes) {
        Ok(t) => text(t),
        Err(e) => text(format!(
            "{what} is binary ({} bytes), not shown inline; download it with `{download}`.",
            e.as_bytes().len()
        )),
    }
}

/// The file list of a bundle, or the file at `path` in it.
fn inside(gz: &[u8], label: &str, path: Option<&str>, download: &str) -> Answer {
    let unreadable =
        |e: std::io::Error| failure("bad_archive", &format!("Cannot read {label}: {e}"));
    let members = bundle::members(gz).map_err(unreadable)?;
    let Some(path) = path else {
        return Ok(text(listing(label, &members)));
    };
    let wanted = path.trim_start_matches("./");
    let Some(member) = members.iter().find(|m| m.path == wanted) else {
        let names: Vec<&str> = members.iter().map(|m| m.path.as_str()).collect();
        return Err(failure(
            "artifact_path_not_found",
            &format!(
                "{label} has no file {wanted} (it has: {})",
                names.join(", ")
            ),
        ));
    };
    let what = format!("File {wanted} in {label}");
    if member.size > INLINE_MAX {
        return Ok(text(format!(
            "{what} is {} bytes, over the {INLINE_MAX}-byte inline limit; download the \
             archive with `{download}`.",
            member.size
        )));
    }
    match bundle::read_member(gz, wanted, INLINE_MAX).map_err(unreadable)? {
        Some(bytes) => Ok(inline(bytes, &what, download)),
        None => Err(failure(
            "artifact_path_not_found",
            &format!("{label} has no file {wanted}"),
        )),
    }
}

fn listing(label: &str, members: &[Member]) -> String {
    let mut out = format!(
        "{label} is an archive of {} files; read one with read_artifact and its `path`:\n",
        members.len()
    );
    for m in members {
        out.push_str(&format!("{:>10}  {}\n", m.size, m.path));
    }
    out
}
