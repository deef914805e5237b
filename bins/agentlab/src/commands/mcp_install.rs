//! `agentlab mcp install --claude`: adds the `agentlab` MCP server to Claude Code's user
//! configuration (`~/.claude.json`), idempotently and atomically.
//!
//! The file is edited, not rewritten: every top-level key other than `mcpServers`, and every
//! server in `mcpServers` other than `agentlab`, keeps its exact text and place. The new file
//! is written next to the old one and renamed over it, with the old file's permissions (0600
//! for a new file). A file that is not a JSON object is refused and left untouched.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::ctx::Ctx;
use crate::exit::Code;

/// Arguments of `agentlab mcp install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Configure Claude Code (its user configuration, `~/.claude.json`).
    #[arg(long, required = true)]
    pub claude: bool,
    /// Print what would change without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// The configuration file to edit instead of `~/.claude.json`.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// A JSON object's members in their order, each value as its original text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Renders members as an object whose members are indented by `indent` spaces.
fn render(members: &[(String, String)], indent: usize) -> String {
    if members.is_empty() {
        return "{}".to_owned();
    }
    let pad = " ".repeat(indent);
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{pad}{}: {v}", serde_json::Value::from(k.as_str())))
        .collect();
    format!("{{\n{}\n{}}}", body.join(",\n"), " ".repeat(indent - 2))
}

/// Pretty JSON of `value` whose continuation lines are indented by `indent` more spaces.
fn pretty_at(value: &serde_json::Value, indent: usize) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.replace('\n', &format!("\n{}", " ".repeat(indent)))
}

/// The outcome of editing a configuration text.
#[derive(Debug, PartialEq)]
pub struct Edit {
    /// The new text (`None`: nothing to change).
    pub text: Option<String>,
    /// The `agentlab` entry before (`None`: there was none).
    pub before: Option<serde_json::Value>,
}

/// Puts `entry` as `mcpServers.agentlab` into `existing` (the file's text, `None` when
/// there is no file).
pub fn edit(existing: Option<&str>, entry: &serde_json::Value) -> anyhow::Result<Edit> {
    let top = match existing {
        Some(text) if !text.trim().is_empty() => {
            serde_json::from_str::<Members>(text).context("it is not a JSON object")?
        }
        _ => Members(Vec::new()),
    };
    let mut top: Vec<(String, String)> = top
        .0
        .into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect();
    let new_entry = pretty_at(entry, 4);
    let pos = top.iter().position(|(k, _)| k == "mcpServers");
    let (servers, before) = match pos {
        Some(i) => {
            let servers = serde_json::from_str::<Members>(&top[i].1)
                .context("its \"mcpServers\" is not a JSON object")?;
            let mut servers: Vec<(String, String)> = servers
                .0
                .into_iter()
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect();
            let before = match servers.iter_mut().find(|(k, _)| k == "agentlab") {
                Some((_, v)) => {
                    let old: serde_json::Value = serde_json::from_str(v)?;
                    if &old == entry {
                        return Ok(Edit {
                            text: None,
                            before: Some(old),
                        });
                    }
                    *v = new_entry;
                    Some(old)
                }
                None => {
                    servers.push(("agentlab".into(), new_entry));
                    None
                }
            };
            (servers, before)
        }
        None => (vec![("agentlab".to_owned(), new_entry)], None),
    };
    let servers = render(&servers, 4);
    match pos {
        Some(i) => top[i].1 = servers,
        None => top.push(("mcpServers".into(), servers)),
    }
    Ok(Edit {
        text: Some(format!("{}\n", render(&top, 2))),
        before,
    })
}

/// A small unified-style diff of the `agentlab` entry.
pub fn diff(
    path: &Path,
    existed: bool,
    before: Option<&serde_json::Value>,
    after: &serde_json::Value,
) -> String {
    let name = path.display();
    let mut out = format!(
        "--- {}\n+++ {name}\n@@ mcpServers.agentlab @@\n",
        if existed {
            name.to_string()
        } else {
            "/dev/null".into()
        }
    );
    let lines = |v: &serde_json::Value, sign: char, out: &mut String| {
        for l in serde_json::to_string_pretty(v).unwrap_or_default().lines() {
            out.push(sign);
            out.push_str(l);
            out.push('\n');
        }
    };
    if let Some(b) = before {
        lines(b, '-', &mut out);
    }
    lines(after, '+', &mut out);
    out
}

/// Writes `text` to `path` through a temporary file in the same directory, renamed over it.
fn write_atomically(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("the configuration path has no file name")?;
    let tmp = dir.join(format!(
        ".{}.agentlab-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Runs `agentlab mcp install`.
pub fn run(ctx: &Ctx, a: InstallArgs) -> anyhow::Result<Code> {
    let path = match a.config {
        Some(p) => p,
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; give --config")?)
            .join(".claude.json"),
    };
    // Edit a symlink's target, not the link.
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let exe = std::env::current_exe().context("cannot find this agentlab binary")?;
    let Some(socket) = ctx.client.socket() else {
        anyhow::bail!(
            "mcp install configures the local socket; for a remote daemon add \
             `agentlab --endpoint URL mcp` with AGENTLAB_TOKEN in the server's environment \
             to your MCP client yourself (see docs/mcp.md)"
        );
    };
    let socket = std::path::absolute(socket).context("the socket path")?;
    let entry = serde_json::json!({
        "command": exe.display().to_string(),
        "args": ["--socket", socket.display().to_string(), "mcp"],
    });
    let edit = edit(existing.as_deref(), &entry)
        .with_context(|| format!("refusing to edit {}", path.display()))?;
    let Some(text) = edit.text else {
        println!(
            "{}: the agentlab MCP server is already configured; nothing changed",
            path.display()
        );
        return Ok(Code::Ok);
    };
    print!(
        "{}",
        diff(&path, existing.is_some(), edit.before.as_ref(), &entry)
    );
    if a.dry_run {
        println!("(dry run: {} not written)", path.display());
        return Ok(Code::Ok);
    }
    let mode = match std::fs::metadata(&path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(_) => 0o600,
    };
    write_atomically(&path, &text, mode)?;
    println!(
        "wrote {}; restart Claude Code to load the agentlab server",
        path.display()
    );
    Ok(Code::Ok)
}

#[cfg(test)]
#[path = "mcp_install_tests.rs"]
mod tests;
