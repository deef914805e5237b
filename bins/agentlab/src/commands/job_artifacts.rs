//! `agentlab job artifacts JOB` lists a job's artifacts; `agentlab job artifacts download JOB
//! [--name N] [--out PATH]` downloads them, verifying each file's sha256 against both the
//! `x-sha256` header and the listing before moving it into place.

use std::path::{Path, PathBuf};

use agentlab_core::{Artifact, JobId};
use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::{print_json, size};
use crate::view;

/// Arguments of `agentlab job artifacts`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ArtifactsArgs {
    #[command(subcommand)]
    pub cmd: Option<ArtifactsCmd>,
    /// Job whose artifacts to list.
    #[arg(required = true)]
    pub job: Option<JobId>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ArtifactsCmd {
    /// Download artifacts (all, or one with --name) and verify their sha256.
    Download {
        /// The job id (`job-…`).
        job: JobId,
        /// Only this artifact.
        #[arg(long)]
        name: Option<String>,
        /// Target file (one artifact) or directory (default: the current directory).
        #[arg(long, short, value_name = "PATH")]
        out: Option<PathBuf>,
    },
}

/// Runs `agentlab job artifacts …`.
pub async fn run(ctx: &Ctx, args: ArtifactsArgs) -> anyhow::Result<Code> {
    let (job, name, out) = match (args.cmd, args.job) {
        (Some(ArtifactsCmd::Download { job, name, out }), _) => (job, name, out),
        (None, Some(job)) => {
            let list: Vec<Artifact> = ctx.client.list_artifacts(&job).await?;
            if ctx.json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("Job {job} has no artifacts.");
            } else {
                print!("{}", view::artifact_table(&list));
            }
            return Ok(Code::Ok);
        }
        (None, None) => anyhow::bail!("Missing the job id"),
    };
    let list: Vec<Artifact> = ctx.client.list_artifacts(&job).await?;
    let chosen: Vec<&Artifact> = match &name {
        Some(n) => vec![list.iter().find(|a| &a.name == n).with_context(|| {
            let names: Vec<_> = list.iter().map(|a| a.name.as_str()).collect();
            format!(
                "Job {job} has no artifact named {n:?} (it has: {})",
                names.join(", ")
            )
        })?],
        None => list.iter().collect(),
    };
    anyhow::ensure!(!chosen.is_empty(), "Job {job} has no artifacts");
    for a in &chosen {
        let dest = destination(out.as_deref(), &a.name, chosen.len() == 1)?;
        fetch(ctx, &job, a, &dest).await?;
        if !ctx.json {
            println!(
                "{}  {} ({}, sha256 verified)",
                dest.display(),
                a.name,
                size(a.size)
            );
        }
    }
    if ctx.json {
        print_json(&chosen)?;
    }
    Ok(Code::Ok)
}

async fn fetch(ctx: &Ctx, job: &JobId, a: &Artifact, dest: &Path) -> anyhow::Result<()> {
    let mut dl = ctx.client.download_artifact(job, &a.name).await?;
    let header = dl.header("x-sha256").map(str::to_owned);
    let file_name = dest
        .file_name()
        .map_or_else(|| a.name.clone(), |f| f.to_string_lossy().into_owned());
    let part = dest.with_file_name(format!(".{file_name}.part"));
    let written = async {
        let mut file = tokio::fs::File::create(&part).await?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = dl.next_chunk().await? {
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        let got = hex::encode(hasher.finalize());
        verify(&a.name, &got, header.as_deref(), &a.sha256)?;
        tokio::fs::rename(&part, dest).await?;
        anyhow::Ok(())
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    written.with_context(|| {
        format!(
            "Cannot download artifact {} of {job} to {}",
            a.name,
            dest.display()
        )
    })
}

/// Checks the computed digest against the `x-sha256` header (when sent) and the listing.
pub fn verify(name: &str, got: &str, header: Option<&str>, listed: &str) -> anyhow::Result<()> {
    for (source, expected) in [
        ("x-sha256 header", header),
        ("artifact listing", Some(listed)),
    ] {
        if let Some(expected) = expected {
            anyhow::ensure!(
                expected.trim().eq_ignore_ascii_case(got),
                "Checksum mismatch for artifact {name}: the {source} says {expected}, the download hashes to {got}; the file was discarded"
            );
        }
    }
    Ok(())
}

/// Where an artifact goes: `--out` itself for a single artifact unless it is a directory,
/// else `<out or .>/<name>`. Names that could escape the directory are refused.
pub fn destination(out: Option<&Path>, name: &str, single: bool) -> anyhow::Result<PathBuf> {
    let safe = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    anyhow::ensure!(
        safe,
        "Refusing artifact name {name:?}: not a plain file name"
    );
    match out {
        None => Ok(PathBuf::from(".").join(name)),
        Some(p) if p.is_dir() => Ok(p.join(name)),
        Some(p) if single => Ok(p.to_path_buf()),
        Some(p) => {
            std::fs::create_dir_all(p).with_context(|| format!("Cannot create {}", p.display()))?;
            Ok(p.join(name))
        }
    }
}

#[cfg(test)]
#[path = "job_artifacts_tests.rs"]
mod tests;
